//! The command line, as clap reads it. Nothing here knows what the arguments mean beyond
//! their shape; `session.rs` resolves them against the environment and config.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, CommandFactory as _, Parser, Subcommand};
use ganga_core::{JobRef, Status};

/// ganga-rs: define jobs, split them into subjobs, run them on this machine, a batch
/// cluster or the grid, watch them, collect their outputs, resubmit what failed.
#[derive(Debug, Parser)]
#[command(name = "ganga", version = crate::versions::version_line(), about, max_term_width = 100)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct Global {
    /// Where the store and job workspaces live [default: $GANGA_HOME, else the XDG data dir]
    #[arg(long, global = true, value_name = "DIR", env = "GANGA_HOME")]
    pub(crate) home: Option<PathBuf>,
    /// The config file [default: $GANGA_CONFIG, else <home>/config.toml, else the XDG config dir]
    #[arg(long, global = true, value_name = "FILE", env = "GANGA_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Also look for plugins in DIR (before every other place)
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    pub(crate) plugin_dirs: Vec<PathBuf>,
    /// Load this plugin library (before any found by searching)
    #[arg(long = "plugin", global = true, value_name = "FILE")]
    pub(crate) plugins: Vec<PathBuf>,
    /// The most memory the job cache may hold, in MiB [default: from the config, else 64]
    #[arg(long = "cache-mib", global = true, value_name = "MIB")]
    pub(crate) cache_mib: Option<u64>,
    /// Say more (-v: what happens, -vv: debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Say only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Submit a job file (creating the job), or a job in status `new` by its id
    Submit {
        /// A TOML job file, or the id of a `new` job (e.g. one made by `copy`)
        target: PathBuf,
        /// Stay until the job has ended, monitoring it
        #[arg(long)]
        wait: bool,
    },
    /// List jobs
    Jobs {
        /// Only jobs in this status (repeatable)
        #[arg(long, short)]
        status: Vec<Status>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one job or subjob in full
    Show {
        /// ID or ID.SUBJOB
        job: JobRef,
        #[arg(long)]
        json: bool,
    },
    /// List the subjobs of a job, or of every job (`--all`)
    Subjobs {
        #[arg(required_unless_present = "all")]
        job: Option<u64>,
        /// Every subjob of every job (with --status: those in it), e.g. `--all --status failed`
        #[arg(long, conflicts_with = "job")]
        all: bool,
        /// Only subjobs in this status (repeatable)
        #[arg(long, short)]
        status: Vec<Status>,
        #[arg(long)]
        json: bool,
    },
    /// Kill jobs or subjobs at their backend
    Kill {
        #[arg(required = true)]
        jobs: Vec<JobRef>,
    },
    /// Run again the failed and killed subjobs of a job (or a job or subjob named)
    Resubmit {
        #[arg(required = true)]
        jobs: Vec<JobRef>,
        /// Stay until the jobs have ended, monitoring them
        #[arg(long)]
        wait: bool,
    },
    /// Remove jobs, their subjobs and their workspaces
    Remove {
        #[arg(required = true)]
        jobs: Vec<u64>,
        /// Remove even an active job (killing it first as far as possible)
        #[arg(long)]
        force: bool,
    },
    /// Make a new job (status `new`) with the same definition as another
    Copy {
        job: u64,
        /// Submit the copy at once
        #[arg(long)]
        submit: bool,
    },
    /// Set a job's status by hand: `completed` or `failed` (Ganga's force_status)
    ForceStatus { job: JobRef, status: Status },
    /// Show the end of a job's stdout, stderr or another file, even while it runs
    Peek {
        /// ID.SUBJOB, or ID for a job without subjobs
        job: JobRef,
        /// stdout, stderr, or a path relative to the job's working directory
        #[arg(default_value = "stdout")]
        file: String,
        /// Show at most this many bytes from the end
        #[arg(long, default_value_t = ganga_monitor::DEFAULT_PEEK_BYTES)]
        bytes: u64,
    },
    /// Drive active jobs to the end: poll backends, collect outputs (until Ctrl-C);
    /// or ask the running monitor how it does, or to stop
    Monitor {
        #[command(subcommand)]
        action: Option<MonitorAction>,
        /// Stop once no job is active
        #[arg(long)]
        until_idle: bool,
        /// Seconds between polls of every backend [default: from the config, else each
        /// backend's own]
        #[arg(long, value_name = "SECS")]
        interval: Option<f64>,
        /// Run as the background monitor `ganga submit` starts: quietly, logging to
        /// <home>/monitor.log, leaving if another monitor runs, stopping when idle
        #[arg(long, hide = true)]
        background: bool,
    },
    /// Wait until jobs have ended (monitoring them if no monitor runs); exit 0 if all
    /// completed, 2 if any ended otherwise
    Wait {
        #[arg(required = true)]
        jobs: Vec<u64>,
        /// Give up after this many seconds (exit 3)
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
    },
    /// Bring a Ganga gangadir into ganga-rs: jobs, subjobs, templates, job tree folders
    /// and outputs (see docs/migration.md)
    Migrate(MigrateArgs),
    /// List the plugins found, where from, and those refused; or check a plugin library
    Plugins {
        #[command(subcommand)]
        action: Option<PluginsAction>,
        #[arg(long)]
        json: bool,
    },
    /// Look after the store: check it, back it up
    #[command(subcommand)]
    Store(StoreCommand),
    /// Print a completion script for a shell, e.g.
    /// `ganga completions bash > ~/.local/share/bash-completion/completions/ganga`
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff), e.g. `ganga man | man -l -`
    Man,
    /// A backend's own command: `ganga BACKEND ARGS...`, e.g. `ganga dirac login`
    #[command(external_subcommand)]
    Backend(Vec<String>),
}

/// Writes the completion script for `shell`, made from these definitions.
pub(crate) fn print_completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    // Made in memory first: clap_complete panics when a write fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "ganga", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the manual page, made from these definitions.
pub(crate) fn print_man() -> anyhow::Result<ExitCode> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    clap_mangen::Man::new(Args::command()).render(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Check that the store's indexes and summaries agree with its records; exits 2 when
    /// it finds problems. The check runs in a process of its own, so that a crash inside
    /// the store is reported, naming the store, rather than ending this command.
    Check {
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
        /// Run the check in this process (how the checking process is started)
        #[arg(long, hide = true)]
        checker: bool,
    },
    /// Write a consistent copy of the store into DEST, a new directory, while it is in use
    Backup { dest: PathBuf },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PluginsAction {
    /// Load a backend plugin library and run the backend conformance suite against it, in
    /// a scratch home, one check after the other; exits 0 when every check passes, 2 when
    /// one fails, 1 when the library is refused
    Check(PluginCheckArgs),
}

#[derive(Debug, ClapArgs)]
pub(crate) struct PluginCheckArgs {
    /// The library, e.g. target/release/libganga_backend_mysite.so
    pub(crate) file: PathBuf,
    /// Print the results as JSON
    #[arg(long)]
    pub(crate) json: bool,
    /// How long a short job may take from submit to its end, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub(crate) timeout: f64,
    /// Leave a check out (repeatable), e.g. `--skip kill_running --skip runs` for a
    /// backend that runs jobs in the foreground
    #[arg(long, value_name = "CHECK")]
    pub(crate) skip: Vec<String>,
    /// Run only this check (repeatable)
    #[arg(long, value_name = "CHECK")]
    pub(crate) only: Vec<String>,
    /// Keep the scratch home (its path is printed), to look at what the jobs left
    #[arg(long)]
    pub(crate) keep: bool,
    /// Run one check in this process, in the scratch home given (how each check's
    /// process is started)
    #[arg(long, hide = true, value_name = "CHECK", requires = "scratch")]
    pub(crate) checker: Option<String>,
    /// Load and describe the plugin in this process (how the first process is started)
    #[arg(long, hide = true, requires = "scratch", conflicts_with = "checker")]
    pub(crate) probe: bool,
    #[arg(long, hide = true, value_name = "DIR")]
    pub(crate) scratch: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MonitorAction {
    /// Whether a monitor runs for this home, and how it drives each backend
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Stop the running monitor (what it has in flight is committed first)
    Stop,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct MigrateArgs {
    /// The gangadir: the directory Ganga's [Configuration]gangadir names (e.g. ~/gangadir)
    pub(crate) gangadir: PathBuf,
    /// Read everything and print the report, but write nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Go on although a Ganga session seems to be running on the gangadir
    #[arg(long)]
    pub(crate) force: bool,
    /// How job outputs are brought over: copied, hard-linked where possible, or left
    #[arg(long, value_name = "HOW", default_value = "copy", value_parser = ["copy", "link", "none"])]
    pub(crate) workspace: String,
    /// Print the report as JSON
    #[arg(long)]
    pub(crate) json: bool,
}
