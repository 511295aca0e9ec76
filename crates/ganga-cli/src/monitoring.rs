//! The commands that start, drive or wait for monitoring: `submit`, `resubmit`, `wait`,
//! `monitor` (and its `status` and `stop`), and the background monitor `submit` starts.

use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ganga_core::{Job, JobId, JobRef, Status};
use ganga_monitor::{
    ControlReply, ControlRequest, CycleReport, MonitorLease, MonitorStatus, SUBJOB_PAGE,
    SubmitReport, Until,
};

use crate::commands::load_job;
use crate::out::{errln, out, outln};
use crate::render;
use ganga_session::Session;
use ganga_session::{WaitEvent, WaitOutcome};

/// The exit code of a `wait` (or `--wait`) whose jobs did not all end `completed`.
const NOT_COMPLETED: u8 = 2;
/// The exit code of a `wait` that gave up.
const TIMED_OUT: u8 = 3;
/// How long another `ganga` is given to answer on the control socket.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn submit(
    session: &Session,
    target: &Path,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let ops = session.operations()?;
    let report = if let Some(id) = target.to_str().and_then(|t| t.parse::<JobId>().ok())
        && !target.exists()
    {
        ops.submit(id).await?
    } else {
        session.submit(session.read_job_file(target)?).await?
    };
    print_submitted(&report)?;
    if wait {
        return wait_for(session, &[report.job], None).await;
    }
    ensure_monitor(session, &[report.job]).await;
    Ok(submission_outcome(&report))
}

pub(crate) async fn resubmit(
    session: &Session,
    targets: &[JobRef],
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let ops = session.operations()?;
    let mut ids = Vec::new();
    let mut code = ExitCode::SUCCESS;
    for &target in targets {
        let report = ops.resubmit(target).await?;
        print_submitted(&report)?;
        if submission_outcome(&report) != ExitCode::SUCCESS {
            code = ExitCode::FAILURE;
        }
        ids.push(report.job);
    }
    ids.dedup();
    if wait {
        return wait_for(session, &ids, None).await;
    }
    ensure_monitor(session, &ids).await;
    Ok(code)
}

/// A submission of which any unit was refused fails as a command.
fn submission_outcome(report: &SubmitReport) -> ExitCode {
    if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub(crate) fn print_submitted(report: &SubmitReport) -> std::io::Result<()> {
    outln!(
        "job {}: {} submitted",
        report.job,
        plural(report.submitted, "unit", "units")
    )?;
    for (job, reason) in &report.failed {
        errln!("job {job}: submission failed: {reason}");
    }
    for (job, reason) in &report.undecided {
        errln!("job {job}: not known whether its backend took it ({reason}); the monitor will ask");
    }
    Ok(())
}

pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Makes sure a monitor will drive these jobs: asks the running one to poll them now,
/// or starts one in the background (unless the config says not to).
async fn ensure_monitor(session: &Session, jobs: &[JobId]) {
    let socket = session.control_socket();
    let poll = ControlRequest::Poll {
        jobs: jobs.to_vec(),
    };
    if let Ok(Some(_)) = ganga_monitor::ask(&socket, &poll, ASK_TIMEOUT).await {
        return;
    }
    let lease_path = session.monitor_lease_path();
    if MonitorLease::holder(&lease_path).is_some()
        && MonitorLease::try_acquire(&lease_path).is_ok_and(|l| l.is_none())
    {
        // A monitor runs (one that does not listen): it will get to them.
        return;
    }
    if !session.config().monitor.background {
        errln!(
            "note: no monitor runs for {}: run `ganga monitor` (or `ganga wait ID`) to drive the job",
            session.home().display()
        );
        return;
    }
    match start_background(session) {
        Ok(pid) => tracing::info!(
            "started a monitor in the background (pid {pid}, log {})",
            session.monitor_log().display()
        ),
        Err(e) => errln!(
            "warning: cannot start a monitor in the background ({e:#}); run `ganga monitor` to drive the job"
        ),
    }
}

/// Starts `ganga monitor --background` for this home, detached from this process and its
/// terminal, logging to `<home>/monitor.log`.
fn start_background(session: &Session) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt as _;
    let exe = std::env::current_exe().context("cannot tell where this ganga is")?;
    let log_path = session.monitor_log();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let err = log.try_clone()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(session.setup_args())
        .args(["-v", "monitor", "--background"])
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err);
    // SAFETY: the closure runs in the child between fork and exec; setsid(2) is
    // async-signal-safe and it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
    let child = cmd.spawn().context("cannot start it")?;
    Ok(child.id())
}

/// `ganga wait`.
pub(crate) async fn wait(
    session: &Session,
    ids: &[JobId],
    timeout: Option<f64>,
) -> anyhow::Result<ExitCode> {
    for &id in ids {
        load_job(session, id).await?;
    }
    wait_for(session, ids, timeout.map(Duration::from_secs_f64)).await
}

/// Waits until every job in `ids` has ended, then shows how they ended. While a monitor
/// runs, it drives them and this only watches the store; whenever none runs (it never
/// did, or it exited), this process takes over monitoring until they have ended.
async fn wait_for(
    session: &Session,
    ids: &[JobId],
    timeout: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let mut shown: Vec<(JobId, String)> = Vec::new();
    let outcome = session
        .wait(ids, timeout, shutdown_signal(), |event| match event {
            WaitEvent::Progress(job) => {
                let line = render::progress(job);
                match shown.iter_mut().find(|(id, _)| *id == job.id) {
                    Some((_, last)) if *last == line => {}
                    Some((_, last)) => {
                        errln!("{line}");
                        *last = line;
                    }
                    None => {
                        errln!("{line}");
                        shown.push((job.id, line));
                    }
                }
            }
            WaitEvent::Watching { holder } => {
                let holder = holder.map_or_else(String::new, |p| format!(" (pid {p})"));
                errln!("another `ganga monitor`{holder} is driving jobs; watching the store");
            }
        })
        .await?;
    match outcome {
        WaitOutcome::Ended => {}
        WaitOutcome::TimedOut => {
            errln!("gave up waiting after {:?}", timeout.unwrap_or_default());
            return Ok(ExitCode::from(TIMED_OUT));
        }
        WaitOutcome::Stopped => return Ok(ExitCode::from(130)),
    }
    let mut all_completed = true;
    for &id in ids {
        let job = fresh_job(session, id).await?;
        all_completed &= job.status() == Status::Completed;
        print_outcome(session, &job).await?;
    }
    Ok(if all_completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_COMPLETED)
    })
}

async fn fresh_job(session: &Session, id: JobId) -> anyhow::Result<Job> {
    Ok(Job::clone(&*session.fresh_job(id).await?))
}

/// What a finished job produced: its status and, per unit, where its outputs are.
async fn print_outcome(session: &Session, job: &Job) -> anyhow::Result<()> {
    let ws = session.workspaces();
    outln!("job {} ({}) ended {}", job.id, job.spec.name, job.status())?;
    if job.is_split() {
        // Every unit of a small job; of a large one, the counts and the first few that
        // did not complete (`ganga subjobs ID` lists them all).
        let n = job.subjob_count();
        let few = n as usize <= crate::commands::MAX_LISTED;
        if !few {
            outln!(
                "  {}; outputs under {}",
                render::counts(&job.subjobs),
                ws.job_dir(job.id).display()
            )?;
        }
        let mut listed = 0usize;
        // A page at a time: a job may have a million subjobs.
        for start in (0..n).step_by(SUBJOB_PAGE as usize) {
            let range = start..n.min(start.saturating_add(SUBJOB_PAGE));
            let subjobs = session.context()?.store.subjobs(job.id, range).await?;
            for sj in &subjobs {
                if !few
                    && (sj.status() == Status::Completed || listed >= crate::commands::MAX_LISTED)
                {
                    continue;
                }
                listed += 1;
                let r = JobRef::subjob(job.id, sj.index);
                print_unit(&r, &sj.run, &ws.output_dir(r))?;
            }
        }
        let unlisted = n as usize - job.subjobs.get(Status::Completed) as usize;
        if !few && unlisted > listed {
            outln!(
                "  ... and {} more that did not complete: `ganga subjobs {} --status failed`",
                unlisted - listed,
                job.id
            )?;
        }
    } else {
        print_unit(&job.job_ref(), &job.run, &ws.output_dir(job.job_ref()))?;
    }
    Ok(())
}

fn print_unit(r: &JobRef, run: &ganga_core::RunState, output_dir: &Path) -> std::io::Result<()> {
    let mut line = format!("  {r:<8} {:<10}", run.status.as_str());
    if let Some(code) = run.backend.exit_code {
        line.push_str(&format!(" exit {code}"));
    }
    if let Some(reason) = &run.backend.reason
        && run.status != Status::Completed
    {
        line.push_str(&format!(" ({reason})"));
    }
    if run.auto_resubmits > 0 {
        line.push_str(&format!(
            " [resubmitted automatically {}]",
            plural(run.auto_resubmits as usize, "time", "times")
        ));
    }
    outln!("{line}")?;
    for o in &run.outputs {
        outln!("           {}", output_dir.join(o).display())?;
    }
    Ok(())
}

/// `ganga monitor`: drives every active job until Ctrl-C (or idle).
pub(crate) async fn monitor(
    session: &Session,
    until_idle: bool,
    interval: Option<f64>,
    background: bool,
) -> anyhow::Result<ExitCode> {
    let path = session.monitor_lease_path();
    let Some(_lease) = MonitorLease::try_acquire(&path)? else {
        if background {
            // Another monitor got there first: it drives the jobs.
            return Ok(ExitCode::SUCCESS);
        }
        let holder =
            MonitorLease::holder(&path).map_or_else(String::new, |p| format!(" (pid {p})"));
        bail!(
            "another `ganga monitor`{holder} is already running for {} (see `ganga monitor status`)",
            session.home().display()
        );
    };
    let mut monitor = session.monitor(interval)?;
    let until = if until_idle {
        Until::Idle
    } else {
        Until::Stopped
    };
    if background {
        if let Some(idle) = session.idle_exit() {
            monitor = monitor.with_idle_exit(idle);
        }
        tracing::info!(
            "monitor started for {} (pid {})",
            session.home().display(),
            std::process::id()
        );
    }
    let progress =
        (!background && std::io::stderr().is_terminal()).then(indicatif::ProgressBar::new_spinner);
    let mut polls = 0u64;
    let stop = async {
        tokio::select! {
            () = shutdown_signal() => {}
            () = home_gone(&path) => tracing::warn!("the ganga home was removed: stopping"),
        }
    };
    let result = monitor
        .run(until, stop, |report| {
            polls += 1;
            show_cycle(report, progress.as_ref());
        })
        .await;
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    result?;
    tracing::info!("monitor stopped after {polls} polls");
    Ok(ExitCode::SUCCESS)
}

/// One poll's outcome: counts per status in place on a terminal, a log line otherwise.
fn show_cycle(report: &CycleReport, progress: Option<&indicatif::ProgressBar>) {
    let counts = report
        .counts
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    match progress {
        Some(p) => {
            p.set_message(if counts.is_empty() {
                "no active jobs".to_owned()
            } else {
                format!("active: {counts}")
            });
            p.tick();
        }
        None if report.changed > 0 => tracing::info!(
            "backend {}: {} polled, {} changed, {} ended; active: {}",
            report.backend,
            report.polled,
            report.changed,
            report.finished,
            if counts.is_empty() {
                "none".to_owned()
            } else {
                counts
            }
        ),
        None => {}
    }
}

/// `ganga monitor status`.
pub(crate) async fn status(session: &Session, json: bool) -> anyhow::Result<ExitCode> {
    let reply = ganga_monitor::ask(
        &session.control_socket(),
        &ControlRequest::Status,
        ASK_TIMEOUT,
    )
    .await;
    let status = match reply {
        Ok(Some(ControlReply::Status(s))) => Some(s),
        Ok(_) => None,
        Err(e) => {
            let holder = MonitorLease::holder(&session.monitor_lease_path());
            bail!(
                "a monitor{} runs for {} but did not answer: {e}",
                holder.map_or_else(String::new, |p| format!(" (pid {p})")),
                session.home().display()
            )
        }
    };
    if json {
        let out = serde_json::json!({ "running": status.is_some(), "monitor": status });
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    match status {
        None => outln!("no monitor runs for {}", session.home().display())?,
        Some(s) => out!("{}", status_text(&s))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn status_text(s: &MonitorStatus) -> String {
    let mut out = format!(
        "monitor running (pid {}) since {}; {} polls, last {}\n{} active units, {} being finalised\n",
        s.pid,
        render::time(s.since),
        s.polls,
        s.last_poll.map_or_else(|| "never".to_owned(), render::time),
        s.active_units,
        s.finalising
    );
    for b in &s.backends {
        out.push_str(&format!(
            "  {}: {} active units, last poll {}, every {:.1} s",
            b.name,
            b.active_units,
            b.last_poll.map_or_else(|| "never".to_owned(), render::time),
            b.interval_secs
        ));
        if b.errors > 0 {
            out.push_str(&format!(", {} failed polls in a row", b.errors));
        }
        out.push('\n');
        if let Some(e) = &b.last_error {
            out.push_str(&format!("    last error: {e}\n"));
        }
    }
    out
}

/// `ganga monitor stop`.
pub(crate) async fn stop(session: &Session) -> anyhow::Result<ExitCode> {
    match ganga_monitor::ask(
        &session.control_socket(),
        &ControlRequest::Stop,
        ASK_TIMEOUT,
    )
    .await?
    {
        Some(_) => {
            // It lets go of the lease when it has stopped.
            let path = session.monitor_lease_path();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if MonitorLease::try_acquire(&path)?.is_some() {
                    outln!("monitor stopped")?;
                    return Ok(ExitCode::SUCCESS);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            bail!("the monitor was asked to stop but still runs after 30 s")
        }
        None => {
            outln!("no monitor runs for {}", session.home().display())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Completes once the monitor's lock file is gone (its home was removed), checking every
/// few seconds.
async fn home_gone(lease: &Path) {
    while lease.exists() {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if r.is_err() {
                std::future::pending::<()>().await;
            }
        }
        () = term => {}
    }
}
