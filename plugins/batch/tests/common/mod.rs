//! What the real-system tests share: checking that the batch system is up (and failing
//! with how to start it when it is not), a backend on a fresh home, logging wrappers that
//! count the commands the backend runs, and waiting on polls.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ganga_backend_batch::BatchBackend;
use ganga_core::{
    Backend, BackendRef, JobRef, Options, OutputsReport, OutputsRequest, PollReport, RemoteStatus,
    SubmitSpec, UnitRun, Value, Workspaces,
};
use ganga_test_support::conformance::{self, ConformanceEnv, ShellJob, backend_ref};

/// The project's scripts that start the batch systems.
pub fn ci_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.ci/batch")
        .join(name)
}

/// Fails the test, saying how to start the system, unless `<system>.sh status` says it
/// is ready. A test that needs a real batch system never skips.
pub fn require(system: &str) {
    let script = ci_script(&format!("{system}.sh"));
    let out = Command::new("bash").arg(&script).arg("status").output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{system} is not running, and this test needs it: start it (as root) with `{} start` \
             (it installs and starts a single-node {system} from Debian packages).\nstatus said: {}{}",
            script.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("cannot run {}: {e}", script.display()),
    }
}

/// A lock shared by every test that uses Slurm, taken exclusively by the one that stops
/// its controller, so that test does not pull the controller from under the others
/// (nextest runs each test in a process of its own).
pub struct SlurmLock(#[allow(dead_code)] File);

impl SlurmLock {
    fn open() -> File {
        let path = std::env::temp_dir().join("ganga-batch-tests-slurm.lock");
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
    }

    pub fn shared() -> SlurmLock {
        let f = SlurmLock::open();
        f.lock_shared().expect("a shared lock");
        SlurmLock(f)
    }

    pub fn exclusive() -> SlurmLock {
        let f = SlurmLock::open();
        f.lock().expect("an exclusive lock");
        SlurmLock(f)
    }
}

/// A fresh ganga home with its own id, so that the listing of one test never shows
/// another's jobs.
pub struct Home {
    pub dir: tempfile::TempDir,
    pub id: String,
}

impl Home {
    pub fn new() -> Home {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let id = format!("t{:x}{:x}", std::process::id(), n);
        let dir = tempfile::Builder::new()
            .prefix("ganga-batch-test")
            .tempdir()
            .expect("a temporary directory");
        Home { dir, id }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn workspaces(&self) -> Workspaces {
        Workspaces::new(self.path().join("workspace"))
    }

    pub fn tag(&self) -> String {
        format!("ganga-{}", self.id)
    }

    pub fn backend(&self, config: &[(&str, Value)]) -> BatchBackend {
        let options: Options = config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        BatchBackend::new(self.path().to_owned(), &self.id, &options)
            .unwrap_or_else(|e| panic!("the backend starts: {e}"))
    }

    /// A wrapper around `real` that logs each call in `<home>/calls/<name>` and runs it.
    pub fn logged(&self, name: &str, real: &str) -> PathBuf {
        let dir = self.path().join("calls");
        std::fs::create_dir_all(&dir).expect("created");
        let path = dir.join(format!("{name}-logged"));
        let log = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{real}' \"$@\"\n",
                log.display()
            ),
        )
        .expect("written");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        path
    }

    /// How many times the logged command `name` ran.
    pub fn calls(&self, name: &str) -> usize {
        std::fs::read_to_string(self.path().join("calls").join(name))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

/// A `commands` table for the config.
pub fn commands(pairs: &[(&str, &Path)]) -> Value {
    Value::Table(
        pairs
            .iter()
            .map(|(k, p)| ((*k).to_owned(), Value::from(p.display().to_string())))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// The config of a backend on `system` whose commands (name, real path) run through
/// [`Home::logged`] wrappers, so that a test can count them.
pub fn logged_config(
    home: &Home,
    system: &str,
    real: &[(&str, &str)],
) -> Vec<(&'static str, Value)> {
    let wrappers: Vec<(&str, PathBuf)> = real
        .iter()
        .map(|(name, path)| (*name, home.logged(name, path)))
        .collect();
    let pairs: Vec<(&str, &Path)> = wrappers.iter().map(|(n, p)| (*n, p.as_path())).collect();
    vec![("system", system.into()), ("commands", commands(&pairs))]
}

/// Where the conformance suite runs against a real batch system: it waits up to two
/// minutes for a job, polling often.
pub fn conformance_env() -> ConformanceEnv {
    ConformanceEnv::new()
        .expect("a temporary directory")
        .with_timeout(Duration::from_secs(120))
        .with_poll_interval(Duration::from_millis(300))
}

/// Runs the whole conformance suite, failing the test with every check that failed.
pub async fn conforms(backend: &dyn Backend) {
    conformance::run(backend, &conformance_env())
        .await
        .unwrap_or_else(|f| panic!("{f}"));
}

pub fn spec(home: &Home, job: JobRef, shell: &ShellJob) -> SubmitSpec {
    shell.spec(job, &home.workspaces())
}

/// The `n` subjobs of job `job`, each running `program` with its index as `$1` and
/// collecting `output` (a pattern).
pub fn indexed_specs(
    home: &Home,
    job: u64,
    n: u32,
    program: &str,
    output: &str,
) -> Vec<SubmitSpec> {
    (0..n)
        .map(|i| {
            let shell = ShellJob::new(program).arg(i.to_string()).output(output);
            spec(home, JobRef::subjob(job, i), &shell)
        })
        .collect()
}

/// Collects every unit's outputs into its spec's output directory, expecting each
/// collection to succeed; the reports in the order of `refs`.
pub async fn collect_outputs(
    backend: &dyn Backend,
    refs: &[BackendRef],
    specs: &[SubmitSpec],
) -> Vec<OutputsReport> {
    let requests: Vec<_> = refs
        .iter()
        .zip(specs)
        .map(|(r, s)| OutputsRequest {
            job: r.clone(),
            output_dir: s.output_dir.clone(),
            patterns: s.output_patterns.clone(),
        })
        .collect();
    let answers = backend.outputs(&requests).await.expect("outputs");
    refs.iter()
        .map(|r| {
            answers
                .iter()
                .find(|(j, _)| *j == r.job)
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| panic!("no outputs answer for {}", r.job))
                .unwrap_or_else(|e| panic!("outputs of {}: {e}", r.job))
        })
        .collect()
}

/// Submits, expecting every unit accepted; the refs in the order of the specs.
pub async fn submit(backend: &dyn Backend, specs: &[SubmitSpec]) -> Vec<BackendRef> {
    let answers = backend
        .submit(specs)
        .await
        .unwrap_or_else(|e| panic!("submit failed as a whole: {e}"));
    assert_eq!(answers.len(), specs.len(), "one answer per unit");
    specs
        .iter()
        .map(|spec| {
            let answer = answers
                .iter()
                .find(|(j, _)| *j == spec.job)
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| panic!("no answer for {}", spec.job));
            let submitted = answer.unwrap_or_else(|e| panic!("{} refused: {e}", spec.job));
            backend_ref(spec, &submitted)
        })
        .collect()
}

/// One `poll_all`, as reports in the order of `refs`.
pub async fn poll_all(
    backend: &dyn Backend,
    refs: &[BackendRef],
) -> Result<Vec<PollReport>, String> {
    let answers = backend.poll_all(refs).await.map_err(|e| e.to_string())?;
    refs.iter()
        .map(|r| {
            answers
                .iter()
                .find(|(j, _)| *j == r.job)
                .ok_or_else(|| format!("no report for {}", r.job))?
                .1
                .clone()
                .map_err(|e| format!("{}: {e}", r.job))
        })
        .collect()
}

pub fn is_final(status: RemoteStatus) -> bool {
    matches!(
        status,
        RemoteStatus::Succeeded | RemoteStatus::Failed | RemoteStatus::Killed
    )
}

/// Polls (all units in one call) until `done` holds for every report, or panics after
/// `timeout` naming a unit that is not there yet.
pub async fn poll_until(
    backend: &dyn Backend,
    refs: &[BackendRef],
    timeout: Duration,
    what: &str,
    done: impl Fn(&PollReport) -> bool,
) -> Vec<PollReport> {
    let deadline = Instant::now() + timeout;
    loop {
        let reports = poll_all(backend, refs)
            .await
            .unwrap_or_else(|e| panic!("poll_all failed while waiting {what}: {e}"));
        if reports.iter().all(&done) {
            return reports;
        }
        if Instant::now() > deadline {
            let (r, rep) = refs
                .iter()
                .zip(&reports)
                .find(|(_, rep)| !done(rep))
                .expect("one is not done");
            panic!(
                "waited {timeout:?} {what}; unit {} ({}) is still {rep:?}",
                r.job, r.id
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn until_final(
    backend: &dyn Backend,
    refs: &[BackendRef],
    timeout: Duration,
) -> Vec<PollReport> {
    poll_until(backend, refs, timeout, "for the units to end", |r| {
        is_final(r.status)
    })
    .await
}

/// Removes the submission ids from the submission records in a job's workspace, as if
/// the `ganga` that submitted had died right after the submit command answered.
pub fn forget_submission_ids(job_dir: &Path) {
    let dir = job_dir.join("batch-submissions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("id=")).collect();
        assert_ne!(
            kept.len(),
            text.lines().count(),
            "{} had an id",
            path.display()
        );
        std::fs::write(&path, kept.join("\n") + "\n").expect("written");
        n += 1;
    }
    assert!(n > 0, "no submission record in {}", dir.display());
}

/// A submission cut off before ganga recorded its id is found by its chunk's key in the
/// listing; a run never handed over is not. The units are held (`hold`, an extra option of
/// the submit command) so that only the listing can tell; they are killed at the end.
pub async fn a_cut_off_submission_is_found(home: &Home, backend: &dyn Backend, hold: &str) {
    let held = ShellJob::new("exit 0").option("extra_options", Value::List(vec![hold.into()]));
    let specs = [
        spec(home, JobRef::subjob(2, 0), &held),
        spec(home, JobRef::subjob(2, 1), &held),
    ];
    let refs = submit(backend, &specs).await;
    // As if ganga had died right after the submit command answered: the submission
    // record without the id.
    forget_submission_ids(&home.workspaces().job_dir(2));
    let never = JobRef::job(3);
    let asked: Vec<UnitRun> = specs
        .iter()
        .map(|s| UnitRun {
            job: s.job,
            run: 1,
            workspace: s.workspace.clone(),
        })
        .chain([UnitRun {
            job: never,
            run: 1,
            workspace: home.workspaces().dir(never),
        }])
        .collect();
    let answers = backend.find(&asked).await.expect("find");
    let found = |job: JobRef| {
        answers
            .iter()
            .find(|(j, _)| *j == job)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("no answer for {job}"))
    };
    for r in &refs {
        assert_eq!(
            found(r.job).map(|s| s.map(|s| s.id)),
            Ok(Some(r.id.clone()))
        );
    }
    assert_eq!(found(never), Ok(None));
    let killed = backend.kill(&refs).await.expect("kill");
    assert!(killed.iter().all(|(_, a)| a.is_ok()), "{killed:?}");
    let reports = until_final(backend, &refs, Duration::from_secs(60)).await;
    assert!(reports.iter().all(|r| r.status == RemoteStatus::Killed));
}

/// A unit with an id (`slurm:999999_0`) the batch system never gave is Absent at once.
pub async fn a_unit_never_given_is_absent(home: &Home, backend: &dyn Backend, id: &str) {
    let job = JobRef::job(10);
    let never = BackendRef {
        job,
        id: id.to_owned(),
        run: 1,
        workspace: home.workspaces().dir(job),
    };
    let reports = poll_all(backend, &[never]).await.expect("a poll");
    assert_eq!(reports[0].status, RemoteStatus::Absent, "{:?}", reports[0]);
}
