//! One migration run: what the store already holds from this gangadir, the ids jobs get,
//! each registry read (in parallel rounds), mapped and queued, and the queue written in
//! large commits after the jobs' outputs are brought over.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ganga_core::{Change, Job, JobId, JobRef, Status, Store, Subjob, Workspaces};

use crate::map::{self, Ctx, MappedJob, SubjobSource, keys};
use crate::repo::{self, Entry, Gangadir, UserRepo};
use crate::report::{ActiveInGanga, IdPolicy, Renumbered, Report, Severity, WorkspaceReport};
use crate::workspace::{self, WorkspaceMode};
use crate::{MigrateError, Options, Progress, xml};

/// Jobs per transaction at most, whatever their subjobs.
const BATCH_JOBS: usize = 1000;

/// Files read and parsed (in parallel) before they are mapped, at most.
const ROUND_FILES: usize = 512;

/// The job being assembled from its files.
struct Current<'c> {
    /// `None` once the job is skipped.
    builder: Option<map::JobBuilder<'c>>,
    ganga_id: u64,
    subjobs: u64,
    id: (JobId, u64),
}

/// Reads and parses every directory's `data` (or `data~`), in parallel, in order.
fn load_all(dirs: &[&Path]) -> Vec<Result<repo::StoredObject, String>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(dirs.len());
    if threads <= 1 {
        return dirs.iter().map(|d| repo::load(d)).collect();
    }
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<repo::StoredObject, String>>> = Vec::new();
    slots.resize_with(dirs.len(), || None);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut got = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(dir) = dirs.get(i) else { break };
                        got.push((i, repo::load(dir)));
                    }
                    got
                })
            })
            .collect();
        for w in workers {
            let got = w
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (i, r) in got {
                slots[i] = Some(r);
            }
        }
    });
    slots
        .into_iter()
        .map(|s| s.unwrap_or_else(|| Err("not read".to_owned())))
        .collect()
}

/// What the store already holds from this gangadir: (user, registry, Ganga id).
type Key = (String, String, u64);

/// A user's repository, the prefix of its registries' names in the report, and each
/// registry's objects with their numbers of subjobs.
type UserPlan<'g> = (&'g UserRepo, String, Vec<(&'static str, Vec<(Entry, u64)>)>);

#[derive(Debug, Clone, Copy)]
struct Existing {
    id: JobId,
    revision: u64,
    /// Written in part by an interrupted run: to be written again, under the same id.
    incomplete: bool,
}

/// A job ready to be written.
struct Pending {
    job: Job,
    subjobs: Vec<Subjob>,
    outputs: Vec<(Option<u32>, PathBuf)>,
}

/// A migration under way: what it has found in the store, what it has reported, and the
/// jobs it has yet to write.
pub(crate) struct Run<'a> {
    store: Option<&'a dyn Store>,
    workspaces: &'a Workspaces,
    options: &'a Options,
    label: String,
    pub(crate) report: Report,
    batch: Vec<Pending>,
    batch_subjobs: usize,
    existing: HashMap<Key, Existing>,
    /// The first id the store has not handed out (as far as known).
    next_id: JobId,
}

impl<'a> Run<'a> {
    /// A run over `gd` (already refused when a Ganga session is alive on it), writing to
    /// `store` unless it is a dry run.
    pub(crate) fn new(
        gd: &Gangadir,
        store: Option<&'a dyn Store>,
        workspaces: &'a Workspaces,
        options: &'a Options,
    ) -> Run<'a> {
        let mut run = Run {
            store: if options.dry_run { None } else { store },
            workspaces,
            options,
            label: gd.root.display().to_string(),
            report: Report {
                gangadir: gd.root.clone(),
                dry_run: options.dry_run,
                users: gd.users.iter().map(|u| u.user.clone()).collect(),
                workspace: WorkspaceReport {
                    mode: options.workspace.as_str().to_owned(),
                    ..WorkspaceReport::default()
                },
                ..Report::default()
            },
            batch: Vec::new(),
            batch_subjobs: 0,
            existing: HashMap::new(),
            next_id: 0,
        };
        for (path, why) in &gd.unsupported {
            run.report.problem(
                "repository",
                path.display().to_string(),
                Severity::NotMigrated,
                format!("not read: {why}"),
            );
        }
        run
    }

    /// Finds the jobs an earlier run brought from this gangadir, and the next free id.
    pub(crate) fn scan_store(&mut self, store: Option<&dyn Store>) -> Result<(), MigrateError> {
        let Some(store) = store else { return Ok(()) };
        let mut from = 0;
        let mut max_id = None;
        loop {
            let page = store.summaries(from, 10_000)?;
            let Some(last) = page.last() else { break };
            from = last.id() + 1;
            for entry in page {
                let id = entry.id();
                max_id = Some(id);
                let Ok(Some(job)) = store.job(id) else {
                    continue;
                };
                let md = &job.metadata;
                if md.get(keys::GANGADIR) != Some(&self.label) {
                    continue;
                }
                let (Some(user), Some(registry), Some(gid)) = (
                    md.get(keys::USER),
                    md.get(keys::REGISTRY),
                    md.get(keys::ID).and_then(|s| s.parse().ok()),
                ) else {
                    continue;
                };
                self.existing.insert(
                    (user.clone(), registry.clone(), gid),
                    Existing {
                        id,
                        revision: job.revision,
                        incomplete: md.contains_key(keys::INCOMPLETE),
                    },
                );
            }
        }
        self.next_id = if self.options.dry_run {
            // A dry run reserves nothing: the best guess is past the highest id listed.
            max_id.map_or(0, |m| m + 1)
        } else {
            store.reserve_ids(0)?
        };
        Ok(())
    }

    /// What there is, for progress and id planning: each user's registries, the number of
    /// objects and the number of subjobs.
    pub(crate) fn survey<'g>(
        &mut self,
        gd: &'g Gangadir,
    ) -> Result<(Vec<UserPlan<'g>>, u64, u64), MigrateError> {
        let mut plans = Vec::new();
        let (mut objects, mut subjobs) = (0u64, 0u64);
        for user in &gd.users {
            let prefix = if gd.users.len() > 1 {
                format!("{}/", user.user)
            } else {
                String::new()
            };
            let mut registries = Vec::new();
            for name in ["jobs", "templates", "box"] {
                let entries = user.entries(name)?;
                let mut with_subjobs = Vec::with_capacity(entries.len());
                for e in entries {
                    let n = if name == "jobs" {
                        repo::subjob_dirs(&e.dir)?.len() as u64
                    } else {
                        0
                    };
                    subjobs += n;
                    objects += 1;
                    with_subjobs.push((e, n));
                }
                registries.push((name, with_subjobs));
            }
            if !user.workspace.is_dir() {
                self.report.problem(
                    &format!("{prefix}jobs"),
                    user.workspace.display().to_string(),
                    Severity::NotMigrated,
                    "Ganga's workspace directory does not exist: no outputs were brought over",
                );
            }
            plans.push((user, prefix, registries));
        }
        Ok((plans, objects, subjobs))
    }

    /// The job tree folders of each object of a registry (jobs and templates have them);
    /// unreadable ones are reported, and the objects are brought without folders.
    fn job_tree(
        &mut self,
        user: &UserRepo,
        name: &str,
        registry: &str,
    ) -> HashMap<u64, Vec<String>> {
        let folders = match name {
            "jobs" | "templates" => match user.jobtree(name) {
                Ok(f) => f,
                Err(why) => {
                    self.report.problem(
                        &format!("{registry}.metadata"),
                        "0",
                        Severity::NotMigrated,
                        format!("the job tree folders could not be read: {why}"),
                    );
                    Vec::new()
                }
            },
            _ => Vec::new(),
        };
        let mut tree: HashMap<u64, Vec<String>> = HashMap::new();
        for (id, folder) in folders {
            tree.entry(id).or_default().push(folder);
        }
        tree
    }

    /// Reserves `n` ids (or, in a dry run, pretends to) and returns the first.
    fn reserve(&mut self, n: u64) -> Result<JobId, MigrateError> {
        let first = match self.store {
            Some(store) if n > 0 => store.reserve_ids(n)?,
            _ => self.next_id,
        };
        self.next_id = first + n;
        Ok(first)
    }

    /// Brings the objects of one registry (`jobs`, `templates` or `box`) of a user,
    /// reported under the name `registry`.
    pub(crate) fn registry(
        &mut self,
        user: &UserRepo,
        name: &str,
        registry: &str,
        entries: Vec<(Entry, u64)>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), MigrateError> {
        let tree = &self.job_tree(user, name, registry);
        let box_names: &HashMap<u64, String> = &if name == "box" {
            user.box_names().into_iter().collect()
        } else {
            HashMap::new()
        };
        let key = |id: u64| (user.user.clone(), name.to_owned(), id);
        let label = self.label.clone();
        let ctx = Ctx {
            user,
            registry: name,
            gangadir: &label,
            now: self.options.now,
        };
        let mut todo = Vec::new();
        for (entry, n) in entries {
            let r = self.report.registry(registry);
            r.found += 1;
            r.subjobs_found += n;
            match self.existing.get(&key(entry.id)) {
                Some(e) if !e.incomplete => {
                    r.already_migrated += 1;
                    progress(Progress::Object { subjobs: n });
                }
                _ => todo.push((entry, n)),
            }
        }

        if name == "jobs" {
            // Ids are planned before reading, so that jobs can be written as they are read.
            let fresh: Vec<u64> = todo
                .iter()
                .filter(|(e, _)| !self.existing.contains_key(&key(e.id)))
                .map(|(e, _)| e.id)
                .collect();
            let ids = self.plan_ids(registry, &fresh)?;
            let mut jobs = Vec::with_capacity(todo.len());
            for (entry, n) in todo {
                let id = match self.existing.get(&key(entry.id)) {
                    Some(e) => (e.id, e.revision),
                    None => (ids.get(&entry.id).copied().unwrap_or(entry.id), 0),
                };
                jobs.push((entry, n, id));
            }
            self.jobs(&ctx, registry, jobs, tree, progress)?;
            return Ok(());
        }

        // Templates and box items: read first (they are few), then given new ids.
        let mut mapped = Vec::new();
        for (entry, _) in todo {
            let folders = tree.get(&entry.id).map_or(&[][..], Vec::as_slice);
            let box_name = box_names.get(&entry.id).map(String::as_str);
            if let Some(m) = self.read(&ctx, registry, &entry, folders, Some(box_name)) {
                mapped.push((entry.id, m));
            }
            progress(Progress::Object { subjobs: 0 });
        }
        let fresh = mapped
            .iter()
            .filter(|(gid, _)| !self.existing.contains_key(&key(*gid)))
            .count() as u64;
        let mut next = self.reserve(fresh)?;
        for (gid, m) in mapped {
            let id = match self.existing.get(&key(gid)) {
                Some(e) => (e.id, e.revision),
                None => {
                    next += 1;
                    (next - 1, 0)
                }
            };
            self.accept(registry, gid, id, m)?;
        }
        Ok(())
    }

    /// New ids for the Ganga ids in `fresh`: Ganga's own when the store has never used
    /// them, else a consecutive block.
    fn plan_ids(
        &mut self,
        registry: &str,
        fresh: &[u64],
    ) -> Result<HashMap<u64, JobId>, MigrateError> {
        let (Some(&min), Some(&max)) = (fresh.iter().min(), fresh.iter().max()) else {
            return Ok(HashMap::new());
        };
        if min >= self.next_id {
            let before = self.next_id;
            let first = self.reserve(max + 1 - before)?;
            if first == before {
                if self.report.ids != IdPolicy::Renumbered {
                    self.report.ids = IdPolicy::Kept;
                }
                return Ok(fresh.iter().map(|&g| (g, g)).collect());
            }
            // Another process reserved ids meanwhile: those reserved now are skipped.
        }
        self.report.ids = IdPolicy::Renumbered;
        let first = self.reserve(fresh.len() as u64)?;
        let mut ids = HashMap::new();
        for (i, &g) in fresh.iter().enumerate() {
            let id = first + i as u64;
            ids.insert(g, id);
            if id != g {
                self.report.renumbered.push(Renumbered {
                    registry: registry.to_owned(),
                    ganga_id: g,
                    id,
                });
            }
        }
        Ok(ids)
    }

    /// Reads and maps one object; `None` when it is skipped (reported).
    fn read(
        &mut self,
        ctx: &Ctx<'_>,
        registry: &str,
        entry: &Entry,
        folders: &[String],
        box_name: Option<Option<&str>>,
    ) -> Option<MappedJob> {
        let me = entry.id.to_string();
        let object = self.object_read(registry, &me, repo::load(&entry.dir))?;
        if let Some(name) = box_name
            && !(object.category == "jobs"
                && matches!(object.class.as_str(), "Job" | "JobTemplate"))
        {
            let r = self.report.registry(registry);
            r.skipped += 1;
            *r.ganga_statuses.entry(object.class.clone()).or_default() += 1;
            let what = describe_box_item(&object);
            self.report.problem(
                registry,
                me,
                Severity::NotMigrated,
                format!(
                    "box item `{}` is a {} ({}), and ganga-rs has no box for objects that are not jobs: {what}",
                    name.unwrap_or("?"),
                    object.class,
                    object.category
                ),
            );
            return None;
        }
        let status = object.str("status").unwrap_or("?").to_owned();
        let built = map::JobBuilder::new(ctx, entry.id, &object, folders).and_then(|b| b.finish());
        match built {
            Ok(mut m) => {
                if let Some(Some(name)) = box_name {
                    m.job
                        .metadata
                        .insert("ganga.box.name".into(), name.to_owned());
                }
                Some(m)
            }
            Err(why) => {
                self.skip(registry, &me, &status, why);
                None
            }
        }
    }

    /// Reads, maps and queues for writing the jobs of a `jobs` registry, in order. Their
    /// files (masters and subjobs) are read and parsed in rounds, in parallel.
    fn jobs(
        &mut self,
        ctx: &Ctx<'_>,
        registry: &str,
        jobs: Vec<(Entry, u64, (JobId, u64))>,
        tree: &HashMap<u64, Vec<String>>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), MigrateError> {
        /// One file to read: the master (`None`) or a subjob of `jobs[job]`.
        struct Task {
            job: usize,
            subjob: Option<u32>,
            dir: PathBuf,
        }
        let mut tasks: Vec<Task> = Vec::new();
        let mut current: Option<Current<'_>> = None;
        for (k, (entry, _, _)) in jobs.iter().enumerate() {
            tasks.push(Task {
                job: k,
                subjob: None,
                dir: entry.dir.clone(),
            });
            match repo::subjob_dirs(&entry.dir) {
                Ok(dirs) => tasks.extend(dirs.into_iter().map(|(i, dir)| Task {
                    job: k,
                    subjob: Some(i),
                    dir,
                })),
                Err(e) => tasks.push(Task {
                    // Unreadable job directory: reported when its master is consumed.
                    job: k,
                    subjob: Some(u32::MAX),
                    dir: PathBuf::from(e.to_string()),
                }),
            }
            let last = k + 1 == jobs.len();
            while tasks.len() >= ROUND_FILES || (last && !tasks.is_empty()) {
                let round: Vec<Task> = tasks.drain(..tasks.len().min(ROUND_FILES)).collect();
                let dirs: Vec<&Path> = round
                    .iter()
                    .map(|t| {
                        if t.subjob == Some(u32::MAX) {
                            Path::new("")
                        } else {
                            t.dir.as_path()
                        }
                    })
                    .collect();
                let loaded = load_all(&dirs);
                for (task, result) in round.into_iter().zip(loaded) {
                    let (entry, n, id) = &jobs[task.job];
                    match task.subjob {
                        None => {
                            if let Some(done) = current.take() {
                                self.finish_job(registry, done, progress)?;
                            }
                            let folders = tree.get(&entry.id).map_or(&[][..], Vec::as_slice);
                            current = Some(Current {
                                builder: self.start_job(ctx, registry, entry.id, result, folders),
                                ganga_id: entry.id,
                                subjobs: *n,
                                id: *id,
                            });
                        }
                        Some(u32::MAX) => {
                            if let Some(c) = current.as_mut()
                                && c.builder.take().is_some()
                            {
                                self.skip(
                                    registry,
                                    &entry.id.to_string(),
                                    "unreadable",
                                    task.dir.display().to_string(),
                                );
                            }
                        }
                        Some(index) => {
                            if let Some(b) = current.as_mut().and_then(|c| c.builder.as_mut()) {
                                b.add_subjob(match result {
                                    Ok(l) => SubjobSource {
                                        index,
                                        object: Ok(l.object),
                                        fell_back: l.fell_back,
                                    },
                                    Err(why) => SubjobSource {
                                        index,
                                        object: Err(format!("cannot be read: {why}")),
                                        fell_back: None,
                                    },
                                });
                            }
                        }
                    }
                }
            }
        }
        if let Some(done) = current.take() {
            self.finish_job(registry, done, progress)?;
        }
        Ok(())
    }

    /// The master of a job, ready for its subjobs; `None` when the job is skipped
    /// (reported).
    fn start_job<'c>(
        &mut self,
        ctx: &'c Ctx<'c>,
        registry: &str,
        ganga_id: u64,
        master: Result<repo::StoredObject, String>,
        folders: &[String],
    ) -> Option<map::JobBuilder<'c>> {
        let me = ganga_id.to_string();
        let object = self.object_read(registry, &me, master)?;
        match map::JobBuilder::new(ctx, ganga_id, &object, folders) {
            Ok(b) => Some(b),
            Err(why) => {
                let status = object.str("status").unwrap_or("?").to_owned();
                self.skip(registry, &me, &status, why);
                None
            }
        }
    }

    /// The object a file held, with a note when it was read from `data~`; `None` when it
    /// could not be read (skipped, reported).
    fn object_read(
        &mut self,
        registry: &str,
        me: &str,
        loaded: Result<repo::StoredObject, String>,
    ) -> Option<xml::Object> {
        let loaded = match loaded {
            Ok(l) => l,
            Err(why) => {
                self.skip(registry, me, "unreadable", format!("cannot be read: {why}"));
                return None;
            }
        };
        if let Some(why) = &loaded.fell_back {
            self.report.problem(
                registry,
                me.to_owned(),
                Severity::Flagged,
                format!("read from data~ because {why}"),
            );
        }
        Some(loaded.object)
    }

    fn finish_job(
        &mut self,
        registry: &str,
        done: Current<'_>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), MigrateError> {
        if let Some(builder) = done.builder {
            match builder.finish() {
                Ok(mapped) => self.accept(registry, done.ganga_id, done.id, mapped)?,
                Err(why) => {
                    let me = done.ganga_id.to_string();
                    self.skip(registry, &me, "?", why);
                }
            }
        }
        progress(Progress::Object {
            subjobs: done.subjobs,
        });
        Ok(())
    }

    fn skip(&mut self, registry: &str, object: &str, ganga_status: &str, reason: String) {
        let r = self.report.registry(registry);
        r.skipped += 1;
        *r.ganga_statuses.entry(ganga_status.to_owned()).or_default() += 1;
        self.report
            .problem(registry, object.to_owned(), Severity::Skipped, reason);
    }

    /// Records a mapped job in the report and queues it for writing under `id`.
    fn accept(
        &mut self,
        registry: &str,
        ganga_id: u64,
        (id, revision): (JobId, u64),
        mut m: MappedJob,
    ) -> Result<(), MigrateError> {
        m.job.id = id;
        m.job.revision = revision;
        {
            let r = self.report.registry(registry);
            r.imported += 1;
            *r.ganga_statuses.entry(m.ganga_status.clone()).or_default() += 1;
            *r.statuses.entry(m.job.run.status.to_string()).or_default() += 1;
            r.subjobs_imported += m.subjobs.len() as u64;
            for sj in &m.subjobs {
                *r.subjob_statuses
                    .entry(sj.run.status.to_string())
                    .or_default() += 1;
            }
        }
        if !registry.ends_with("jobs") && id != ganga_id {
            self.report.renumbered.push(Renumbered {
                registry: registry.to_owned(),
                ganga_id,
                id,
            });
        }
        for (object, severity, reason) in m.problems.drain(..) {
            self.report.problem(registry, object, severity, reason);
        }
        for (object, status) in m.active.drain(..) {
            self.report.active.push(ActiveInGanga {
                ganga_ref: if registry == "jobs" {
                    object
                } else {
                    format!("{registry} {object}")
                },
                ganga_status: status,
                id: Some(id),
            });
        }
        for what in m.dropped.drain(..) {
            self.report.drop_count(what, 1);
        }
        let subjobs = m.subjobs.len();
        self.batch.push(Pending {
            job: m.job,
            subjobs: m.subjobs,
            outputs: m.outputs,
        });
        self.batch_subjobs += subjobs;
        if self.batch_subjobs >= self.options.batch_subjobs.max(1) || self.batch.len() >= BATCH_JOBS
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Brings the queued jobs' outputs over, then writes the jobs (outputs first: a job in
    /// the store is taken as migrated by a later run).
    pub(crate) fn flush(&mut self) -> Result<(), MigrateError> {
        let batch = std::mem::take(&mut self.batch);
        self.batch_subjobs = 0;
        if batch.is_empty() {
            return Ok(());
        }
        for p in &batch {
            self.bring_outputs(p)?;
        }
        let Some(store) = self.store else {
            return Ok(());
        };
        let chunk = self.options.batch_subjobs.max(1);
        let mut changes = Vec::new();
        for p in batch {
            if p.subjobs.len() <= chunk {
                let job = p.job.id;
                changes.push(Change::PutJob(p.job));
                if !p.subjobs.is_empty() {
                    changes.push(Change::PutSubjobs {
                        job,
                        subjobs: p.subjobs,
                    });
                }
                continue;
            }
            // A big job: its subjobs in several transactions. Until the last, the master
            // counts only the subjobs written and carries the `incomplete` mark.
            if !changes.is_empty() {
                store.commit(&std::mem::take(&mut changes))?;
                self.report.commits += 1;
            }
            let mut revision = p.job.revision;
            let total = p.subjobs.len();
            let mut written: Vec<Status> = Vec::with_capacity(total);
            let mut rest = p.subjobs;
            while !rest.is_empty() {
                let tail = rest.split_off(chunk.min(rest.len()));
                let part = std::mem::replace(&mut rest, tail);
                written.extend(part.iter().map(|s| s.run.status));
                let mut job = p.job.clone();
                job.revision = revision;
                job.subjobs = written.iter().copied().collect();
                if written.len() < total {
                    job.metadata.insert(
                        keys::INCOMPLETE.to_owned(),
                        format!("{}/{total} subjobs written", written.len()),
                    );
                }
                let id = job.id;
                let committed = store.commit(&[
                    Change::PutJob(job),
                    Change::PutSubjobs {
                        job: id,
                        subjobs: part,
                    },
                ])?;
                self.report.commits += 1;
                revision = committed.first().map_or(revision + 1, |c| c.revision);
            }
        }
        if !changes.is_empty() {
            store.commit(&changes)?;
            self.report.commits += 1;
        }
        Ok(())
    }

    fn bring_outputs(&mut self, p: &Pending) -> Result<(), MigrateError> {
        for (subjob, from) in &p.outputs {
            let status = match subjob {
                Some(i) => p.subjobs.get(*i as usize).map(|s| s.run.status),
                None => Some(p.job.run.status),
            };
            if !from.is_dir() {
                let ran = status.is_some_and(|s| {
                    !matches!(s, Status::New | Status::Template | Status::Incomplete)
                });
                // A master's own directory exists only when it merged something.
                if ran && (subjob.is_some() || p.subjobs.is_empty()) {
                    self.report.workspace.missing_dirs += 1;
                }
                continue;
            }
            self.report.workspace.dirs += 1;
            let to = self.workspaces.output_dir(JobRef {
                job: p.job.id,
                subjob: *subjob,
            });
            match self.options.workspace {
                WorkspaceMode::None => {}
                _ if self.options.dry_run => count_tree(from, &mut self.report.workspace),
                mode => workspace::bring(from, &to, mode, &mut self.report.workspace)?,
            }
        }
        Ok(())
    }
}

/// What a dry run would copy.
fn count_tree(dir: &Path, report: &mut WorkspaceReport) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            count_tree(&entry.path(), report);
        } else {
            report.files_copied += 1;
            report.bytes += meta.len();
        }
    }
}

/// A box item that is not a job, in a few words (its class and simple attributes).
fn describe_box_item(o: &xml::Object) -> String {
    let parts: Vec<String> = o
        .attrs
        .iter()
        .filter_map(|(k, v)| match v {
            xml::Node::Value(v) if !v.is_none() => Some(format!("{k}={v}")),
            xml::Node::Seq(items) if !items.is_empty() => {
                let shown: Vec<String> = items
                    .iter()
                    .filter_map(|n| match n {
                        xml::Node::Value(v) => Some(v.to_string()),
                        _ => None,
                    })
                    .collect();
                Some(format!("{k}=[{}]", shown.join(", ")))
            }
            _ => None,
        })
        .collect();
    parts.join(", ")
}
