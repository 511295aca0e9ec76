//! `ganga`: the command line of ganga-rs.
//!
//! This is the only crate that knows terminals. The composition (home, config file,
//! plugins found beside the binary or on the plugin path, or linked in with the
//! `static-plugins` feature; the store, the monitor's settings, job files) comes from
//! `ganga-session`, shared with the Python module; this crate reads the command line,
//! renders jobs for people and scripts, and starts the background monitor.

// Printing goes through out.rs, which neither panics nor fails on a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod commands;
mod listing;
mod maintenance;
mod migrate;
mod monitoring;
mod out;
mod plugincheck;
mod render;
mod versions;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    ganga_session::report_store_faults();
    let args = args::Args::parse();
    init_logging(&args.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            out::errln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.command {
        // Made from the command line's definitions alone: no config, home or plugins.
        args::Command::Completions { shell } => args::print_completions(shell),
        args::Command::Man => args::print_man(),
        // Needs no home, config search or plugin path: it checks one library in a scratch home.
        args::Command::Plugins {
            action: Some(args::PluginsAction::Check(check)),
            ..
        } => runtime.block_on(plugincheck::run(&args.global, check)),
        command => runtime.block_on(async {
            let session = ganga_session::Session::open(&session_options(&args.global))?;
            commands::run(&session, command).await
        }),
    };
    match result {
        Ok(code) => code,
        // The reader of our output has gone (`ganga jobs | head`): not a failure.
        Err(e) if out::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            out::errln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the session is opened with: the flags (clap has read `GANGA_HOME` and
/// `GANGA_CONFIG` into them), and this binary's directory, beside which its plugins are.
fn session_options(global: &args::Global) -> ganga_session::SessionOptions {
    ganga_session::SessionOptions {
        home: global.home.clone(),
        config: global.config.clone(),
        plugin_dirs: global.plugin_dirs.clone(),
        plugin_files: global.plugins.clone(),
        cache_mib: global.cache_mib,
        host_dirs: ganga_session::exe_dir().into_iter().collect(),
    }
}

fn init_logging(global: &args::Global) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GANGA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
}
