//! `ganga migrate GANGADIR`: brings a Ganga gangadir into this home through
//! `ganga-migrate`, with a progress bar on a terminal and the report at the end.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use ganga_core::{Store, Timestamp};
use ganga_migrate::{Options, Progress, Severity, WorkspaceMode};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::MigrateArgs;
use crate::out::{out, outln};
use ganga_session::Session;

/// The exit code of a migration that skipped some objects (all others were brought over).
const SOME_SKIPPED: u8 = 2;

pub(crate) async fn run(session: &Session, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut options = Options::new(Timestamp::from_millis(now));
    options.dry_run = args.dry_run;
    options.force = args.force;
    options.workspace = match args.workspace.as_str() {
        "link" => WorkspaceMode::Link,
        "none" => WorkspaceMode::None,
        _ => WorkspaceMode::Copy,
    };
    // A dry run must not create a store: it reads one only if the home has been used.
    let store: Option<Arc<dyn Store>> = if args.dry_run && !home_in_use(session.home()) {
        None
    } else {
        Some(session.context()?.store.store().clone())
    };
    let workspaces = session.workspaces();
    let gangadir = args.gangadir.clone();

    let bar = progress_bar();
    let report = {
        let bar = bar.clone();
        ganga_monitor::blocking(move || {
            let mut on_progress = |p: Progress| match p {
                Progress::Start { objects, subjobs } => {
                    bar.set_length(objects + subjobs);
                    bar.set_message(format!("{objects} jobs, {subjobs} subjobs"));
                }
                Progress::Object { subjobs } => bar.inc(1 + subjobs),
                Progress::Finish => bar.finish_and_clear(),
            };
            ganga_migrate::migrate_with(
                &gangadir,
                store.as_deref(),
                &workspaces,
                &options,
                &mut on_progress,
            )
        })
        .await
        .context("the migration task failed")?
    };
    bar.finish_and_clear();
    let report = report.with_context(|| format!("cannot migrate {}", args.gangadir.display()))?;

    if args.json {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        out.flush()?;
    } else {
        out!("{report}")?;
        if args.dry_run {
            outln!("dry run: nothing was written")?;
        }
    }
    Ok(if report.problems_of(Severity::Skipped).next().is_some() {
        ExitCode::from(SOME_SKIPPED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether the home holds anything besides a config file (so a store may be there).
fn home_in_use(home: &Path) -> bool {
    std::fs::read_dir(home)
        .is_ok_and(|entries| entries.flatten().any(|e| e.file_name() != "config.toml"))
}

/// A bar on stderr when it is a terminal; hidden otherwise.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) =
        ProgressStyle::with_template("migrating {msg} [{bar:30}] {pos}/{len} ({eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
