//! `cargo xtask bench`: issue 3's benchmarks of the store and the cache.
//!
//! Builds the `ganga` binary and the `ganga-bench` driver twice (plugins loaded as
//! libraries, and linked in with the `static-plugins` features), copies each build into
//! an install directory of its own (so a concurrent `cargo build` cannot swap a binary
//! mid-run, and only the shipped plugins sit beside it), populates a fresh home per
//! linking mode, runs each benchmark as a child process measured from outside (wall
//! clock, and `wait4` for peak RSS and CPU time), prints a table and writes every run's
//! figures with a description of the machine as JSON. See `docs/benchmarks.md`.

mod child;
mod machine;
mod python;
mod report;
mod workload;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use self::child::Measured;
use self::report::{BenchResult, Figure, Run, Unit, median, secs};
use self::workload::{Named, Workload};

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
  --no-build use the binaries already built";

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
    if args.first().is_some_and(|a| a == "python") {
        return python::bench(root, &args[1..]);
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
    let dir = opts
        .dir
        .clone()
        .unwrap_or_else(|| target.join("bench"))
        .join(&named.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
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
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!(
        "\nworkload {}: {}; {} profile; {}",
        named.name,
        named.workload.description,
        opts.profile.dir(),
        started
    );
    println!("{}", report::table(&results));
    eprintln!("\nevery run's figures: {}", json_path.display());
    Ok(())
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

fn build(root: &Path, target: &Path, linking: Linking, profile: Profile) -> anyhow::Result<()> {
    let release: &[&str] = match profile {
        Profile::Release => &["--release"],
        Profile::Debug => &[],
    };
    match (linking, profile) {
        // What `cargo xtask demo` builds too: the binary and every plugin library.
        (Linking::Dynamic, Profile::Release) => crate::run(
            crate::cargo()
                .current_dir(root)
                .args(["build", "--release", "--workspace"]),
        ),
        // Package by package, as the tests' own builds do, so they share artifacts.
        (Linking::Dynamic, Profile::Debug) => {
            for package in [
                "ganga-cli",
                "ganga-bench",
                "ganga-store-lmdb",
                "ganga-backend-local",
            ] {
                crate::run(
                    crate::cargo()
                        .current_dir(root)
                        .args(["build", "-p", package]),
                )?;
            }
            Ok(())
        }
        // A target directory of its own, so the dynamic build is not disturbed.
        (Linking::Static, _) => crate::run(
            crate::cargo()
                .current_dir(root)
                .args(["build"])
                .args(release)
                .args([
                    "-p",
                    "ganga-cli",
                    "-p",
                    "ganga-bench",
                    "--features",
                    "ganga-cli/static-plugins,ganga-bench/static-plugins",
                    "--target-dir",
                ])
                .arg(target.join("bench-static")),
        ),
    }
}

/// Copies the binaries (and, for dynamic linking, the shipped plugin libraries) into
/// `DIR/LINKING/bin`, as a user's install would hold them.
fn install(
    target: &Path,
    linking: Linking,
    profile: Profile,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    let from = match linking {
        Linking::Dynamic => target.join(profile.dir()),
        Linking::Static => target.join("bench-static").join(profile.dir()),
    };
    let bin = dir.join(linking.name()).join("bin");
    if bin.exists() {
        std::fs::remove_dir_all(&bin).with_context(|| format!("cannot clear {}", bin.display()))?;
    }
    std::fs::create_dir_all(&bin)?;
    let lib = |name: &str| {
        format!(
            "{}{name}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )
    };
    let mut files = vec!["ganga".to_owned(), "ganga-bench".to_owned()];
    if linking == Linking::Dynamic {
        files.push(lib("ganga_store_lmdb"));
        files.push(lib("ganga_backend_local"));
    }
    for file in files {
        let src = from.join(&file);
        std::fs::copy(&src, bin.join(&file)).with_context(|| {
            format!(
                "cannot copy {} (built? run without --no-build)",
                src.display()
            )
        })?;
    }
    Ok(bin)
}

/// The most a benchmark's process may take, as the workload's targets say.
#[derive(Debug, Clone, Copy, Default)]
struct Limits {
    wall_secs: Option<f64>,
    /// MB = 10^6 bytes, as the issue states them.
    peak_rss_mb: Option<f64>,
}

/// One linking mode: its install, its home, and the benchmarks run against them.
struct Mode<'a> {
    linking: Linking,
    bin: PathBuf,
    home: PathBuf,
    /// An empty XDG config directory: no user config or plugin dir leaks in.
    xdg: PathBuf,
    logs: PathBuf,
    named: &'a Named,
    runs: u32,
    /// How many processes ran so far, to name their logs.
    count: usize,
    checks: serde_json::Map<String, Value>,
    /// What `migrate` migrates (none: the workload has no fixture).
    gangadir: Option<Gangadir>,
}

impl<'a> Mode<'a> {
    fn new(
        linking: Linking,
        bin: PathBuf,
        dir: &Path,
        named: &'a Named,
        runs: Option<u32>,
    ) -> anyhow::Result<Mode<'a>> {
        let base = dir.join(linking.name());
        let logs = base.join("logs");
        let xdg = base.join("xdg-config");
        for d in [&logs, &xdg] {
            if d.exists() {
                std::fs::remove_dir_all(d)?;
            }
            std::fs::create_dir_all(d)?;
        }
        Ok(Mode {
            linking,
            bin,
            home: base.join("home"),
            xdg,
            logs,
            named,
            runs: runs.unwrap_or(named.workload.runs).max(1),
            count: 0,
            checks: serde_json::Map::new(),
            gangadir: None,
        })
    }

    fn workload(&self) -> &Workload {
        &self.named.workload
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        for var in [
            "GANGA_HOME",
            "GANGA_CONFIG",
            "GANGA_PLUGIN_PATH",
            "GANGA_LOG",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("XDG_CONFIG_HOME", &self.xdg)
            .env("GANGA_HOME", &self.home)
            .current_dir(&self.bin);
        cmd
    }

    fn ganga(&self, args: &[&str]) -> Command {
        let mut cmd = self.command("ganga");
        cmd.args(args);
        cmd
    }

    fn driver(&self, subcommand: &str, args: &[String]) -> Command {
        let mut cmd = self.command("ganga-bench");
        cmd.arg(subcommand).arg("--home").arg(&self.home).args(args);
        cmd
    }

    /// Runs a process, its stdout kept if `keep` (in the logs directory).
    fn measure(&mut self, label: &str, cmd: &mut Command, keep: bool) -> anyhow::Result<Measured> {
        self.count += 1;
        let stem = format!("{:03}-{}", self.count, label.replace([' ', '/'], "_"));
        let stdout = keep.then(|| self.logs.join(format!("{stem}.stdout")));
        child::measure(
            cmd,
            stdout.as_deref(),
            &self.logs.join(format!("{stem}.stderr")),
        )
    }

    /// Runs a command once, unmeasured, and returns its stdout parsed as JSON.
    fn json_of(&mut self, label: &str, mut cmd: Command) -> anyhow::Result<Value> {
        let m = self.measure(label, &mut cmd, true)?;
        let text = m.output()?;
        serde_json::from_str(&text).with_context(|| format!("{label}: stdout is not JSON"))
    }

    /// Runs a command once, unmeasured, and returns the length of the JSON array it prints.
    fn array_len_of(&mut self, label: &str, mut cmd: Command) -> anyhow::Result<usize> {
        self.measure(label, &mut cmd, true)?.json_array_len()
    }

    fn progress(&self, bench: &str, i: u32, n: u32, m: &Measured, extra: &str) {
        if m.peak_rss_kib <= m.parent_peak_rss_kib {
            eprintln!(
                "bench: warning: the peak RSS of {bench} ({} KiB) is not above the harness's \
                 own ({} KiB), which Linux carries over into its children: the figure is the \
                 harness's",
                m.peak_rss_kib, m.parent_peak_rss_kib
            );
        }
        eprintln!(
            "bench [{}] {bench} {}/{n}: wall {}, peak RSS {:.1} MiB{extra}",
            self.linking.name(),
            i + 1,
            secs(m.wall_secs),
            m.peak_rss_mib()
        );
    }

    fn run(&mut self, benches: &[Bench]) -> anyhow::Result<Vec<BenchResult>> {
        let mut results = vec![self.store()?];
        let big_job = self.check_store()?;
        if benches.contains(&Bench::List) {
            results.push(self.list()?);
        }
        if benches.contains(&Bench::LoadOne) {
            // `chosen` runs load-one only on a workload with a big job.
            let id = big_job.context("load-one needs a workload with a big job")?;
            results.extend(self.load_one(id)?);
        }
        if benches.contains(&Bench::TouchAll) {
            results.push(self.touch_all("statuses")?);
        }
        if benches.contains(&Bench::TouchAllSubjobs) {
            results.push(self.touch_all("subjobs")?);
        }
        if benches.contains(&Bench::Churn) {
            results.push(self.churn()?);
        }
        if benches.contains(&Bench::Migrate) {
            // `chosen` runs migrate only on a workload with a fixture, unpacked by `bench`.
            let g = self
                .gangadir
                .clone()
                .context("migrate needs a workload with a Ganga fixture")?;
            results.push(self.migrate(&g)?);
        }
        Ok(results)
    }

    /// A benchmark's result: the medians of its processes' wall time and peak RSS, held
    /// to `limits`, then its own `figures`.
    fn result(
        &self,
        benchmark: &str,
        cmd: &Command,
        runs: Vec<Run>,
        limits: Limits,
        figures: Vec<Figure>,
    ) -> BenchResult {
        let mut all = vec![
            Figure::new(
                "wall_secs",
                med(&runs, |r| r.process.wall_secs),
                Unit::Secs,
                "",
            )
            .at_most(limits.wall_secs, secs),
            Figure::new(
                "peak_rss_mib",
                med(&runs, |r| r.process.peak_rss_mib()),
                Unit::Mib,
                "",
            )
            .at_most(limits.peak_rss_mb.map(mb_to_mib), mib_as_mb),
        ];
        all.extend(figures);
        BenchResult {
            benchmark: benchmark.to_owned(),
            linking: self.linking.name().to_owned(),
            command: crate::shown(cmd),
            runs,
            figures: all,
        }
    }

    fn store(&mut self) -> anyhow::Result<BenchResult> {
        let n = self.workload().store_runs.max(1);
        let workload = self.named.path.display().to_string();
        let mut runs = Vec::new();
        let mut cmd = self.driver("populate", &["--workload".to_owned(), workload]);
        for i in 0..n {
            if self.home.exists() {
                std::fs::remove_dir_all(&self.home)
                    .with_context(|| format!("cannot clear {}", self.home.display()))?;
            }
            let m = self.measure("store", &mut cmd, true)?;
            let driver: Value = serde_json::from_str(&m.output()?).context("populate's report")?;
            let disk = disk_usage(&self.home.join("store"))?;
            let subjobs = num(&driver, "/result/subjobs");
            let per = num(&disk, "/apparent_bytes") / subjobs.max(1.0);
            self.progress(
                "store",
                i,
                n,
                &m,
                &format!(
                    ", store {} for {} subjobs, {per:.0} B/subjob",
                    secs(num(&driver, "/result/store_secs")),
                    report::thousands(subjobs as u64)
                ),
            );
            runs.push(Run {
                process: m,
                driver: Some(driver),
                disk: Some(disk),
            });
        }
        let subjobs = med(&runs, |r| num_opt(&r.driver, "/result/subjobs"));
        let jobs = med(&runs, |r| num_opt(&r.driver, "/result/jobs"));
        let store_secs = med(&runs, |r| num_opt(&r.driver, "/result/store_secs"));
        let targets = &self.workload().targets;
        let figures = vec![
            Figure::new(
                "bytes_per_subjob",
                med(&runs, |r| num_opt(&r.disk, "/apparent_bytes")) / subjobs.max(1.0),
                Unit::Bytes,
                "per subjob",
            )
            .at_most(targets.store_bytes_per_subjob, |t| format!("{t} B")),
            Figure::new(
                "allocated_bytes_per_subjob",
                med(&runs, |r| num_opt(&r.disk, "/allocated_bytes")) / subjobs.max(1.0),
                Unit::Bytes,
                "allocated per subjob",
            ),
            Figure::new(
                "store_bytes",
                med(&runs, |r| num_opt(&r.disk, "/apparent_bytes")),
                Unit::Bytes,
                "in the store's files",
            ),
            Figure::new("subjobs", subjobs, Unit::Count, "subjobs"),
            Figure::new(
                "store_secs",
                store_secs,
                Unit::Secs,
                "in reserve_ids and commit",
            ),
            Figure::new(
                "subjobs_written",
                subjobs / store_secs,
                Unit::PerSec,
                "subjobs",
            ),
            Figure::new("jobs_written", jobs / store_secs, Unit::PerSec, "jobs"),
        ];
        Ok(self.result("store", &cmd, runs, Limits::default(), figures))
    }

    /// Checks, unmeasured, that the binaries use the store the mode says and that the
    /// home holds what the workload made; returns the big job's id. Also warms up.
    fn check_store(&mut self) -> anyhow::Result<Option<u64>> {
        let plugins = self.json_of("check-plugins", self.ganga(&["plugins", "--json"]))?;
        let store = plugins["plugins"]
            .as_array()
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p["kind"] == "store" && p["name"] == "lmdb")
            })
            .cloned()
            .context("`ganga plugins` lists no lmdb store")?;
        let info = self.json_of("check-driver", self.driver("info", &[]))?;
        let cli_file = store["file"].as_str();
        let driver_file = info["store"]["plugin"].as_str();
        match self.linking {
            Linking::Dynamic if cli_file.is_none() || driver_file == Some("linked") => {
                bail!("dynamic linking, but the store is linked in: {store} / {info}")
            }
            Linking::Static if cli_file.is_some() || driver_file != Some("linked") => {
                bail!("static linking, but the store is loaded from a library: {store} / {info}")
            }
            _ => {}
        }
        let listed = self.array_len_of("check-jobs", self.ganga(&["jobs", "--json"]))? as u64;
        if listed != self.workload().jobs() {
            bail!(
                "`ganga jobs` listed {listed} jobs; the workload makes {}",
                self.workload().jobs()
            );
        }
        self.checks.insert("cli_store".to_owned(), store);
        self.checks
            .insert("driver_store".to_owned(), info["store"].clone());
        self.checks.insert("jobs_listed".to_owned(), json!(listed));
        Ok(self.big_job())
    }

    /// The big job's id: the last job, when the workload has one.
    fn big_job(&self) -> Option<u64> {
        (self.workload().big_job_subjobs() > 0).then(|| self.workload().jobs() - 1)
    }

    /// Runs a `ganga` command `self.runs` times.
    fn ganga_runs(&mut self, label: &str, args: &[&str]) -> anyhow::Result<(Command, Vec<Run>)> {
        let mut cmd = self.ganga(args);
        let mut runs = Vec::new();
        for i in 0..self.runs {
            let m = self.measure(label, &mut cmd, false)?;
            self.progress(label, i, self.runs, &m, "");
            runs.push(Run {
                process: m,
                driver: None,
                disk: None,
            });
        }
        Ok((cmd, runs))
    }

    fn list(&mut self) -> anyhow::Result<BenchResult> {
        let (cmd, runs) = self.ganga_runs("list", &["jobs"])?;
        let t = &self.workload().targets;
        let limits = Limits {
            wall_secs: t.list_wall_ms.map(|ms| ms / 1000.0),
            peak_rss_mb: t.list_peak_rss_mb,
        };
        let figures = vec![Figure::new(
            "jobs",
            self.workload().jobs() as f64,
            Unit::Count,
            "jobs",
        )];
        Ok(self.result("list", &cmd, runs, limits, figures))
    }

    fn load_one(&mut self, id: u64) -> anyhow::Result<Vec<BenchResult>> {
        let n = self.workload().big_job_subjobs();
        let one = format!("{id}.{}", n / 2);
        let id = id.to_string();
        let count =
            self.array_len_of("check-subjobs", self.ganga(&["subjobs", &id, "--json"]))? as u64;
        if count != n {
            bail!("`ganga subjobs {id}` showed {count} subjobs, not {n}");
        }
        self.json_of("check-show", self.ganga(&["show", &one, "--json"]))?;
        let t = self.workload().targets.clone();
        let mut out = Vec::new();
        for (label, args) in [
            (
                format!("load-one subjobs {id}"),
                vec!["subjobs", id.as_str()],
            ),
            (format!("load-one show {one}"), vec!["show", one.as_str()]),
        ] {
            let (cmd, runs) = self.ganga_runs(&label, &args)?;
            let limits = Limits {
                wall_secs: t.load_one_wall_ms.map(|ms| ms / 1000.0),
                peak_rss_mb: t.load_one_peak_rss_mb,
            };
            out.push(self.result(&label, &cmd, runs, limits, Vec::new()));
        }
        Ok(out)
    }

    /// Runs the driver `self.runs` times; each run's report must pass `check`.
    fn driver_runs(
        &mut self,
        label: &str,
        subcommand: &str,
        args: &[String],
        check: impl Fn(&Value) -> anyhow::Result<String>,
    ) -> anyhow::Result<(Command, Vec<Run>)> {
        let mut cmd = self.driver(subcommand, args);
        let mut runs = Vec::new();
        for i in 0..self.runs {
            let m = self.measure(label, &mut cmd, true)?;
            let driver: Value =
                serde_json::from_str(&m.output()?).with_context(|| format!("{label}'s report"))?;
            let extra = check(&driver)?;
            self.progress(label, i, self.runs, &m, &extra);
            runs.push(Run {
                process: m,
                driver: Some(driver),
                disk: None,
            });
        }
        Ok((cmd, runs))
    }

    /// `read`: `statuses` (the issue's figure, held to its targets) or `subjobs`.
    fn touch_all(&mut self, read: &str) -> anyhow::Result<BenchResult> {
        let (jobs, subjobs) = (self.workload().jobs(), self.workload().subjobs());
        let label = match read {
            "statuses" => "touch-all",
            _ => "touch-all-subjobs",
        };
        let args = ["--read".to_owned(), read.to_owned()];
        let (cmd, runs) = self.driver_runs(label, "touch-all", &args, |d| {
            let (j, s) = (
                num(d, "/result/jobs") as u64,
                num(d, "/result/subjobs") as u64,
            );
            if (j, s) != (jobs, subjobs) {
                bail!(
                    "touch-all read {j} jobs and {s} subjobs; the workload has {jobs} and {subjobs}"
                );
            }
            Ok(format!(", work {}", secs(num(d, "/result/work_secs"))))
        })?;
        // The issue's targets are for statuses; reading whole subjobs is shown beside.
        let t = match read {
            "statuses" => self.workload().targets.clone(),
            _ => Default::default(),
        };
        let work = med(&runs, |r| num_opt(&r.driver, "/result/work_secs"));
        let figures = vec![
            Figure::new("subjobs", subjobs as f64, Unit::Count, "subjobs"),
            Figure::new("work_secs", work, Unit::Secs, "of work"),
            Figure::new(
                "subjobs_read",
                subjobs as f64 / work,
                Unit::PerSec,
                "subjobs",
            ),
        ];
        let limits = Limits {
            wall_secs: t.touch_all_wall_s,
            peak_rss_mb: t.touch_all_peak_rss_mb,
        };
        Ok(self.result(label, &cmd, runs, limits, figures))
    }

    fn churn(&mut self) -> anyhow::Result<BenchResult> {
        let c = self.workload().churn.clone();
        let args = [
            "--changes".to_owned(),
            c.changes.to_string(),
            "--batch".to_owned(),
            c.batch.to_string(),
            "--jobs-per-batch".to_owned(),
            c.jobs_per_batch.to_string(),
            "--failed-percent".to_owned(),
            c.failed_percent.to_string(),
        ];
        let (cmd, runs) = self.driver_runs("churn", "churn", &args, |d| {
            let changes = num(d, "/result/changes") as u64;
            if changes != c.changes {
                bail!("churn made {changes} changes, not {}", c.changes);
            }
            Ok(format!(
                ", work {} (commit {})",
                secs(num(d, "/result/work_secs")),
                secs(num(d, "/result/commit_secs"))
            ))
        })?;
        let t = &self.workload().targets;
        let work = med(&runs, |r| num_opt(&r.driver, "/result/work_secs"));
        let figures = vec![
            Figure::new("changes", c.changes as f64, Unit::Count, "changes"),
            Figure::new("work_secs", work, Unit::Secs, "of work").at_most(t.churn_wall_s, secs),
            Figure::new(
                "commit_secs",
                med(&runs, |r| num_opt(&r.driver, "/result/commit_secs")),
                Unit::Secs,
                "in Cache::update_units",
            ),
            Figure::new(
                "read_secs",
                med(&runs, |r| num_opt(&r.driver, "/result/read_secs")),
                Unit::Secs,
                "reading",
            ),
            Figure::new(
                "changes_committed",
                c.changes as f64 / work,
                Unit::PerSec,
                "changes",
            ),
        ];
        Ok(self.result("churn", &cmd, runs, Limits::default(), figures))
    }

    /// `ganga migrate GANGADIR --workspace none`, each run into a fresh home of its own:
    /// the store's side of a migration (outputs copied or linked cost what the
    /// filesystem makes them cost).
    fn migrate(&mut self, g: &Gangadir) -> anyhow::Result<BenchResult> {
        let home = self.home.with_file_name("migrate-home");
        let mut cmd = self.command("ganga");
        cmd.env("GANGA_HOME", &home)
            .arg("migrate")
            .arg(&g.dir)
            .args(["--workspace", "none", "--json"]);
        let mut runs = Vec::new();
        for i in 0..self.runs {
            if home.exists() {
                std::fs::remove_dir_all(&home)
                    .with_context(|| format!("cannot clear {}", home.display()))?;
            }
            let m = self.measure("migrate", &mut cmd, true)?;
            let report: Value =
                serde_json::from_str(&m.output()?).context("the migration's report")?;
            let imported: u64 = report["registries"]
                .as_object()
                .map(|regs| {
                    regs.values()
                        .filter_map(|r| r["subjobs_imported"].as_u64())
                        .sum()
                })
                .unwrap_or(0);
            if imported != g.subjobs {
                bail!(
                    "`ganga migrate` imported {imported} subjobs; the fixture has {}",
                    g.subjobs
                );
            }
            let disk = disk_usage(&home.join("store"))?;
            self.progress(
                "migrate",
                i,
                self.runs,
                &m,
                &format!(
                    ", store {} B",
                    report::thousands(num(&disk, "/apparent_bytes") as u64)
                ),
            );
            runs.push(Run {
                process: m,
                driver: Some(report),
                disk: Some(disk),
            });
        }
        let wall = med(&runs, |r| r.process.wall_secs);
        let store = med(&runs, |r| num_opt(&r.disk, "/apparent_bytes"));
        let subjobs = g.subjobs as f64;
        let figures = vec![
            Figure::new("subjobs", subjobs, Unit::Count, "subjobs"),
            Figure::new("subjobs_migrated", subjobs / wall, Unit::PerSec, "subjobs"),
            Figure::new("store_bytes", store, Unit::Bytes, "in the store's files"),
            Figure::new(
                "gangadir_bytes",
                g.bytes as f64,
                Unit::Bytes,
                "in Ganga's gangadir",
            ),
            Figure::new(
                "repository_bytes",
                g.repository_bytes as f64,
                Unit::Bytes,
                "in its repository",
            ),
            Figure::new(
                "repository_to_store",
                g.repository_bytes as f64 / store,
                Unit::Ratio,
                "smaller than the repository",
            ),
        ];
        Ok(self.result("migrate", &cmd, runs, Limits::default(), figures))
    }
}

/// A Ganga fixture unpacked for `migrate`, once per harness run directory.
#[derive(Debug, Clone)]
struct Gangadir {
    dir: PathBuf,
    subjobs: u64,
    /// Apparent bytes of the whole gangadir (repository and workspace).
    bytes: u64,
    /// Of its `repository` directory: what Ganga reads, as the store is what we read.
    repository_bytes: u64,
}

impl Gangadir {
    fn unpack(fixture: &Path, dir: &Path, subjobs: u64) -> anyhow::Result<Gangadir> {
        let stem = fixture
            .file_name()
            .map_or_else(|| "fixture".into(), |n| n.to_string_lossy().into_owned());
        let stem = stem.trim_end_matches(".tar.gz");
        let into = dir.join(format!("unpacked-{stem}"));
        let done = into.join(".unpacked");
        if !done.exists() {
            if into.exists() {
                std::fs::remove_dir_all(&into)
                    .with_context(|| format!("cannot clear {}", into.display()))?;
            }
            std::fs::create_dir_all(&into)?;
            eprintln!("bench: unpacking {}", fixture.display());
            crate::run(
                Command::new("tar")
                    .arg("-xzf")
                    .arg(fixture)
                    .arg("-C")
                    .arg(&into),
            )
            .with_context(|| format!("cannot unpack the Ganga fixture {}", fixture.display()))?;
            std::fs::write(&done, b"")?;
        }
        let gangadir = into.join("gangadir");
        let size = |d: &Path| apparent_bytes(d);
        Ok(Gangadir {
            bytes: size(&gangadir)?,
            repository_bytes: size(&gangadir.join("repository"))?,
            dir: gangadir,
            subjobs,
        })
    }
}

fn mb_to_mib(mb: f64) -> f64 {
    mb * 1e6 / 1_048_576.0
}

fn mib_as_mb(mib: f64) -> String {
    format!("{:.0} MB", mib * 1_048_576.0 / 1e6)
}

/// A number in a JSON report, by pointer; NaN if absent.
fn num(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or(f64::NAN)
}

fn num_opt(v: &Option<Value>, pointer: &str) -> f64 {
    v.as_ref().map_or(f64::NAN, |v| num(v, pointer))
}

fn med(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    median(runs.iter().map(f).collect())
}

/// The bytes in the files of a directory tree, counted without holding a list of them
/// (a gangadir has 90,000 files, and the harness's own peak RSS is carried over into
/// every child it starts).
fn apparent_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    each_file(dir, |_, meta| total += meta.len())?;
    Ok(total)
}

/// Calls `f` with the path and metadata of every file below `dir`.
fn each_file(dir: &Path, mut f: impl FnMut(PathBuf, std::fs::Metadata)) -> anyhow::Result<()> {
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?
        {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                f(entry.path(), meta);
            }
        }
    }
    Ok(())
}

/// The files of a directory tree: apparent size (bytes in the files) and allocated size
/// (blocks the filesystem gave them), in total and per file.
fn disk_usage(dir: &Path) -> anyhow::Result<Value> {
    use std::os::unix::fs::MetadataExt as _;
    let mut files = Vec::new();
    each_file(dir, |path, meta| {
        let name = path
            .strip_prefix(dir)
            .map_or_else(|_| path.clone(), Path::to_owned);
        files.push((name.display().to_string(), meta.len(), meta.blocks() * 512));
    })?;
    files.sort();
    Ok(json!({
        "directory": dir,
        "apparent_bytes": files.iter().map(|f| f.1).sum::<u64>(),
        "allocated_bytes": files.iter().map(|f| f.2).sum::<u64>(),
        "files": files
            .iter()
            .map(|(name, apparent, allocated)| json!({"name": name, "apparent_bytes": apparent, "allocated_bytes": allocated}))
            .collect::<Vec<_>>(),
    }))
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
