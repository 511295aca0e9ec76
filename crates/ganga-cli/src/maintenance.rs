//! `ganga store check` and `ganga store backup`.
//!
//! The check reads every record, and a store damaged in the wrong place can crash the
//! library reading it (LMDB trusts its file: a page past the end of a truncated file is a
//! SIGBUS). So the check runs in a child process — this binary again, with a hidden
//! `--checker` flag — and a child killed by a signal becomes a report naming the store.
//! The child says where the store is before it checks, so that even a crash names it.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{ExitCode, Stdio};

use anyhow::{Context as _, bail};
use ganga_core::CheckReport;
use serde::{Deserialize, Serialize};

use crate::args::StoreCommand;
use crate::out::{errln, outln};
use ganga_session::Session;

/// The exit code of a check that found problems.
const PROBLEMS_FOUND: u8 = 2;

/// The hidden flag the checking child is started with.
const CHECKER_FLAG: &str = "--checker";

pub(crate) async fn run(session: &Session, command: StoreCommand) -> anyhow::Result<ExitCode> {
    match command {
        StoreCommand::Check {
            checker: true,
            json: _,
        } => checker(session).await,
        StoreCommand::Check {
            checker: false,
            json,
        } => check(session, json).await,
        StoreCommand::Backup { dest } => backup(session, &dest).await,
    }
}

/// The first line the checker writes: where the store is.
#[derive(Serialize, Deserialize)]
struct Located {
    location: String,
}

/// What `store check --json` prints.
#[derive(Serialize, Deserialize)]
struct Checked {
    location: String,
    #[serde(flatten)]
    report: CheckReport,
}

/// In the child: say where the store is, check it, print the report (JSON lines).
async fn checker(session: &Session) -> anyhow::Result<ExitCode> {
    // For the test of what a crash inside the store becomes: a checker that dies of the
    // signal named here, as one that read a damaged page would.
    if let Some(signal) = std::env::var("GANGA_TEST_CHECKER_DIES_OF")
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
    {
        // SAFETY: signal(2) and raise(3) with plain numbers; the process is meant to end.
        // The default action first: Rust's own SIGBUS/SIGSEGV handler (stack overflow
        // detection) would return from a raised signal and go on.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
    let store = session.context()?.store.store().clone();
    let (location, store) =
        ganga_monitor::blocking(move || store.describe().map(|d| (d.location, store))).await??;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &Located { location })?;
    writeln!(out)?;
    out.flush()?;
    drop(out);
    let report = ganga_monitor::blocking(move || store.check()).await??;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &report)?;
    writeln!(out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// In the parent: run the checker and report what became of it.
async fn check(session: &Session, json: bool) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this program to run the check")?;
    let mut args = session.setup_args();
    args.extend(["store", "check", CHECKER_FLAG].map(OsString::from));
    let out = tokio::process::Command::new(&exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot start the checker {}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let location = lines
        .next()
        .and_then(|l| serde_json::from_str::<Located>(l).ok())
        .map(|l| l.location);
    let store = match &location {
        Some(l) => format!("the store at {l}"),
        None => format!(
            "the `{}` store of {}",
            session.config().store.plugin,
            session.home().display()
        ),
    };
    let report = lines
        .next()
        .and_then(|l| serde_json::from_str::<CheckReport>(l).ok());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (report, location) = match (out.status.signal(), report, location) {
        (Some(signal), _, _) => bail!(
            "{store} could not be checked: the checker was killed by signal {signal}{}",
            signal_name(signal).map_or_else(String::new, |n| format!(" ({n})"))
        ),
        (None, Some(report), Some(location)) if out.status.success() => (report, location),
        (None, _, _) => {
            let said = stderr.trim().trim_start_matches("error: ");
            bail!(
                "{store} could not be checked: {}",
                if said.is_empty() {
                    format!("the checker ended with {}", out.status)
                } else {
                    said.to_owned()
                }
            )
        }
    };
    // What the checker warned about, if anything.
    if !stderr.trim().is_empty() {
        errln!("{}", stderr.trim_end());
    }
    let found = !report.problems.is_empty();
    if json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &Checked { location, report })?;
        writeln!(out)?;
        out.flush()?;
    } else {
        let counts = format!("{} jobs, {} subjobs", report.jobs, report.subjobs);
        if found {
            let n = report.problems.len();
            outln!(
                "{store}: {counts}, {n} {}:",
                if n == 1 { "problem" } else { "problems" }
            )?;
            for p in &report.problems {
                outln!("  {p}")?;
            }
        } else {
            outln!("{store}: {counts}, no problems")?;
        }
    }
    Ok(if found {
        ExitCode::from(PROBLEMS_FOUND)
    } else {
        ExitCode::SUCCESS
    })
}

/// The usual name of a signal that kills a reader of a damaged file.
pub(crate) fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}

async fn backup(session: &Session, dest: &Path) -> anyhow::Result<ExitCode> {
    if std::fs::symlink_metadata(dest).is_ok() {
        bail!(
            "{} already exists: a backup is written into a new directory",
            dest.display()
        );
    }
    let store = session.context()?.store.store().clone();
    let (location, store) =
        ganga_monitor::blocking(move || store.describe().map(|d| (d.location, store))).await??;
    let to = std::path::absolute(dest).unwrap_or_else(|_| dest.to_owned());
    let target = to.clone();
    ganga_monitor::blocking(move || store.backup(&target))
        .await?
        .with_context(|| {
            format!(
                "cannot back up the store at {location} into {}",
                to.display()
            )
        })?;
    outln!("the store at {location} backed up into {}", to.display())?;
    Ok(ExitCode::SUCCESS)
}
