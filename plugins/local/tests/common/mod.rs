//! What the Local backend's tests share: a temporary home, specs, waiting on real
//! processes, and what `/proc` says about them.

#![allow(dead_code, unreachable_pub)] // Each test file uses a part.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ganga_backend_local::LocalBackend;
use ganga_core::{
    Backend, BackendRef, JobRef, Options, OutputsReport, OutputsRequest, PollReport, RemoteStatus,
    SubmitSpec, Value,
};
use ganga_test_support::conformance;
use tempfile::TempDir;

/// Generous: the machine is slow and shared.
pub const TIMEOUT: Duration = Duration::from_secs(90);
pub const TICK: Duration = Duration::from_millis(50);

pub fn home() -> TempDir {
    tempfile::Builder::new()
        .prefix("ganga-local-test")
        .tempdir()
        .expect("temporary directory")
}

pub fn backend(home: &Path, config: &[(&str, Value)]) -> LocalBackend {
    let options: Options = config
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    LocalBackend::new(home.to_path_buf(), &options).expect("backend")
}

pub fn spec(home: &Path, job: u64, exe: &str, args: &[&str]) -> SubmitSpec {
    spec_of(home, JobRef::job(job), exe, args)
}

pub fn spec_of(home: &Path, job: JobRef, exe: &str, args: &[&str]) -> SubmitSpec {
    let mut workspace = home.join("workspace").join(job.job.to_string());
    if let Some(i) = job.subjob {
        workspace = workspace.join(i.to_string());
    }
    SubmitSpec {
        job,
        run: 1,
        previous_id: None,
        name: format!("test job {job}"),
        exe: exe.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: Default::default(),
        input_files: Vec::new(),
        output_patterns: Vec::new(),
        output_dir: workspace.join("output"),
        workspace,
        options: Options::new(),
    }
}

pub fn sh(home: &Path, job: u64, script: &str) -> SubmitSpec {
    spec(home, job, "sh", &["-c", script])
}

/// `sh -c SCRIPT job ARGS...`: the script sees ARGS as `$1`...
pub fn sh_args(home: &Path, job: u64, script: &str, args: &[&str]) -> SubmitSpec {
    let mut all = vec!["-c", script, "job"];
    all.extend(args);
    spec(home, job, "sh", &all)
}

pub async fn submit(b: &dyn Backend, specs: &[SubmitSpec]) -> Vec<Result<BackendRef, String>> {
    let results = b.submit(specs).await.expect("submit call");
    let asked: Vec<JobRef> = specs.iter().map(|s| s.job).collect();
    let results = conformance::keyed("submit", &asked, results).expect("keyed answers");
    specs
        .iter()
        .zip(results)
        .map(|(s, r)| {
            r.map(|sub| {
                assert!(sub.actual_ce.is_some_and(|h| !h.is_empty()));
                BackendRef {
                    job: s.job,
                    id: sub.id,
                    run: s.run,
                    workspace: s.workspace.clone(),
                }
            })
        })
        .collect()
}

pub async fn submit_one(b: &dyn Backend, s: &SubmitSpec) -> BackendRef {
    submit(b, std::slice::from_ref(s))
        .await
        .remove(0)
        .expect("submitted")
}

pub async fn poll(b: &dyn Backend, r: &BackendRef) -> PollReport {
    let reports = b.poll(std::slice::from_ref(r)).await.expect("poll call");
    let mut reports = conformance::keyed("poll", &[r.job], reports).expect("keyed answers");
    reports.remove(0).expect("a report for the job")
}

/// Waits until `check` gives something, failing the test after [`TIMEOUT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(x) = check().await {
            return x;
        }
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        tokio::time::sleep(TICK).await;
    }
}

pub fn is_final(status: RemoteStatus) -> bool {
    matches!(
        status,
        RemoteStatus::Succeeded | RemoteStatus::Failed | RemoteStatus::Killed
    )
}

/// Polls until the run is `wanted`, failing if it ends otherwise.
pub async fn wait_status(b: &dyn Backend, r: &BackendRef, wanted: RemoteStatus) -> PollReport {
    eventually(&format!("job {} to be {wanted:?}", r.job), || async {
        let rep = poll(b, r).await;
        if rep.status == wanted {
            Some(rep)
        } else if is_final(rep.status) {
            panic!(
                "job {} ended {:?} instead of {wanted:?}: {rep:?}",
                r.job, rep.status
            );
        } else {
            None
        }
    })
    .await
}

pub async fn wait_file(path: &Path) {
    eventually(&format!("{} to exist", path.display()), || async {
        path.exists().then_some(())
    })
    .await;
}

pub async fn outputs_report(b: &dyn Backend, r: &BackendRef, patterns: &[&str]) -> OutputsReport {
    let req = OutputsRequest {
        job: r.clone(),
        output_dir: output_dir(r),
        patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
    };
    let reports = b.outputs(&[req]).await.expect("outputs call");
    let mut reports = conformance::keyed("outputs", &[r.job], reports).expect("keyed answers");
    reports.remove(0).expect("outputs of this job")
}

pub async fn outputs(
    b: &dyn Backend,
    r: &BackendRef,
    patterns: &[&str],
) -> (Vec<String>, Vec<String>) {
    let report = outputs_report(b, r, patterns).await;
    (report.collected, report.unmatched)
}

/// Where `spec` puts the outputs of the job `r`.
pub fn output_dir(r: &BackendRef) -> PathBuf {
    r.workspace.join("output")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The wrapper's pid (its process group) of a run that started, from its record.
pub fn wrapper_pid(r: &BackendRef) -> i32 {
    let text = read(&r.workspace.join(format!("local/started-{}", r.run)));
    text.lines()
        .find_map(|l| l.strip_prefix("pgid="))
        .and_then(|p| p.parse().ok())
        .expect("a pgid in the started record")
}

// --- processes, as /proc shows them -----------------------------------------------------

pub struct Proc {
    pub pid: i32,
    pub state: char,
    pub pgrp: i32,
}

pub fn proc_stat(pid: i32) -> Option<Proc> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Proc {
        pid,
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
    })
}

/// Absent, or a zombie (where init does not reap, zombies stay).
pub fn is_dead(pid: i32) -> bool {
    proc_stat(pid).is_none_or(|p| p.state == 'Z' || p.state == 'X')
}

pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// The live processes of a group.
pub fn live_members(pgid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter_map(proc_stat)
        .filter(|p| p.pgrp == pgid && p.state != 'Z' && p.state != 'X')
        .map(|p| p.pid)
        .collect()
}

/// Live processes whose command line contains `text`.
pub fn processes_naming(text: &str) -> Vec<i32> {
    let needle = text.as_bytes();
    all_pids()
        .into_iter()
        .filter(|&pid| !is_dead(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

/// The runners of a home: `sh <home>/local/bin/runner-*.sh <home>/local SLOT`.
pub fn runners_of(home: &Path) -> Vec<i32> {
    let local = home.join("local");
    let local = local.to_str().expect("utf-8 home");
    processes_naming(&format!("{local}/bin/runner-"))
}

/// Signals a process, or a process group when `pid` is negative.
pub fn kill(pid: i32, signal: i32) {
    assert!(pid.abs() > 1, "refusing to signal {pid}");
    // SAFETY: kill(2) with integers, aimed at a process the test started.
    let r = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}
