//! `cargo xtask bench`: issue 3's benchmarks of the store and the cache.
//!
//! Builds the `ganga` binary and the `ganga-bench` driver twice (plugins loaded as
//! libraries, and linked in with the `static-plugins` features), copies each build into
//! an install directory of its own (so a concurrent `cargo build` cannot swap a binary
//! mid-run, and only the shipped plugins sit beside it), populates a fresh home per
//! linking mode, runs each benchmark as a child process measured from outside (wall
//! clock, and `wait4` for peak RSS and CPU time), prints a table and writes every run's
//! figures with a description of the machine as JSON. See `docs/benchmarks.md`.
//!
//! Here: the command line and the order of the run. `install` builds and installs,
//! `child` runs one measured process, `report` turns runs into figures and publishes
//! them; `mode` is one linking mode's home and processes, `store` and `migrate` its
//! benchmarks. `scale` is what `monitor`, `batch` and `dirac` share; `python` reuses
//! a mode.

mod batch;
mod child;
mod dirac;
mod disk;
mod install;
mod machine;
mod migrate;
mod mode;
mod monitor;
mod python;
mod report;
mod scale;
mod store;
mod workload;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use self::install::{build, install, results_dir};
use self::migrate::Gangadir;
use self::mode::Mode;
use self::workload::Named;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bench {
    Store,
    List,
    LoadOne,
    TouchAll,
    TouchAllSubjobs,
    Churn,
    Migrate,
}

impl Bench {
    /// In the order they run: `churn` changes the store, so it comes last.
    /// `migrate` makes homes of its own.
    const ALL: [Bench; 7] = [
        Bench::Store,
        Bench::List,
        Bench::LoadOne,
        Bench::TouchAll,
        Bench::TouchAllSubjobs,
        Bench::Churn,
        Bench::Migrate,
    ];

    fn name(self) -> &'static str {
        match self {
            Bench::Store => "store",
            Bench::List => "list",
            Bench::LoadOne => "load-one",
            Bench::TouchAll => "touch-all",
            Bench::TouchAllSubjobs => "touch-all-subjobs",
            Bench::Churn => "churn",
            Bench::Migrate => "migrate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Linking {
    Dynamic,
    Static,
}

impl Linking {
    fn name(self) -> &'static str {
        match self {
            Linking::Dynamic => "dynamic",
            Linking::Static => "static",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Release,
    Debug,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

struct Options {
    benches: Vec<Bench>,
    workload: String,
    linkings: Vec<Linking>,
    runs: Option<u32>,
    json: Option<PathBuf>,
    profile: Profile,
    dir: Option<PathBuf>,
    build: bool,
}

pub(crate) const USAGE: &str = "\
cargo xtask bench [NAME...] [--workload tiny|small|full|PATH] [--linking dynamic|static|both]
                  [--runs N] [--json PATH] [--profile release|debug] [--dir DIR] [--no-build]

  NAME       store, list, load-one, touch-all, touch-all-subjobs, churn, migrate
             (`cargo xtask bench python --help`: the Python module, on its own)
             (default: all the workload can run; store always runs, the others but
             migrate read the home it makes; load-one needs the workload's big job,
             migrate runs `ganga migrate` on its Ganga fixture)
  --workload a file in xtask/workloads/ by name, or a path (default: small)
  --linking  plugins loaded as libraries, linked in, or both (default: both)
  --runs     runs of each benchmark but store (default: the workload's)
  --json     where to write every run's figures (default: DIR/WORKLOAD/results.json)
  --profile  build profile (default: release; debug is for the harness's own test)
  --dir      where homes, installs and logs go (default: target/bench)
  --no-build use the binaries already built

cargo xtask bench monitor|batch|dirac [--help]: the monitoring service, the Batch
backend on real Slurm, the DIRAC backend on a real DiracX (docs/benchmarks.md)";

/// What the command line asks for: the usage, or a run.
enum Request {
    Help,
    Run(Options),
}

fn parse(args: &[String]) -> anyhow::Result<Request> {
    let mut o = Options {
        benches: Vec::new(),
        workload: "small".to_owned(),
        linkings: vec![Linking::Dynamic, Linking::Static],
        runs: None,
        json: None,
        profile: Profile::Release,
        dir: None,
        build: true,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--workload" => o.workload = value(arg)?,
            "--linking" => {
                o.linkings = match value(arg)?.as_str() {
                    "dynamic" => vec![Linking::Dynamic],
                    "static" => vec![Linking::Static],
                    "both" => vec![Linking::Dynamic, Linking::Static],
                    other => bail!("--linking {other}: expected dynamic, static or both"),
                }
            }
            "--runs" => {
                let v = value(arg)?;
                let n: u32 = v.parse().with_context(|| format!("--runs {v}"))?;
                if n == 0 {
                    bail!("--runs must be at least 1");
                }
                o.runs = Some(n);
            }
            "--json" => o.json = Some(PathBuf::from(value(arg)?)),
            "--dir" => o.dir = Some(PathBuf::from(value(arg)?)),
            "--profile" => {
                o.profile = match value(arg)?.as_str() {
                    "release" => Profile::Release,
                    "debug" => Profile::Debug,
                    other => bail!("--profile {other}: expected release or debug"),
                }
            }
            "--no-build" => o.build = false,
            // Asking for the usage is not a mistake: it goes to stdout and succeeds.
            "-h" | "--help" => return Ok(Request::Help),
            name => match Bench::ALL.iter().find(|b| b.name() == name) {
                Some(b) => o.benches.push(*b),
                None => bail!("unknown benchmark or option `{name}`\n\n{USAGE}"),
            },
        }
    }
    Ok(Request::Run(o))
}

pub(crate) fn bench(root: &Path, args: &[String]) -> anyhow::Result<()> {
    // The monitoring service, the backends and the Python API: benchmarks of their own.
    match args.first().map(String::as_str) {
        Some("monitor") => return monitor::bench(root, &args[1..]),
        Some("batch") => return batch::bench(root, &args[1..]),
        Some("dirac") => return dirac::bench(root, &args[1..]),
        Some("python") => return python::bench(root, &args[1..]),
        _ => {}
    }
    let opts = match parse(args)? {
        Request::Help => {
            println!("{USAGE}");
            return Ok(());
        }
        Request::Run(opts) => opts,
    };
    let named = Named::load(root, &opts.workload)?;
    let benches = chosen(&opts.benches, &named)?;
    let target = crate::target_dir(root);
    let dir = results_dir(&target, opts.dir.as_deref(), &named.name)?;
    let started = machine::utc_now();
    eprintln!(
        "bench: workload {} ({}), linking {}, results in {}",
        named.name,
        named.workload.description,
        opts.linkings
            .iter()
            .map(|l| l.name())
            .collect::<Vec<_>>()
            .join(" and "),
        dir.display()
    );

    // Every build first, so that no build runs between measurements.
    let mut installs = Vec::new();
    for &linking in &opts.linkings {
        if opts.build {
            build(root, &target, linking, opts.profile)?;
        }
        installs.push((linking, install(&target, linking, opts.profile, &dir)?));
    }
    let gangadir = match &named.workload.migrate {
        Some(m) if benches.contains(&Bench::Migrate) => {
            Some(Gangadir::unpack(&root.join(&m.fixture), &dir, m.subjobs)?)
        }
        _ => None,
    };
    let machine = machine::describe(root, &dir);

    let mut results = Vec::new();
    let mut checks = serde_json::Map::new();
    for (linking, bin) in installs {
        let mut mode = Mode::new(linking, bin, &dir, &named, opts.runs)?;
        mode.gangadir = gangadir.clone();
        results.extend(mode.run(&benches)?);
        checks.insert(linking.name().to_owned(), Value::Object(mode.checks));
    }

    let json_path = opts
        .json
        .clone()
        .unwrap_or_else(|| dir.join("results.json"));
    let report = json!({
        "harness": "cargo xtask bench",
        "arguments": args,
        "profile": opts.profile.dir(),
        "started_utc": started,
        "finished_utc": machine::utc_now(),
        "load_average_at_end": machine::load_average(),
        "machine": machine,
        "workload": {
            "name": named.name,
            "path": named.path,
            "file": serde_json::to_value(&named.raw)?,
        },
        "checks": checks,
        "results": results,
    });
    if let Some(parent) = json_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let heading = format!(
        "workload {}: {}; {} profile; {}",
        named.name,
        named.workload.description,
        opts.profile.dir(),
        started
    );
    report::publish(&json_path, &report, &heading, &results)
}

/// The benchmarks to run: those named, each of which the workload must be able to run
/// (`load-one` needs a big job, `migrate` a Ganga fixture), or else every one it can.
fn chosen(named_benches: &[Bench], named: &Named) -> anyhow::Result<Vec<Bench>> {
    let w = &named.workload;
    let lacks = |b: Bench| match b {
        Bench::LoadOne if w.big_job_subjobs() == 0 => Some("no big job (store.big_job_subjobs)"),
        Bench::Migrate if w.migrate.is_none() => Some("no Ganga fixture ([migrate])"),
        _ => None,
    };
    if named_benches.is_empty() {
        let all: Vec<Bench> = Bench::ALL
            .into_iter()
            .filter(|&b| lacks(b).is_none())
            .collect();
        for b in Bench::ALL.into_iter().filter(|&b| lacks(b).is_some()) {
            eprintln!(
                "bench: workload {} has {}: {} is not among the benchmarks run",
                named.name,
                lacks(b).unwrap_or_default(),
                b.name()
            );
        }
        return Ok(all);
    }
    for &b in named_benches {
        if let Some(what) = lacks(b) {
            bail!(
                "{} was asked for, but workload {} has {what}",
                b.name(),
                named.name
            );
        }
    }
    Ok(named_benches.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workload without a big job or a Ganga fixture.
    fn plain() -> Named {
        let text = r#"
            description = "plain"
            runs = 1
            [store]
            masters = 1
            [churn]
            changes = 1
            batch = 1
        "#;
        Named {
            name: "plain".into(),
            path: PathBuf::from("plain.toml"),
            workload: toml::from_str(text).expect("a valid workload"),
            raw: toml::from_str(text).expect("a valid table"),
        }
    }

    #[test]
    fn benchmarks_a_workload_cannot_run_are_refused_when_asked_for_and_left_out_otherwise() {
        let w = plain();
        let all = chosen(&[], &w).expect("the default set");
        assert!(!all.contains(&Bench::LoadOne) && !all.contains(&Bench::Migrate));
        assert!(all.contains(&Bench::Churn));
        for b in [Bench::LoadOne, Bench::Migrate] {
            let e = chosen(&[b], &w).expect_err("refused").to_string();
            assert!(e.contains(b.name()) && e.contains("plain"), "{e}");
        }
        assert_eq!(chosen(&[Bench::List], &w).expect("runs"), [Bench::List]);
    }
}
