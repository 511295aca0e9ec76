//! One function per subcommand.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::bail;
use ganga_core::{Job, JobId, JobRef, PeekFile, Status};
use serde_json::json;

use crate::args::{Command, MonitorAction, PluginsAction};
use crate::monitoring::{self, plural, print_submitted};
use crate::out::{errln, out, outln};
use crate::render;
use ganga_session::Session;

pub(crate) async fn run(session: &Session, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Submit { target, wait } => monitoring::submit(session, &target, wait).await,
        Command::Jobs { status, json } => crate::listing::jobs(session, &status, json).await,
        Command::Show { job, json } => show(session, job, json).await,
        Command::Subjobs {
            job,
            all: _,
            status,
            json,
        } => crate::listing::subjobs(session, job, &status, json).await,
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
        Command::Plugins { action: None, json } => plugins(session, json),
        Command::Plugins {
            action: Some(PluginsAction::Check(_)),
            ..
        } => bail!("`ganga plugins check` runs without a session (main.rs starts it)"),
        Command::Backend(args) => backend_command(session, &args).await,
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

pub(crate) async fn load_job(session: &Session, id: JobId) -> anyhow::Result<Job> {
    match session.context()?.store.job(id).await? {
        Some(j) => Ok(Job::clone(&j)),
        None => bail!("job {id} does not exist"),
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
                print_json(&render::subjob_json(&job, sj, &ws))?;
            } else {
                out!("{}", render::subjob_text(&job, sj, &ws))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How many units a message lists one by one before it says how many more there are.
pub(crate) const MAX_LISTED: usize = 20;

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
                if !report.never_started.is_empty() {
                    outln!(
                        "job {target}: {} never reached the backend (a submission was cut off): now failed, resubmit to run them",
                        plural(report.never_started.len(), "unit", "units")
                    )?;
                }
                // The first few, then how many more: a job may have thousands.
                for (job, reason) in report.failed.iter().take(MAX_LISTED) {
                    errln!("job {job}: not killed: {reason}");
                }
                if report.failed.len() > MAX_LISTED {
                    errln!(
                        "... and {} more not killed",
                        report.failed.len() - MAX_LISTED
                    );
                }
                ok &= report.failed.is_empty();
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

/// `ganga BACKEND ARGS...`: the backend's own command, step by step.
async fn backend_command(session: &Session, args: &[String]) -> anyhow::Result<ExitCode> {
    let Some((name, rest)) = args.split_first() else {
        bail!("no command given");
    };
    if !session.backend_names().contains(name) {
        bail!(
            "`{name}` is neither a ganga command nor a backend (see `ganga --help`; backends: {})",
            session.backend_names().join(", ")
        );
    }
    let backend = session
        .backend(name)
        .map_err(|e| anyhow::anyhow!("backend `{name}`: {e}"))?;
    let mut state = None;
    loop {
        let step = backend
            .command(rest, state)
            .await
            .map_err(|e| anyhow::anyhow!("ganga {name} {}: {e}", rest.join(" ")))?;
        if !step.output.is_empty() {
            let end = if step.output.ends_with('\n') {
                ""
            } else {
                "\n"
            };
            crate::out::out!("{}{end}", step.output)?;
        }
        match step.state {
            Some(next) => state = Some(next),
            None => {
                return Ok(ExitCode::from(u8::try_from(step.exit_code).unwrap_or(1)));
            }
        }
    }
}

fn plugins(session: &Session, as_json: bool) -> anyhow::Result<ExitCode> {
    let catalog = session.catalog();
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
        let out = json!({
            "plugins": plugins, "refused": refused, "search_path": session.search_path(),
            "ganga": crate::versions::json(),
        });
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
    if let Some(file) = session.config_file() {
        outln!("config: {}", file.display())?;
    }
    outln!("home: {}", session.home().display())?;
    outln!("{}", crate::versions::plugins_must_match())?;
    Ok(ExitCode::SUCCESS)
}
