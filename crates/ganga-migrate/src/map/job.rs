//! A job assembled from its master's file and its subjobs' files, read one at a time.

use std::collections::BTreeMap;

use ganga_core::{
    Application, BackendConfig, Executable, Job, JobSpec, RunState, Status, StatusCounts, Subjob,
};

use super::splitter::splitter_of;
use super::subjob::subjob_of;
use super::unit::Unit;
use super::{Ctx, MappedJob, SubjobSource, keys};
use crate::report::Severity;
use crate::xml::{Node, Object};

/// Schema versions of the classes this tool interprets, as Ganga 8.7.12 writes them. A
/// file is read when its major version is the same and its minor is not newer (Ganga's
/// own rule).
const KNOWN_VERSIONS: &[(&str, u32, u32)] = &[
    ("Job", 1, 6),
    ("JobTemplate", 1, 6),
    ("JobInfo", 0, 1),
    ("JobTime", 0, 0),
    ("Executable", 2, 0),
    ("File", 1, 1),
    ("ShareDir", 1, 0),
    ("GangaList", 1, 0),
    ("Local", 1, 2),
    ("LSF", 1, 0),
    ("PBS", 1, 0),
    ("SGE", 1, 0),
    ("Slurm", 1, 0),
    ("Condor", 1, 0),
    ("CondorRequirements", 1, 0),
    ("Interactive", 1, 0),
    ("Dirac", 3, 2),
    ("DiracProxy", 1, 0),
    ("LocalFile", 1, 1),
    ("DiracFile", 1, 1),
    ("MassStorageFile", 1, 1),
    ("ArgSplitter", 1, 0),
    ("GenericSplitter", 1, 0),
    ("MultiPostProcessor", 1, 0),
    ("MetadataDict", 1, 0),
];

/// Maps a job (or template, or box job) and its subjobs, given one by one so that a job
/// with many subjobs never holds all their parsed files at once.
pub(crate) struct JobBuilder<'c> {
    ctx: &'c Ctx<'c>,
    ganga_id: u64,
    master: Unit,
    /// Subjobs written inline in the master's file (repositories older than Ganga 6).
    inline: Vec<Object>,
    counts: StatusCounts,
    folders: Vec<String>,
    out: MappedJob,
}

impl<'c> JobBuilder<'c> {
    /// Reads the master. `Err` means the job is skipped, with the reason.
    pub(crate) fn new(
        ctx: &'c Ctx<'c>,
        ganga_id: u64,
        object: &Object,
        folders: &[String],
    ) -> Result<JobBuilder<'c>, String> {
        if object.category != "jobs" || !matches!(object.class.as_str(), "Job" | "JobTemplate") {
            return Err(format!(
                "it is a {} (category {}), not a job",
                object.class, object.category
            ));
        }
        check_versions(object)?;
        let mut out = MappedJob {
            job: Job {
                id: 0,
                revision: 0,
                spec: std::sync::Arc::new(placeholder_spec()),
                run: RunState::new(ctx.now),
                subjobs: StatusCounts::default(),
                metadata: BTreeMap::new(),
            },
            subjobs: Vec::new(),
            problems: Vec::new(),
            active: Vec::new(),
            dropped: Vec::new(),
            ganga_status: String::new(),
            outputs: Vec::new(),
        };
        if let Some(id) = object.int("id")
            && u64::try_from(id).ok() != Some(ganga_id)
        {
            out.problems.push((
                ganga_id.to_string(),
                Severity::Flagged,
                format!("its XML says it is job {id}; its directory (kept) says {ganga_id}"),
            ));
        }
        let mut master = Unit::read(ctx, object, ganga_id, None)?;
        out.ganga_status = master.ganga_status.clone();
        let (splitter, notes) = splitter_of(object);
        master.notes.extend(notes);
        master.spec.splitter = splitter;
        let inline = match object.get("subjobs") {
            Some(Node::Seq(items)) => items
                .iter()
                .filter_map(|n| match n {
                    Node::Object(o) => Some(o.as_ref().clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(JobBuilder {
            ctx,
            ganga_id,
            master,
            inline,
            counts: StatusCounts::default(),
            folders: folders.to_vec(),
            out,
        })
    }

    /// Adds the next subjob (in index order).
    pub(crate) fn add_subjob(&mut self, source: SubjobSource) {
        let (ctx, ganga_id) = (self.ctx, self.ganga_id);
        let out = &mut self.out;
        let sref = format!("{ganga_id}.{}", source.index);
        if let Some(why) = &source.fell_back {
            out.problems.push((
                sref.clone(),
                Severity::Flagged,
                format!("read from data~ because {why}"),
            ));
        }
        let read = source.object.and_then(|o| {
            check_versions(&o)?;
            if o.class != "Job" {
                return Err(format!("a {} where a subjob (Job) was expected", o.class));
            }
            Unit::read(ctx, &o, ganga_id, Some(source.index))
        });
        let subjob = match read {
            Ok(sub) => subjob_of(out, &self.master, sub, source.index, &sref),
            Err(why) => {
                // As far as possible: a placeholder the user can see, never run.
                out.problems.push((
                    sref,
                    Severity::Flagged,
                    format!("subjob imported as `incomplete` (its own definition is lost): {why}"),
                ));
                let mut run = RunState::new(ctx.now);
                run.status = Status::Incomplete;
                run.backend.reason =
                    Some(format!("could not be read from Ganga's repository: {why}"));
                Subjob {
                    index: source.index,
                    overrides: Vec::new(),
                    run,
                }
            }
        };
        self.counts.add(subjob.run.status, 1);
        out.outputs.push((
            Some(subjob.index),
            ctx.user.output_dir(ganga_id, Some(subjob.index)),
        ));
        out.subjobs.push(subjob);
    }

    /// The job, with its subjobs. `Err` means the job is skipped, with the reason.
    pub(crate) fn finish(mut self) -> Result<MappedJob, String> {
        let ctx = self.ctx;
        let ganga_id = self.ganga_id;
        self.add_inline_subjobs();
        let me = ganga_id.to_string();
        let mut out = self.out;
        let mut unit = self.master;
        // Only jobs have a workspace (keyed by job id); a master's own output directory
        // holds merged results, if any.
        if ctx.registry == "jobs" {
            out.outputs
                .push((None, ctx.user.output_dir(ganga_id, None)));
        } else {
            out.outputs.clear();
        }
        check_numbering(&out.subjobs)?;
        let mut metadata = where_from(ctx, ganga_id, &self.folders);
        metadata.extend(unit.meta.drain(..));
        metadata.extend(unit.file_meta.drain(..));
        // Subjob file facts (LFNs...) were gathered in the job's metadata meanwhile.
        metadata.extend(std::mem::take(&mut out.job.metadata));
        // The job's own problems before its subjobs'.
        let own: Vec<_> = unit
            .notes
            .drain(..)
            .map(|(sev, note)| (me.clone(), sev, note))
            .collect();
        let at = out.problems.iter().take_while(|(o, _, _)| *o == me).count();
        out.problems.splice(at..at, own);
        out.dropped.append(&mut unit.dropped);
        if unit.active {
            out.active
                .insert(0, (me.clone(), unit.ganga_status.clone()));
        }
        if matches!(ctx.registry, "templates" | "box") {
            if unit.run.status != Status::Template {
                metadata.insert(keys::STATUS.to_owned(), unit.ganga_status.clone());
            }
            unit.run.status = Status::Template;
        }
        out.job.spec = std::sync::Arc::new(unit.spec);
        out.job.run = unit.run;
        out.job.subjobs = self.counts;
        out.job.metadata = metadata;
        Ok(out)
    }

    /// Subjobs written in the master's own file, when there are no subjob files.
    fn add_inline_subjobs(&mut self) {
        if self.out.subjobs.is_empty() && !self.inline.is_empty() {
            for (i, o) in std::mem::take(&mut self.inline).into_iter().enumerate() {
                self.add_subjob(SubjobSource {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    object: Ok(o),
                    fell_back: None,
                });
            }
        }
    }
}

/// Refuses a job whose subjobs are not numbered from 0 without a gap, as Ganga does.
fn check_numbering(subjobs: &[Subjob]) -> Result<(), String> {
    for (expected, s) in subjobs.iter().enumerate() {
        if s.index as usize != expected {
            return Err(format!(
                "its subjob directories are not numbered 0..{}: subjob {expected} is missing; Ganga cannot load it either",
                subjobs.len()
            ));
        }
    }
    Ok(())
}

/// The metadata that says where a job comes from: gangadir, user, registry, Ganga id
/// and job tree folders; a later run recognises the jobs it migrated by them.
fn where_from(ctx: &Ctx<'_>, ganga_id: u64, folders: &[String]) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    metadata.insert(keys::GANGADIR.to_owned(), ctx.gangadir.to_owned());
    metadata.insert(keys::USER.to_owned(), ctx.user.user.clone());
    metadata.insert(keys::REGISTRY.to_owned(), ctx.registry.to_owned());
    metadata.insert(keys::ID.to_owned(), ganga_id.to_string());
    if !folders.is_empty() {
        metadata.insert(keys::JOBTREE.to_owned(), folders.join("\n"));
    }
    metadata
}

pub(super) fn placeholder_spec() -> JobSpec {
    JobSpec {
        name: String::new(),
        comment: String::new(),
        application: Application::Executable(Executable {
            exe: String::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
        }),
        backend: BackendConfig::named("local"),
        input_files: Vec::new(),
        output_files: Vec::new(),
        splitter: None,
        auto_resubmit: None,
    }
}

/// Refuses an object any of whose classes has a schema version this tool does not know
/// (Ganga loads such a job as incomplete).
fn check_versions(object: &Object) -> Result<(), String> {
    let mut problem = None;
    object.walk(&mut |o| {
        if problem.is_some() {
            return;
        }
        if let Some(&(_, major, minor)) = KNOWN_VERSIONS.iter().find(|(c, _, _)| *c == o.class) {
            let ok = o
                .schema_version()
                .is_some_and(|(fm, fmin)| fm == major && fmin <= minor);
            if !ok {
                problem = Some(format!(
                    "{} has schema version {}, which this migration does not know (it reads {}.{} and older minor versions)",
                    o.class, o.version, major, minor
                ));
            }
        }
    });
    problem.map_or(Ok(()), Err)
}
