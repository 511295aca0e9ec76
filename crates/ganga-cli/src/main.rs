//! `ganga`: the command line of ganga-rs.
//!
//! This is the only crate that knows terminals, config files and where plugins are
//! looked for. It composes the toolkit at run time: the store and the backends are plugin
//! libraries found beside the binary or on the plugin path (or linked in with the
//! `static-plugins` feature), and the monitor and operations come from `ganga-monitor`.

mod args;
mod commands;
mod config;
mod jobfile;
mod migrate;
mod monitoring;
mod render;
mod session;
mod tomlfile;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = args::Args::parse();
    init_logging(&args.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let session = session::Session::open(&args.global)?;
        commands::run(&session, args.command).await
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
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
