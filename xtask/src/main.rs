//! `cargo xtask`: the project's own commands (rust-analyzer's xtask pattern).
//!
//! - `cargo xtask demo`: build everything (release) and run `examples/hello-split.toml`
//!   to completion with the real binary and its plugins, showing the results.
//! - `cargo xtask test`: build every crate (so the plugin libraries exist), then run every
//!   test of the workspace.
//! - `cargo xtask bench`: issue 3's benchmarks of the store and the cache, with plugins
//!   loaded and linked in (see `docs/benchmarks.md`).
//! - `cargo xtask new-plugin NAME`: a new backend plugin crate, outside this repository,
//!   from `plugins/template` (`new_plugin.rs`).
//! - `cargo xtask services start|stop|status`: the real systems the tests run against
//!   (single-node Slurm, Grid Engine, PBS through Slurm's Torque wrappers, installed from
//!   Debian's packages; a DiracX server on loopback, from PyPI), started by the scripts in
//!   `.ci/`. `cargo xtask test` starts them first.

mod bench;
mod new_plugin;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    match args.first().map(String::as_str) {
        Some("demo") => demo(&root),
        Some("test") => test(&root, &args[1..]),
        Some("services") => services(&root, args.get(1).map_or("status", String::as_str)),
        Some("bench") => bench::bench(&root, &args[1..]),
        Some("new-plugin") => new_plugin::run(&root, &args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <demo|test|bench> [args]\n");
            eprintln!("  demo   build (release) and run examples/hello-split.toml to completion");
            eprintln!(
                "  test   start the real systems the tests need, build everything, then run every\n         test (extra args go to the test runner; --no-services: leave the systems be)"
            );
            eprintln!(
                "  services start|stop|status   the real Slurm, Grid Engine and PBS the tests use"
            );
            eprintln!(
                "  new-plugin NAME   a new backend plugin crate from plugins/template (see docs/plugin-guide.md)"
            );
            eprintln!("  bench  measure the store and the cache (see docs/benchmarks.md):\n");
            eprintln!("{}", bench::USAGE);
            bail!("no such task: {}", args.join(" "))
        }
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs a command, echoing it first; fails if it fails.
fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", shown(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", shown(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", shown(cmd));
    }
    Ok(())
}

fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn demo(root: &Path) -> anyhow::Result<()> {
    // The whole workspace, so the plugin libraries are built beside the binary.
    run(cargo()
        .current_dir(root)
        .args(["build", "--release", "--workspace"]))?;
    let release = target_dir(root).join("release");
    let ganga = release.join("ganga");
    let home = target_dir(root).join("demo-home");
    if home.exists() {
        std::fs::remove_dir_all(&home)
            .with_context(|| format!("cannot clear {}", home.display()))?;
    }
    let ganga_cmd = |args: &[&str]| {
        let mut c = Command::new(&ganga);
        c.current_dir(root).env("GANGA_HOME", &home).args(args);
        c
    };
    eprintln!("\nganga home for this demo: {}", home.display());
    run(&mut ganga_cmd(&["plugins"]))?;
    run(&mut ganga_cmd(&[
        "submit",
        "--wait",
        "examples/hello-split.toml",
    ]))?;
    run(&mut ganga_cmd(&["jobs"]))?;
    run(&mut ganga_cmd(&["subjobs", "0"]))?;
    for sj in 0..3 {
        let out = home
            .join("workspace")
            .join("0")
            .join(sj.to_string())
            .join("output");
        for entry in
            std::fs::read_dir(&out).with_context(|| format!("no outputs in {}", out.display()))?
        {
            let path = entry?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("hello-"))
            {
                print!("{}: {}", path.display(), std::fs::read_to_string(&path)?);
            }
        }
    }
    eprintln!(
        "\nExplore it: GANGA_HOME={} {} show 0",
        home.display(),
        ganga.display()
    );
    Ok(())
}

/// The scripts that start the real systems the tests run against, in the order they are
/// started (PBS runs on top of Slurm).
const SERVICES: &[&str] = &[
    ".ci/batch/slurm.sh",
    ".ci/batch/sge.sh",
    ".ci/batch/pbs.sh",
    ".ci/diracx.sh",
];

fn services(root: &Path, action: &str) -> anyhow::Result<()> {
    if !matches!(action, "start" | "stop" | "status") {
        bail!("services: expected start, stop or status, not `{action}`");
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if action != "status" && unsafe { libc::geteuid() } != 0 {
        bail!(
            "starting the test systems (Slurm, Grid Engine, PBS, DiracX) installs Debian and \
             PyPI packages and runs daemons: it needs root. Run `sudo cargo xtask services {action}`, or run the \
             scripts in .ci/ yourself; tests that need them fail until they run"
        );
    }
    let scripts: Vec<&&str> = if action == "stop" {
        SERVICES.iter().rev().collect()
    } else {
        SERVICES.iter().collect()
    };
    let mut failed = Vec::new();
    for script in scripts {
        let mut cmd = Command::new("bash");
        cmd.current_dir(root).arg(script).arg(action);
        if let Err(e) = run(&mut cmd) {
            failed.push(format!("{script}: {e:#}"));
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}

fn test(root: &Path, extra: &[String]) -> anyhow::Result<()> {
    let (no_services, extra): (Vec<&String>, Vec<&String>) =
        extra.iter().partition(|a| *a == "--no-services");
    if no_services.is_empty() {
        services(root, "start")?;
    }
    let extra: Vec<String> = extra.into_iter().cloned().collect();
    let extra = &extra[..];
    // Build every crate first: the end-to-end tests load plugin libraries and run the
    // `ganga` binary, which they then find up to date.
    run(cargo()
        .current_dir(root)
        .args(["build", "--workspace", "--all-targets"]))?;
    let nextest = cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if nextest {
        run(cargo()
            .current_dir(root)
            .args(["nextest", "run", "--workspace", "--no-fail-fast"])
            .args(extra))?;
        // nextest does not run doctests.
        run(cargo()
            .current_dir(root)
            .args(["test", "--workspace", "--doc"]))
    } else {
        run(cargo()
            .current_dir(root)
            .args(["test", "--workspace", "--no-fail-fast"])
            .args(extra))
    }
}
