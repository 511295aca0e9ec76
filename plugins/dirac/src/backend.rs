//! The Backend contract, call by call, over [`DiracX`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{StreamExt as _, stream};
use ganga_core::{
    Answers, Backend, BackendDescription, BackendError, BackendRef, Capabilities, CommandStep,
    JobRef, Options, OutputsReport, OutputsRequest, PeekFile, PerJob, PollReport, RemoteStatus,
    SubmitSpec, Submitted, UnitRun, Value,
};
use ganga_plugin_sdk::{PluginContext, blocking};

use crate::auth;
use crate::client::{DiracX, MAX_JDLS_PER_REQUEST};
use crate::error::DiracError;
use crate::jdl::{self, Command, JobDescription};
use crate::login::{self, LoginState};
use crate::sandbox::{self, Limits};
use crate::settings::{JOB_KEYS, JobOptions, Settings};
use crate::status;

/// Reads an environment variable (the process's, or a test's own).
pub type EnvReader = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A group of units sharing an input sandbox, with its PFN (none without input files).
type Uploaded<'a> = (Result<Option<String>, DiracError>, Vec<Prepared<'a>>);

/// How many outputs (downloads and unpacking) run at once within one call.
const OUTPUTS_IN_FLIGHT: usize = 4;
/// The most units of one kill request.
const KILL_CHUNK: usize = 1000;

/// The DIRAC backend: one DiracX server, one identity, the jobs of one ganga home.
pub struct DiracBackend {
    home: PathBuf,
    home_id: String,
    config: Options,
    env: EnvReader,
    settings: Settings,
    client: tokio::sync::OnceCell<DiracX>,
}

impl std::fmt::Debug for DiracBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiracBackend")
            .field("home", &self.home)
            .field("home_id", &self.home_id)
            .field("identity", &self.settings.identity)
            .finish_non_exhaustive()
    }
}

fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// The identity the last `ganga dirac login` recorded, if its file is readable.
fn stored_identity(home: &Path) -> Option<crate::settings::Identity> {
    auth::read_stored(&home.join("dirac").join("tokens.json"))
        .ok()
        .flatten()
        .and_then(|t| t.identity())
}

/// A short tag safe in a JDL job name (the host gives one; an older host does not).
fn home_tag(home_id: &str, home: &Path) -> String {
    let clean: String = home_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(32)
        .collect();
    if clean.is_empty() {
        sandbox::sha256_hex(home.as_os_str().as_encoded_bytes())[..12].to_owned()
    } else {
        clean
    }
}

/// The JDL job name of one run of one unit: how `find` recognises it.
pub(crate) fn job_name(home_tag: &str, job: JobRef, run: u32) -> String {
    format!("ganga:{home_tag}:{job}:r{run}")
}

impl DiracBackend {
    /// A backend for `home`, with `config` (the `[plugin.dirac]` table) and an
    /// environment reader (tests pass their own).
    pub fn with_env(
        home: &Path,
        home_id: &str,
        config: Options,
        env: EnvReader,
    ) -> Result<DiracBackend, DiracError> {
        let settings = Settings::resolve(&config, &*env, home, stored_identity(home))?;
        Ok(DiracBackend {
            home: home.to_path_buf(),
            home_id: home_tag(home_id, home),
            config,
            env,
            settings,
            client: tokio::sync::OnceCell::new(),
        })
    }

    /// HTTP requests this backend has sent (every attempt): what the benchmarks count.
    #[doc(hidden)]
    pub fn requests_sent(&self) -> u64 {
        self.client.get().map_or(0, DiracX::requests_sent)
    }

    /// The client, made on first use. Until the backend is set up (a first login), every
    /// use says what to do, and a later use looks again.
    async fn client(&self) -> Result<&DiracX, DiracError> {
        self.client
            .get_or_try_init(|| async {
                if self.settings.identity.is_some() {
                    return DiracX::new(&self.settings);
                }
                let home = self.home.clone();
                // Without a stored identity the settings say what is missing.
                let stored = blocking("reading the stored login", move || stored_identity(&home))
                    .await
                    .ok()
                    .flatten();
                let settings = Settings::resolve(&self.config, &*self.env, &self.home, stored)?;
                DiracX::new(&settings)
            })
            .await
    }

    async fn submit_units(&self, specs: &[SubmitSpec]) -> Result<Answers<Submitted>, DiracError> {
        let client = self.client().await?;
        let mut answers: Answers<Submitted> = Vec::with_capacity(specs.len());

        // What each unit needs, or why it cannot go.
        let mut ready: Vec<Prepared<'_>> = Vec::with_capacity(specs.len());
        for spec in specs {
            match prepare(spec, &self.settings, client) {
                Ok(p) => ready.push(p),
                Err(e) => answers.push((spec.job, Err(format!("job {}: {e}", spec.job)))),
            }
        }

        // Resubmissions: DIRAC may run the previous job again under its id.
        let fresh = self.reschedule(client, ready, &mut answers).await?;

        // Input sandboxes: packed and uploaded once per distinct set of files.
        let mut groups: BTreeMap<(Vec<PathBuf>, bool), Vec<Prepared<'_>>> = BTreeMap::new();
        for p in fresh {
            let mut files = p.spec.input_files.clone();
            files.sort();
            groups
                .entry((files, p.command.needs_wrapper()))
                .or_default()
                .push(p);
        }
        let uploads: Vec<Uploaded<'_>> =
            // (The futures are gathered first: a closure inside the stream would make the
            // call's future too generic for `Send`.)
            stream::iter(gather(groups.into_iter().map(|(key, units)| upload_group(client, key, units))))
                .buffer_unordered(self.settings.submit_in_flight)
                .collect()
                .await;

        // JDLs, twenty to a request, several requests in flight.
        let mut jdls: Vec<Described> = Vec::new();
        let mut first_whole: Option<DiracError> = None;
        for (pfn, units) in uploads {
            match pfn {
                Ok(pfn) => {
                    for p in units {
                        // LFNs go in InputData (from the options), not in the sandbox.
                        let inputs: Vec<String> = pfn.iter().cloned().collect();
                        let name = job_name(&self.home_id, p.spec.job, p.spec.run);
                        let description = JobDescription {
                            name: &name,
                            command: &p.command,
                            env: &p.spec.env,
                            input_sandbox: &inputs,
                            output_patterns: &p.spec.output_patterns,
                            options: &p.options,
                        };
                        match jdl::write(&description) {
                            Ok(jdl) => jdls.push(Described {
                                job: p.spec.job,
                                name,
                                jdl,
                            }),
                            Err(e) => {
                                answers.push((p.spec.job, Err(format!("job {}: {e}", p.spec.job))))
                            }
                        }
                    }
                }
                Err(e) => {
                    if e.is_whole_call() && first_whole.is_none() {
                        first_whole = Some(e.clone());
                    }
                    for p in units {
                        answers.push((p.spec.job, Err(format!("job {}: {e}", p.spec.job))));
                    }
                }
            }
        }
        let chunks: Vec<Vec<Described>> = jdls
            .chunks(MAX_JDLS_PER_REQUEST)
            .map(<[_]>::to_vec)
            .collect();
        let results = stream::iter(gather(
            chunks.into_iter().map(|chunk| submit_chunk(client, chunk)),
        ))
        .buffer_unordered(self.settings.submit_in_flight)
        .collect::<Vec<_>>()
        .await;
        let mut any_submitted = false;
        for chunk in results {
            for (job, result) in chunk {
                match result {
                    Ok(id) => {
                        any_submitted = true;
                        answers.push((job, Ok(Submitted::id(id.to_string()))));
                    }
                    Err(e) => {
                        if e.is_whole_call() && first_whole.is_none() {
                            first_whole = Some(e.clone());
                        }
                        answers.push((job, Err(format!("job {job}: {e}"))));
                    }
                }
            }
        }
        // Nothing got through because of the server or the credentials: the call failed
        // as a whole and no unit changes.
        if let Some(e) = first_whole
            && !any_submitted
            && !answers.iter().any(|(_, a)| a.is_ok())
        {
            return Err(e);
        }
        Ok(answers)
    }

    /// Reschedules the units that have a previous DIRAC job; answers those DIRAC took
    /// back, returns the rest (to be submitted afresh).
    async fn reschedule<'a>(
        &self,
        client: &DiracX,
        ready: Vec<Prepared<'a>>,
        answers: &mut Answers<Submitted>,
    ) -> Result<Vec<Prepared<'a>>, DiracError> {
        let (again, mut fresh): (Vec<_>, Vec<_>) =
            ready.into_iter().partition(|p| p.previous.is_some());
        if again.is_empty() {
            return Ok(fresh);
        }
        let ids: Vec<i64> = again.iter().filter_map(|p| p.previous).collect();
        let result = match client.reschedule(&ids).await {
            Ok(result) => result,
            Err(e) if e.is_whole_call() => return Err(e),
            Err(e) => {
                tracing::debug!(
                    "DIRAC rescheduled none of {} jobs ({e}): submitting afresh",
                    ids.len()
                );
                fresh.extend(again);
                return Ok(fresh);
            }
        };
        let mut rescheduled = Vec::new();
        for p in again {
            let Some(id) = p.previous else { continue };
            match result.status_of(id) {
                Some("Received" | "Checking" | "Waiting" | "Rescheduled") => {
                    rescheduled.push(id);
                    answers.push((p.spec.job, Ok(Submitted::id(id.to_string()))));
                }
                other => {
                    tracing::debug!(
                        "DIRAC job {id} was not rescheduled ({}); job {} is submitted afresh",
                        other.map_or_else(
                            || result.failure_of(id).unwrap_or_default(),
                            str::to_owned
                        ),
                        p.spec.job
                    );
                    fresh.push(p);
                }
            }
        }
        if !rescheduled.is_empty() {
            // The previous run's output sandbox must not be taken for this run's.
            if let Err(e) = client.unassign_sandboxes(&rescheduled).await {
                tracing::warn!("cannot detach the old sandboxes of rescheduled DIRAC jobs: {e}");
            }
        }
        Ok(fresh)
    }

    async fn poll_units(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, DiracError> {
        let client = self.client().await?;
        let mut answers: Answers<PollReport> = Vec::with_capacity(jobs.len());
        let mut ids: Vec<i64> = Vec::with_capacity(jobs.len());
        for job in jobs {
            match parse_id(&job.id) {
                Ok(id) => ids.push(id),
                Err(e) => answers.push((job.job, Err(e))),
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let rows = client.job_rows(&ids).await?;
        let by_id: HashMap<i64, &status::JobRow> = rows.iter().map(|r| (r.job_id, r)).collect();
        for job in jobs {
            let Ok(id) = parse_id(&job.id) else { continue };
            let report = match by_id.get(&id) {
                Some(row) => {
                    let seen = status::seen(row);
                    PollReport {
                        status: seen.status,
                        native_state: seen.native,
                        exit_code: None,
                        reason: seen.reason,
                        actual_ce: seen.site,
                        started: seen.started,
                        ended: seen.ended,
                    }
                }
                None => PollReport::new(
                    RemoteStatus::Absent,
                    format!("DiracX does not know job {id}"),
                ),
            };
            answers.push((job.job, Ok(report)));
        }
        Ok(answers)
    }

    async fn kill_units(&self, jobs: &[BackendRef]) -> Result<Answers<()>, DiracError> {
        let client = self.client().await?;
        let mut answers: Answers<()> = Vec::with_capacity(jobs.len());
        let mut valid: Vec<(JobRef, i64)> = Vec::with_capacity(jobs.len());
        for job in jobs {
            match parse_id(&job.id) {
                Ok(id) => valid.push((job.job, id)),
                Err(e) => answers.push((job.job, Err(e))),
            }
        }
        for chunk in valid.chunks(KILL_CHUNK) {
            let ids: Vec<i64> = chunk.iter().map(|(_, id)| *id).collect();
            let result = client.set_status(&ids, "Killed", "Killed by ganga").await?;
            for (job, id) in chunk {
                // An illegal change is answered 200 with the old status: read each one.
                let answer = match (result.status_of(*id), result.failure_of(*id)) {
                    (Some("Killed"), _) => Ok(()),
                    (Some(other), _) => Err(format!(
                        "job {job}: DIRAC did not kill job {id}: it is {other}"
                    )),
                    (None, Some(why)) => {
                        Err(format!("job {job}: DIRAC did not kill job {id}: {why}"))
                    }
                    (None, None) => Err(format!("job {job}: DiracX did not answer for job {id}")),
                };
                answers.push((*job, answer));
            }
        }
        Ok(answers)
    }

    async fn outputs_of(&self, req: &OutputsRequest) -> Result<OutputsReport, DiracError> {
        let client = self.client().await?;
        let id = parse_id(&req.job.id).map_err(DiracError::Local)?;
        let pfns = client.output_sandboxes(id).await?;
        let scratch = req.job.workspace.join("dirac");
        tokio::fs::create_dir_all(&scratch)
            .await
            .map_err(|e| DiracError::local(format!("cannot create {}", scratch.display()), e))?;
        tokio::fs::create_dir_all(&req.output_dir)
            .await
            .map_err(|e| {
                DiracError::local(format!("cannot create {}", req.output_dir.display()), e)
            })?;
        let mut skipped = Vec::new();
        for (i, pfn) in pfns.iter().enumerate() {
            let file = scratch.join(format!("output-sandbox-{i}.download"));
            client.download_sandbox(pfn, &file).await?;
            let dest = req.output_dir.clone();
            let f = file.clone();
            let unpacked = blocking("unpacking", move || {
                let reader =
                    std::fs::File::open(&f).map_err(|e| format!("{}: {e}", f.display()))?;
                sandbox::unpack(std::io::BufReader::new(reader), &dest, Limits::default())
            })
            .await?
            .map_err(|e| DiracError::Local(format!("the output sandbox of DIRAC job {id}: {e}")))?;
            let _ = tokio::fs::remove_file(&file).await;
            skipped.extend(unpacked.skipped);
        }
        let dir = req.output_dir.clone();
        let patterns = req.patterns.clone();
        let (collected, unmatched) = blocking("matching outputs", move || collect(&dir, &patterns))
            .await?
            .map_err(DiracError::Local)?;
        Ok(OutputsReport {
            collected,
            unmatched,
            skipped,
        })
    }

    async fn outputs_keyed(
        &self,
        req: &OutputsRequest,
    ) -> (JobRef, Result<OutputsReport, DiracError>) {
        (req.job.job, self.outputs_of(req).await)
    }

    async fn peek_unit(
        &self,
        job: &BackendRef,
        file: &PeekFile,
        max_bytes: u64,
    ) -> Result<Vec<u8>, DiracError> {
        let name = match file {
            PeekFile::Stdout => jdl::STDOUT.to_owned(),
            PeekFile::Stderr => jdl::STDERR.to_owned(),
            PeekFile::Path(p) => {
                ganga_core::check_inside_workdir(p)
                    .map_err(|e| DiracError::Local(format!("peek: {e}")))?;
                p.clone()
            }
        };
        let client = self.client().await?;
        let id = parse_id(&job.id).map_err(DiracError::Local)?;
        let pfns = client.output_sandboxes(id).await?;
        if pfns.is_empty() {
            return Err(DiracError::Local(format!(
                "job {}: DIRAC job {id} has no output sandbox yet: its {} can be seen once it ended \
                 (DiracX offers no view of a running job's output)",
                job.job,
                file.name()
            )));
        }
        let scratch = job.workspace.join("dirac");
        tokio::fs::create_dir_all(&scratch)
            .await
            .map_err(|e| DiracError::local(format!("cannot create {}", scratch.display()), e))?;
        for (i, pfn) in pfns.iter().enumerate() {
            let tmp = scratch.join(format!("peek-{i}.download"));
            client.download_sandbox(pfn, &tmp).await?;
            let t = tmp.clone();
            let wanted = PathBuf::from(&name);
            let tail = blocking("reading the sandbox", move || {
                let reader =
                    std::fs::File::open(&t).map_err(|e| format!("{}: {e}", t.display()))?;
                sandbox::tail_of_entry(std::io::BufReader::new(reader), &wanted, max_bytes)
            })
            .await?
            .map_err(DiracError::Local)?;
            let _ = tokio::fs::remove_file(&tmp).await;
            if let Some(tail) = tail {
                return Ok(tail);
            }
        }
        Err(DiracError::Local(format!(
            "job {}: the output sandbox of DIRAC job {id} has no `{name}`",
            job.job
        )))
    }

    async fn find_units(&self, jobs: &[UnitRun]) -> Result<Answers<Option<Submitted>>, DiracError> {
        let client = self.client().await?;
        let names: Vec<String> = jobs
            .iter()
            .map(|u| job_name(&self.home_id, u.job, u.run))
            .collect();
        let found = client.jobs_named(&names).await?;
        let mut by_name: HashMap<&str, Vec<i64>> = HashMap::new();
        for row in &found {
            by_name
                .entry(row.name.as_str())
                .or_default()
                .push(row.job_id);
        }
        Ok(jobs
            .iter()
            .zip(&names)
            .map(|(unit, name)| {
                let answer = by_name
                    .get(name.as_str())
                    .and_then(|ids| ids.iter().min().copied())
                    .map(|id| {
                        if by_name.get(name.as_str()).is_some_and(|ids| ids.len() > 1) {
                            tracing::warn!(
                                "job {}: DIRAC has several jobs named {name}; following {id}",
                                unit.job
                            );
                        }
                        Submitted::id(id.to_string())
                    });
                (unit.job, Ok(answer))
            })
            .collect())
    }
}

fn gather<F>(futures: impl Iterator<Item = F>) -> Vec<F> {
    futures.collect()
}

/// One unit, checked and ready to describe.
struct Prepared<'a> {
    spec: &'a SubmitSpec,
    options: JobOptions,
    command: Command,
    previous: Option<i64>,
}

fn prepare<'a>(
    spec: &'a SubmitSpec,
    settings: &Settings,
    client: &DiracX,
) -> Result<Prepared<'a>, String> {
    let options = JobOptions::parse(&spec.options, &settings.defaults, Some(client.identity()))?;
    let shipped = spec
        .input_files
        .iter()
        .any(|f| f.as_os_str() == spec.exe.as_str());
    let command = Command::new(&spec.exe, &spec.args, shipped)?;
    for f in &spec.input_files {
        if !f.is_absolute() {
            return Err(format!(
                "input file {} is not an absolute path",
                f.display()
            ));
        }
    }
    let previous = match (&spec.previous_id, spec.run) {
        (Some(id), run) if run > 1 => parse_id(id).ok(),
        _ => None,
    };
    Ok(Prepared {
        spec,
        options,
        command,
        previous,
    })
}

fn parse_id(id: &str) -> Result<i64, String> {
    id.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{id}` is not a DIRAC job id"))
}

/// Uploads the sandbox of one group of units (those shipping the same files).
async fn upload_group<'a>(
    client: &DiracX,
    (files, wrapper): (Vec<PathBuf>, bool),
    units: Vec<Prepared<'a>>,
) -> Uploaded<'a> {
    if files.is_empty() && !wrapper {
        return (Ok(None), units);
    }
    (upload(client, files, wrapper).await.map(Some), units)
}

async fn upload(client: &DiracX, files: Vec<PathBuf>, wrapper: bool) -> Result<String, DiracError> {
    let packed = blocking("packing the input sandbox", move || {
        let extra: Vec<(&str, &[u8], bool)> = if wrapper {
            vec![(jdl::WRAPPER_NAME, jdl::WRAPPER_SCRIPT.as_bytes(), true)]
        } else {
            Vec::new()
        };
        sandbox::pack(&files, &extra)
    })
    .await?
    .map_err(DiracError::Local)?;
    client.upload_sandbox(&packed).await
}

/// One unit's JDL, with the job name it carries.
#[derive(Debug, Clone)]
struct Described {
    job: JobRef,
    name: String,
    jdl: String,
}

/// Submits one chunk. A chunk DiracX refuses as a whole (400) is sent again job by job, so
/// that one bad JDL fails alone. A chunk that met a server error (5xx) may or may not have
/// been created: the jobs are looked up by name, and only those not there are sent again.
async fn submit_chunk(
    client: &DiracX,
    chunk: Vec<Described>,
) -> Vec<(JobRef, Result<i64, DiracError>)> {
    let jdls: Vec<String> = chunk.iter().map(|d| d.jdl.clone()).collect();
    match client.submit_jdls(&jdls).await {
        Ok(ids) => chunk
            .iter()
            .zip(ids)
            .map(|(d, inserted)| (d.job, Ok(inserted.job_id)))
            .collect(),
        Err(DiracError::Refused { status: 400, .. }) if chunk.len() > 1 => {
            let mut out = Vec::with_capacity(chunk.len());
            for d in chunk {
                let one = client
                    .submit_jdls(std::slice::from_ref(&d.jdl))
                    .await
                    .and_then(|ids| {
                        ids.first()
                            .map(|i| i.job_id)
                            .ok_or_else(|| DiracError::protocol("submitting a job", "no job id"))
                    });
                out.push((d.job, one));
            }
            out
        }
        Err(
            e @ DiracError::Refused {
                status: 500..=599, ..
            },
        ) => recover_chunk(client, chunk, e).await,
        Err(e) => chunk.into_iter().map(|d| (d.job, Err(e.clone()))).collect(),
    }
}

async fn recover_chunk(
    client: &DiracX,
    chunk: Vec<Described>,
    first: DiracError,
) -> Vec<(JobRef, Result<i64, DiracError>)> {
    let names: Vec<String> = chunk.iter().map(|d| d.name.clone()).collect();
    let found = match client.jobs_named(&names).await {
        Ok(found) => found,
        Err(_) => {
            return chunk
                .into_iter()
                .map(|d| (d.job, Err(first.clone())))
                .collect();
        }
    };
    let mut out = Vec::with_capacity(chunk.len());
    let mut missing = Vec::new();
    for d in chunk {
        match found
            .iter()
            .filter(|f| f.name == d.name)
            .map(|f| f.job_id)
            .min()
        {
            Some(id) => out.push((d.job, Ok(id))),
            None => missing.push(d),
        }
    }
    tracing::debug!(
        "DiracX failed a submission ({first}); {} of its jobs exist, {} are sent again",
        out.len(),
        missing.len()
    );
    if !missing.is_empty() {
        let jdls: Vec<String> = missing.iter().map(|d| d.jdl.clone()).collect();
        match client.submit_jdls(&jdls).await {
            Ok(ids) => out.extend(missing.iter().zip(ids).map(|(d, i)| (d.job, Ok(i.job_id)))),
            Err(e) => out.extend(missing.into_iter().map(|d| (d.job, Err(e.clone())))),
        }
    }
    out
}

/// Files of `dir` matched by `patterns` (relative names), the patterns that matched
/// nothing, and stdout/stderr under their ganga names.
fn collect(dir: &Path, patterns: &[String]) -> Result<(Vec<String>, Vec<String>), String> {
    for (from, to) in [(jdl::STDOUT, "stdout"), (jdl::STDERR, "stderr")] {
        let src = dir.join(from);
        if std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_file())
            && !patterns.iter().any(|p| p == from)
        {
            std::fs::rename(&src, dir.join(to)).map_err(|e| format!("{}: {e}", src.display()))?;
        }
    }
    let files = walk(dir)?;
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut collected: Vec<String> = Vec::new();
    let mut unmatched = Vec::new();
    for name in ["stdout", "stderr"] {
        if files.iter().any(|f| f == name) {
            collected.push(name.to_owned());
        }
    }
    for pattern in patterns {
        let matched: Vec<&String> = match glob::Pattern::new(pattern) {
            Ok(p) if ganga_core::check_inside_workdir(pattern).is_ok() => files
                .iter()
                .filter(|f| p.matches_with(f, options))
                .collect(),
            _ => Vec::new(),
        };
        if matched.is_empty() {
            unmatched.push(pattern.clone());
        }
        for f in matched {
            if !collected.contains(f) {
                collected.push(f.clone());
            }
        }
    }
    Ok((collected, unmatched))
}

/// Regular files below `dir`, as relative paths with `/`; links are not followed.
fn walk(dir: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let here = dir.join(&rel);
        let entries = std::fs::read_dir(&here).map_err(|e| format!("{}: {e}", here.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", here.display()))?;
            let kind = entry
                .file_type()
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            let name = rel.join(entry.file_name());
            if kind.is_dir() {
                todo.push(name);
            } else if kind.is_file()
                && let Some(s) = name.to_str()
            {
                out.push(s.to_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn state_to_value(state: &LoginState) -> Value {
    Value::Table(BTreeMap::from([
        ("url".to_owned(), Value::from(state.url.clone())),
        ("vo".to_owned(), Value::from(state.vo.clone())),
        ("group".to_owned(), Value::from(state.group.clone())),
        (
            "device_code".to_owned(),
            Value::from(state.device_code.clone()),
        ),
        ("expires_at".to_owned(), Value::Integer(state.expires_at)),
    ]))
}

fn state_from_value(value: &Value) -> Option<LoginState> {
    let t = value.as_table()?;
    let s = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(LoginState {
        url: s("url")?,
        vo: s("vo")?,
        group: s("group")?,
        device_code: s("device_code")?,
        expires_at: t.get("expires_at").and_then(Value::as_integer)?,
    })
}

fn keyed<T>(answers: Result<Answers<T>, DiracError>) -> Result<Answers<T>, BackendError> {
    answers.map_err(BackendError::from)
}

#[async_trait]
impl Backend for DiracBackend {
    async fn describe(&self) -> Result<BackendDescription, BackendError> {
        Ok(BackendDescription {
            name: "dirac".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            poll_interval_secs: self.settings.poll_interval_secs,
            max_batch: 1000,
            capabilities: Capabilities {
                poll_all: true,
                watch: false,
                find: true,
            },
            options: Some(JOB_KEYS.iter().map(|k| (*k).to_owned()).collect()),
        })
    }

    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        keyed(self.submit_units(jobs).await)
    }

    async fn poll(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        keyed(self.poll_units(jobs).await)
    }

    async fn poll_all(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        // One search with every id in an `in` filter, paged by 10,000.
        self.poll(jobs).await
    }

    async fn find(&self, jobs: &[UnitRun]) -> Result<Answers<Option<Submitted>>, BackendError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        keyed(self.find_units(jobs).await)
    }

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Answers<()>, BackendError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        keyed(self.kill_units(jobs).await)
    }

    async fn peek(
        &self,
        job: &BackendRef,
        file: &PeekFile,
        max_bytes: u64,
    ) -> Result<Vec<u8>, BackendError> {
        self.peek_unit(job, file, max_bytes)
            .await
            .map_err(BackendError::from)
    }

    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError> {
        let results: Vec<(JobRef, Result<OutputsReport, DiracError>)> =
            stream::iter(gather(jobs.iter().map(|req| self.outputs_keyed(req))))
                .buffer_unordered(OUTPUTS_IN_FLIGHT)
                .collect()
                .await;
        let mut answers: Answers<OutputsReport> = Vec::with_capacity(results.len());
        for (job, result) in results {
            let answer: PerJob<OutputsReport> = match result {
                Ok(report) => Ok(report),
                // No unit can get its outputs now: fail the call, change nothing.
                Err(e) if e.is_whole_call() => return Err(e.into()),
                Err(e) => Err(format!("job {job}: {e}")),
            };
            answers.push((job, answer));
        }
        Ok(answers)
    }

    async fn command(
        &self,
        args: &[String],
        state: Option<Value>,
    ) -> Result<CommandStep, BackendError> {
        let state = match state {
            None => None,
            Some(v) => Some(state_from_value(&v).ok_or_else(|| {
                BackendError::new(
                    ganga_core::BackendErrorKind::Protocol,
                    "dirac: a login step's state is damaged",
                )
            })?),
        };
        let step = login::command(&self.settings, args, state).await;
        Ok(CommandStep {
            output: step.output,
            state: step.state.as_ref().map(state_to_value),
            exit_code: step.exit_code,
        })
    }
}

impl ganga_plugin_sdk::BackendPlugin for DiracBackend {
    fn create(context: PluginContext) -> Result<Self, String> {
        DiracBackend::with_env(
            &context.home,
            &context.home_id,
            context.config,
            Arc::new(process_env),
        )
        .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_carry_home_unit_and_run() {
        assert_eq!(job_name("h1", JobRef::subjob(12, 3), 2), "ganga:h1:12.3:r2");
        assert_eq!(home_tag("ab-c_1", Path::new("/x")), "ab-c_1");
        assert_eq!(home_tag("", Path::new("/x")).len(), 12);
        assert_eq!(home_tag("a b;c", Path::new("/x")), "abc");
    }

    #[test]
    fn login_state_survives_the_round_trip() {
        let s = LoginState {
            url: "http://x/".into(),
            vo: "v".into(),
            group: "g".into(),
            device_code: "d".into(),
            expires_at: 42,
        };
        assert_eq!(state_from_value(&state_to_value(&s)), Some(s));
        assert_eq!(state_from_value(&Value::from("x")), None);
    }

    #[test]
    fn outputs_are_matched_and_stdout_renamed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("std.out"), "o").expect("write");
        std::fs::create_dir(dir.path().join("res")).expect("mkdir");
        std::fs::write(dir.path().join("res").join("a.txt"), "a").expect("write");
        std::fs::write(dir.path().join(".hidden"), "h").expect("write");
        let (collected, unmatched) = collect(
            dir.path(),
            &[
                "res/*.txt".to_owned(),
                "*.root".to_owned(),
                "*".to_owned(),
                "../x".to_owned(),
            ],
        )
        .expect("ok");
        assert_eq!(collected, ["stdout", "res/a.txt"]);
        assert_eq!(unmatched, ["*.root", "../x"]);
        assert!(dir.path().join("stdout").exists());
        // Again: the same answer (idempotent).
        let again = collect(dir.path(), &["res/*.txt".to_owned()]).expect("ok");
        assert_eq!(again.0, ["stdout", "res/a.txt"]);
    }

    #[test]
    fn ids_are_positive_integers() {
        assert_eq!(parse_id(" 42 "), Ok(42));
        assert!(parse_id("0").is_err());
        assert!(parse_id("abc").is_err());
    }
}
