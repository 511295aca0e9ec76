//! One function per subcommand.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ganga_core::{Job, JobId, JobRef, PeekFile, SUBJOB_PAGE, Status, Store};
use ganga_monitor::{MonitorLease, SubmitReport, Until};
use serde_json::json;

use crate::args::Command;
use crate::jobfile;
use crate::out::{errln, out, outln};
use crate::render;
use crate::session::Session;

/// The exit code of a `--wait` whose job did not end `completed`.
const NOT_COMPLETED: u8 = 2;

pub(crate) async fn run(session: &Session, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Submit { target, wait } => submit(session, &target, wait).await,
        Command::Jobs { status, json } => crate::listing::jobs(session, &status, json).await,
        Command::Show { job, json } => show(session, job, json).await,
        Command::Subjobs {
            job,
            all: _,
            status,
            json,
        } => crate::listing::subjobs(session, job, &status, json).await,
        Command::Kill { jobs } => kill(session, &jobs).await,
        Command::Resubmit { jobs, wait } => resubmit(session, &jobs, wait).await,
        Command::Remove { jobs, force } => remove(session, &jobs, force).await,
        Command::Copy { job, submit } => copy(session, job, submit).await,
        Command::ForceStatus { job, status } => force_status(session, job, status).await,
        Command::Peek { job, file, bytes } => peek(session, job, file, bytes).await,
        Command::Monitor {
            until_idle,
            interval,
        } => monitor(session, until_idle, interval).await,
        Command::Plugins { json } => plugins(session, json),
        Command::Store(command) => crate::maintenance::run(session, command).await,
        Command::Completions { shell } => crate::args::print_completions(shell),
        Command::Man => crate::args::print_man(),
        Command::Migrate(args) => crate::migrate::run(session, args).await,
    }
}

/// Writes a JSON document to stdout, as serde_json's pretty printer lays it out.
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("a store task failed")?
}

fn store(session: &Session) -> anyhow::Result<Arc<dyn Store>> {
    Ok(session.context()?.store.clone())
}

async fn load_job(session: &Session, id: JobId) -> anyhow::Result<Job> {
    let cache = session.context()?.cache.clone();
    let job = blocking(move || Ok(cache.job(id)?)).await?;
    match job {
        Some(j) => Ok(Job::clone(&j)),
        None => bail!("job {id} does not exist"),
    }
}

async fn submit(session: &Session, target: &Path, wait: bool) -> anyhow::Result<ExitCode> {
    let ops = session.operations()?;
    let report = if let Some(id) = target.to_str().and_then(|t| t.parse::<JobId>().ok())
        && !target.exists()
    {
        ops.submit(id).await?
    } else {
        let parsed = jobfile::read(target, &session.config.defaults.backend)?;
        let names = session.backend_names();
        if !names.contains(&parsed.spec.backend.kind) {
            // Name the line, and say what there is instead.
            let detail = session
                .context()?
                .backends
                .backend(&parsed.spec.backend.kind)
                .err()
                .unwrap_or_else(|| format!("unknown backend `{}`", parsed.spec.backend.kind));
            bail!("{}: {detail}", parsed.backend_at);
        }
        // Options the backend does not know are refused (a typo must not be ignored),
        // when it says which it knows.
        let backend = session
            .context()?
            .backends
            .backend(&parsed.spec.backend.kind)
            .map_err(|e| anyhow::anyhow!("{}: {e}", parsed.backend_at))?;
        let description = backend.describe().await.map_err(|e| {
            anyhow::anyhow!(
                "{}: backend `{}` cannot describe itself: {e}",
                parsed.backend_at,
                parsed.spec.backend.kind
            )
        })?;
        if let Some(known) = &description.options {
            jobfile::check_backend_options(&parsed, known).map_err(anyhow::Error::msg)?;
        }
        ops.submit_spec(parsed.spec).await?
    };
    print_submitted(&report)?;
    if !report.failed.is_empty() && report.submitted == 0 {
        return Ok(ExitCode::from(NOT_COMPLETED));
    }
    if wait {
        return wait_for(session, &[report.job]).await;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_submitted(report: &SubmitReport) -> std::io::Result<()> {
    outln!(
        "job {}: {} submitted",
        report.job,
        plural(report.submitted, "unit", "units")
    )?;
    for (job, reason) in &report.failed {
        errln!("job {job}: submission failed: {reason}");
    }
    Ok(())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Monitors until every job in `ids` has ended (or leaves it to a running `ganga monitor`
/// and watches), then shows how they ended.
async fn wait_for(session: &Session, ids: &[JobId]) -> anyhow::Result<ExitCode> {
    let lease_path = session.monitor_lease_path();
    let lease = MonitorLease::try_acquire(&lease_path)
        .with_context(|| format!("cannot open the monitor lock {}", lease_path.display()))?;
    let monitor = session.monitor(None)?;
    let interval = Duration::from_secs_f64(session.config.monitor.interval_secs.max(0.05));
    if lease.is_none() {
        let holder =
            MonitorLease::holder(&lease_path).map_or_else(String::new, |p| format!(" (pid {p})"));
        errln!("another `ganga monitor`{holder} is driving jobs; watching the store");
    }
    for &id in ids {
        let mut last = String::new();
        let mut show = |job: &Job| {
            let line = render::progress(job);
            if line != last {
                errln!("{line}");
                last = line;
            }
        };
        if lease.is_some() {
            let cache = session.context()?.cache.clone();
            let store = store(session)?;
            let mut on_cycle = |_: &ganga_monitor::CycleReport| {
                cache.forget(id);
                if let Ok(Some(job)) = store.job(id) {
                    show(&job);
                }
            };
            monitor
                .run(Until::Finished(id), ctrl_c(), &mut on_cycle)
                .await?;
        } else {
            loop {
                session.context()?.cache.forget(id);
                let job = load_job(session, id).await?;
                show(&job);
                if !job.status().is_active() {
                    break;
                }
                tokio::select! {
                    () = ctrl_c() => break,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        }
    }
    drop(lease);
    let mut all_completed = true;
    for &id in ids {
        session.context()?.cache.forget(id);
        let job = load_job(session, id).await?;
        all_completed &= job.status() == Status::Completed;
        print_outcome(session, &job).await?;
    }
    Ok(if all_completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_COMPLETED)
    })
}

/// What a finished job produced: its status and, per unit, where its outputs are.
async fn print_outcome(session: &Session, job: &Job) -> anyhow::Result<()> {
    let ws = session.workspaces();
    outln!("job {} ({}) ended {}", job.id, job.spec.name, job.status())?;
    if job.is_split() {
        // A page at a time: a job may have a million subjobs.
        let cache = session.context()?.cache.clone();
        let (id, n) = (job.id, job.subjob_count());
        for start in (0..n).step_by(SUBJOB_PAGE as usize) {
            let cache = cache.clone();
            let range = start..n.min(start.saturating_add(SUBJOB_PAGE));
            let subjobs = blocking(move || Ok(cache.subjobs(id, range)?)).await?;
            for sj in &subjobs {
                let r = JobRef::subjob(job.id, sj.index);
                print_unit(&r, &sj.run, &ws.output_dir(r))?;
            }
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
    outln!("{line}")?;
    for o in &run.outputs {
        outln!("           {}", output_dir.join(o).display())?;
    }
    Ok(())
}

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling here: never finish on our own.
        std::future::pending::<()>().await;
    }
}

async fn show(session: &Session, target: JobRef, json: bool) -> anyhow::Result<ExitCode> {
    let job = load_job(session, target.job).await?;
    let ws = session.workspaces();
    match target.subjob {
        None => {
            if json {
                print_json(&render::job_json(&job, &ws))?;
            } else {
                out!("{}", render::job_text(&job, &ws))?;
            }
        }
        Some(index) => {
            let cache = session.context()?.cache.clone();
            let id = job.id;
            let found =
                blocking(move || Ok(cache.subjobs(id, index..index.saturating_add(1))?)).await?;
            let Some(sj) = found.first() else {
                bail!(
                    "job {target} does not exist (job {} has {} subjobs)",
                    job.id,
                    job.subjob_count()
                );
            };
            if json {
                print_json(&render::subjob_json(&job, sj, &ws))?;
            } else {
                out!("{}", render::subjob_text(&job, sj, &ws))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn kill(session: &Session, targets: &[JobRef]) -> anyhow::Result<ExitCode> {
    let ops = session.operations()?;
    let mut ok = true;
    for &target in targets {
        match ops.kill(target).await {
            Ok(report) => {
                outln!(
                    "job {target}: {} killed",
                    plural(report.killed.len(), "unit", "units")
                )?;
                for (job, reason) in &report.failed {
                    ok = false;
                    errln!("job {job}: not killed: {reason}");
                }
            }
            Err(e) => {
                ok = false;
                errln!("error: {e}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn resubmit(session: &Session, targets: &[JobRef], wait: bool) -> anyhow::Result<ExitCode> {
    let ops = session.operations()?;
    let mut ids = Vec::new();
    for &target in targets {
        let report = ops.resubmit(target).await?;
        print_submitted(&report)?;
        ids.push(report.job);
    }
    if wait {
        ids.dedup();
        return wait_for(session, &ids).await;
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove(session: &Session, ids: &[JobId], force: bool) -> anyhow::Result<ExitCode> {
    let ops = session.operations()?;
    let mut ok = true;
    for &id in ids {
        match ops.remove(id, force).await {
            Ok(()) => outln!("job {id}: removed")?,
            Err(e) => {
                ok = false;
                errln!("error: {e}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn copy(session: &Session, id: JobId, submit: bool) -> anyhow::Result<ExitCode> {
    let ops = session.operations()?;
    let new = ops.copy(id).await?;
    outln!("job {new}: copy of job {id}")?;
    if submit {
        print_submitted(&ops.submit(new).await?)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn force_status(
    session: &Session,
    target: JobRef,
    status: Status,
) -> anyhow::Result<ExitCode> {
    let changed = session.operations()?.force_status(target, status).await?;
    if changed.is_empty() {
        outln!("job {target}: nothing changed")?;
    } else {
        outln!(
            "job {target}: {} now {status}",
            plural(changed.len(), "unit", "units")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn peek(
    session: &Session,
    target: JobRef,
    file: String,
    bytes: u64,
) -> anyhow::Result<ExitCode> {
    let file = match file.as_str() {
        "stdout" => PeekFile::Stdout,
        "stderr" => PeekFile::Stderr,
        _ => PeekFile::Path(file),
    };
    let out = session.operations()?.peek(target, file, bytes).await?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn monitor(
    session: &Session,
    until_idle: bool,
    interval: Option<f64>,
) -> anyhow::Result<ExitCode> {
    let path = session.monitor_lease_path();
    let Some(_lease) = MonitorLease::try_acquire(&path)? else {
        let holder =
            MonitorLease::holder(&path).map_or_else(String::new, |p| format!(" (pid {p})"));
        bail!(
            "another `ganga monitor`{holder} is already running for {}",
            session.home.display()
        );
    };
    let monitor = session.monitor(interval)?;
    let until = if until_idle {
        Until::Idle
    } else {
        Until::Stopped
    };
    let mut cycles = 0u64;
    monitor
        .run(until, ctrl_c(), |report| {
            cycles += 1;
            if report.changed > 0 {
                tracing::info!(
                    "{} active jobs, {} polled, {} changed, {} finished",
                    report.active_jobs,
                    report.polled,
                    report.changed,
                    report.finished
                );
            }
        })
        .await?;
    tracing::info!("monitor stopped after {cycles} cycles");
    Ok(ExitCode::SUCCESS)
}

fn plugins(session: &Session, as_json: bool) -> anyhow::Result<ExitCode> {
    let catalog = &session.catalog;
    if as_json {
        let plugins: Vec<_> = catalog
            .plugins()
            .map(|p| {
                json!({
                    "name": p.name, "kind": p.kind.to_string(), "version": p.version,
                    "file": p.file, "abi": p.abi, "protocol": p.protocol, "rustc": p.rustc,
                })
            })
            .collect();
        let refused: Vec<_> = catalog
            .refusals()
            .iter()
            .map(|r| json!({ "file": r.path, "plugin": r.plugin, "reason": r.reason }))
            .collect();
        let out =
            json!({ "plugins": plugins, "refused": refused, "search_path": session.search_path });
        print_json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = render::table(&["name", "kind", "version", "abi", "protocol", "from"]);
    for p in catalog.plugins() {
        t.add_row(vec![
            p.name.clone(),
            p.kind.to_string(),
            p.version.clone(),
            p.abi.to_string(),
            p.protocol.clone(),
            p.file.as_ref().map_or_else(
                || "linked into ganga".to_owned(),
                |f| f.display().to_string(),
            ),
        ]);
    }
    outln!("{}", render::text(&t))?;
    for p in catalog.shadowed() {
        outln!(
            "shadowed: {} {} from {} (an earlier one of that name is used)",
            p.kind,
            p.name,
            p.file
                .as_ref()
                .map_or_else(|| "ganga".into(), |f| f.display().to_string())
        )?;
    }
    for r in catalog.refusals() {
        outln!("{r}")?;
    }
    if let Some(file) = &session.config_file {
        outln!("config: {}", file.display())?;
    }
    outln!("home: {}", session.home.display())?;
    Ok(ExitCode::SUCCESS)
}
