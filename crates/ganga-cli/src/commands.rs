//! One function per subcommand.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use ganga_core::{Job, JobId, JobRef, PeekFile, Status, Store, SummaryEntry};
use serde_json::json;

use crate::args::{Command, MonitorAction};
use crate::monitoring::{self, plural, print_submitted};
use crate::render;
use crate::session::Session;

pub(crate) async fn run(session: &Session, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Submit { target, wait } => monitoring::submit(session, &target, wait).await,
        Command::Jobs { status, json } => jobs(session, &status, json).await,
        Command::Show { job, json } => show(session, job, json).await,
        Command::Subjobs { job, status, json } => subjobs(session, job, &status, json).await,
        Command::Kill { jobs } => kill(session, &jobs).await,
        Command::Resubmit { jobs, wait } => monitoring::resubmit(session, &jobs, wait).await,
        Command::Remove { jobs, force } => remove(session, &jobs, force).await,
        Command::Copy { job, submit } => copy(session, job, submit).await,
        Command::ForceStatus { job, status } => force_status(session, job, status).await,
        Command::Peek { job, file, bytes } => peek(session, job, file, bytes).await,
        Command::Monitor {
            action: None,
            until_idle,
            interval,
            background,
        } => monitoring::monitor(session, until_idle, interval, background).await,
        Command::Monitor {
            action: Some(MonitorAction::Status { json }),
            ..
        } => monitoring::status(session, json).await,
        Command::Monitor {
            action: Some(MonitorAction::Stop),
            ..
        } => monitoring::stop(session).await,
        Command::Wait { jobs, timeout } => monitoring::wait(session, &jobs, timeout).await,
        Command::Plugins { json } => plugins(session, json),
        Command::Migrate(args) => crate::migrate::run(session, args).await,
    }
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
    Ok(session.context()?.store.store().clone())
}

pub(crate) async fn load_job(session: &Session, id: JobId) -> anyhow::Result<Job> {
    match session.context()?.store.job(id).await? {
        Some(j) => Ok(Job::clone(&j)),
        None => bail!("job {id} does not exist"),
    }
}

async fn jobs(session: &Session, statuses: &[Status], json: bool) -> anyhow::Result<ExitCode> {
    let store = store(session)?;
    let mut entries = blocking(move || {
        let mut all = Vec::new();
        let mut from = 0;
        loop {
            let page = store.summaries(from, 10_000)?;
            let Some(last) = page.last() else { break };
            from = last.id() + 1;
            all.extend(page);
        }
        Ok(all)
    })
    .await?;
    if !statuses.is_empty() {
        entries.retain(|e| match e {
            SummaryEntry::Readable(s) => statuses.contains(&s.status),
            SummaryEntry::Unreadable { .. } => true,
        });
    }
    let unreadable: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            SummaryEntry::Unreadable { id, error } => Some((*id, error.clone())),
            SummaryEntry::Readable(_) => None,
        })
        .collect();
    if json {
        let out: Vec<_> = entries.iter().map(render::summary_json).collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if entries.is_empty() {
        if statuses.is_empty() {
            println!("no jobs");
        } else {
            println!("no jobs {}", render::status_list(statuses));
        }
    } else {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        render::jobs_table(&entries).write(&mut out)?;
        std::io::Write::flush(&mut out)?;
    }
    for (id, error) in &unreadable {
        eprintln!("warning: job {id} is unreadable: {error}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(session: &Session, target: JobRef, json: bool) -> anyhow::Result<ExitCode> {
    let job = load_job(session, target.job).await?;
    let ws = session.workspaces();
    match target.subjob {
        None => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&render::job_json(&job, &ws))?
                );
            } else {
                print!("{}", render::job_text(&job, &ws));
            }
        }
        Some(index) => {
            let found = session
                .context()?
                .store
                .subjobs(job.id, index..index.saturating_add(1))
                .await?;
            let Some(sj) = found.first() else {
                bail!(
                    "job {target} does not exist (job {} has {} subjobs)",
                    job.id,
                    job.subjob_count()
                );
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&render::subjob_json(&job, sj, &ws))?
                );
            } else {
                print!("{}", render::subjob_text(&job, sj, &ws));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn subjobs(
    session: &Session,
    id: JobId,
    statuses: &[Status],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let job = load_job(session, id).await?;
    let all = session
        .context()?
        .store
        .subjobs(id, 0..job.subjob_count())
        .await?;
    let shown: Vec<_> = all
        .iter()
        .filter(|sj| statuses.is_empty() || statuses.contains(&sj.run.status))
        .collect();
    let ws = session.workspaces();
    if json {
        let out: Vec<_> = shown
            .iter()
            .map(|sj| render::subjob_json(&job, sj, &ws))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if shown.is_empty() {
        println!(
            "job {id}: no subjobs{}",
            if statuses.is_empty() {
                String::new()
            } else {
                format!(" {}", render::status_list(statuses))
            }
        );
    } else {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        render::subjobs_table(&job, &shown).write(&mut out)?;
        std::io::Write::flush(&mut out)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn kill(session: &Session, targets: &[JobRef]) -> anyhow::Result<ExitCode> {
    let ops = session.operations()?;
    let mut ok = true;
    for &target in targets {
        match ops.kill(target).await {
            Ok(report) => {
                println!(
                    "job {target}: {} killed",
                    plural(report.killed.len(), "unit", "units")
                );
                for (job, reason) in &report.failed {
                    ok = false;
                    eprintln!("job {job}: not killed: {reason}");
                }
            }
            Err(e) => {
                ok = false;
                eprintln!("error: {e}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn remove(session: &Session, ids: &[JobId], force: bool) -> anyhow::Result<ExitCode> {
    let ops = session.operations()?;
    let mut ok = true;
    for &id in ids {
        match ops.remove(id, force).await {
            Ok(()) => println!("job {id}: removed"),
            Err(e) => {
                ok = false;
                eprintln!("error: {e}");
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
    println!("job {new}: copy of job {id}");
    if submit {
        print_submitted(&ops.submit(new).await?);
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
        println!("job {target}: nothing changed");
    } else {
        println!(
            "job {target}: {} now {status}",
            plural(changed.len(), "unit", "units")
        );
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
    use std::io::Write as _;
    std::io::stdout().write_all(&out)?;
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
        println!("{}", serde_json::to_string_pretty(&out)?);
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
    println!("{}", render::text(&t));
    for p in catalog.shadowed() {
        println!(
            "shadowed: {} {} from {} (an earlier one of that name is used)",
            p.kind,
            p.name,
            p.file
                .as_ref()
                .map_or_else(|| "ganga".into(), |f| f.display().to_string())
        );
    }
    for r in catalog.refusals() {
        println!("{r}");
    }
    if let Some(file) = &session.config_file {
        println!("config: {}", file.display());
    }
    println!("home: {}", session.home.display());
    Ok(ExitCode::SUCCESS)
}
