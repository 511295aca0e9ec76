//! What `cargo xtask bench monitor|batch|dirac` share: their options, one release build
//! installed apart, measured child processes with isolated settings, a sampler of the
//! processes a home runs, and the report (a table of figures beside their targets, and
//! every run as JSON).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::child::{self, Logs};
use super::install::{copy_into, fresh_dir, library, results_dir};
use super::machine;
use super::report::{self, BenchResult};

/// What these benchmarks build: the binaries, the store and the backends they use.
const PACKAGES: [&str; 6] = [
    "ganga-cli",
    "ganga-bench",
    "ganga-store-lmdb",
    "ganga-backend-local",
    "ganga-backend-batch",
    "ganga-backend-dirac",
];

/// Options every one of these benchmarks takes.
pub(crate) struct Common {
    pub(crate) runs: u32,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) build: bool,
    pub(crate) json: Option<PathBuf>,
}

impl Common {
    /// Takes the common options out of `args`, leaving the benchmark's own.
    pub(crate) fn take(
        args: &[String],
        default_runs: u32,
    ) -> anyhow::Result<(Common, Vec<String>)> {
        let mut c = Common {
            runs: default_runs,
            dir: None,
            build: true,
            json: None,
        };
        let mut rest = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |flag: &str| {
                it.next()
                    .cloned()
                    .with_context(|| format!("{flag} needs a value"))
            };
            match arg.as_str() {
                "--runs" => {
                    let v = value(arg)?;
                    c.runs = v.parse().with_context(|| format!("--runs {v}"))?;
                    if c.runs == 0 {
                        bail!("--runs must be at least 1");
                    }
                }
                "--dir" => c.dir = Some(PathBuf::from(value(arg)?)),
                "--json" => c.json = Some(PathBuf::from(value(arg)?)),
                "--no-build" => c.build = false,
                _ => rest.push(arg.clone()),
            }
        }
        Ok((c, rest))
    }
}

/// A value of a benchmark's own option.
pub(crate) fn parse_value<T: std::str::FromStr>(flag: &str, v: Option<&String>) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    let v = v.with_context(|| format!("{flag} needs a value"))?;
    v.parse().map_err(|e| anyhow::anyhow!("{flag} {v}: {e}"))
}

/// One benchmark's install, logs and measured processes.
pub(crate) struct Harness {
    pub(crate) root: PathBuf,
    /// `target/bench/NAME`.
    pub(crate) dir: PathBuf,
    pub(crate) bin: PathBuf,
    /// Where each measured process leaves its output.
    pub(crate) logs: Logs,
    xdg: PathBuf,
    name: String,
    started: String,
}

impl Harness {
    /// Builds (unless told not to) the binaries and plugins, release profile, and copies
    /// the binaries, the store and the backend libraries named (`(crate, library)`) into
    /// `DIR/bin`: plugins loaded as libraries, as users run them.
    pub(crate) fn new(
        root: &Path,
        name: &str,
        common: &Common,
        plugins: &[(&str, &str)],
    ) -> anyhow::Result<Harness> {
        let target = crate::target_dir(root);
        let dir = results_dir(&target, common.dir.as_deref(), name)?;
        if common.build {
            // The same packages for every one of these benchmarks, whichever plugins it
            // installs: cargo unifies features over the packages built together, and
            // another set would rebuild the binaries each time.
            let mut cmd = crate::cargo();
            cmd.current_dir(root).args(["build", "--release"]);
            for package in PACKAGES {
                cmd.args(["-p", package]);
            }
            crate::run(&mut cmd)?;
        }
        let bin = dir.join("bin");
        let mut files = vec![
            "ganga".to_owned(),
            "ganga-bench".to_owned(),
            library("ganga_store_lmdb"),
        ];
        files.extend(plugins.iter().map(|(_, l)| library(l)));
        copy_into(&bin, &target.join("release"), &files)?;
        let logs = dir.join("logs");
        let xdg = dir.join("xdg-config");
        fresh_dir(&logs)?;
        fresh_dir(&xdg)?;
        Ok(Harness {
            root: root.to_owned(),
            dir,
            bin,
            logs: Logs::new(logs),
            xdg,
            name: name.to_owned(),
            started: machine::utc_now(),
        })
    }

    /// A fresh, empty home `DIR/NAME`.
    pub(crate) fn fresh_home(&self, name: &str) -> anyhow::Result<PathBuf> {
        let home = self.dir.join(name);
        fresh_dir(&home)?;
        Ok(home)
    }

    /// `program` of the install for `home`: no user config, plugin path or log level
    /// leaks in; `--home` is on the command line, so the home's processes can be told
    /// by it.
    pub(crate) fn command(&self, program: &str, home: &Path) -> Command {
        let mut cmd = child::isolated(&self.bin.join(program), &self.xdg);
        cmd.current_dir(home);
        if program == "ganga" {
            cmd.arg("--home").arg(home);
        } else {
            cmd.env("GANGA_HOME", home);
        }
        cmd
    }

    /// Runs a process once and returns its stdout parsed as JSON.
    pub(crate) fn json_of(&mut self, label: &str, cmd: &mut Command) -> anyhow::Result<Value> {
        let m = self.logs.measure(label, cmd, true)?;
        serde_json::from_str(&m.output()?).with_context(|| format!("{label}: stdout is not JSON"))
    }

    /// Runs `ganga ARGS` for `home` once, unmeasured, and parses its stdout as JSON.
    pub(crate) fn ganga_json(
        &self,
        home: &Path,
        config: Option<&Path>,
        args: &[&str],
    ) -> anyhow::Result<Value> {
        let mut cmd = self.command("ganga", home);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(args);
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", crate::shown(&cmd)))?;
        if !out.status.success() {
            bail!(
                "{} failed: {}",
                crate::shown(&cmd),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("{}: stdout is not JSON", crate::shown(&cmd)))
    }

    /// Waits until the home's monitor answers, and returns its pid.
    pub(crate) fn running_monitor(&self, home: &Path, config: &Path) -> anyhow::Result<u32> {
        let mut pid = None;
        let mut last = Value::Null;
        wait_until(Duration::from_secs(20), || {
            match self.ganga_json(home, Some(config), &["monitor", "status", "--json"]) {
                Ok(v) => {
                    pid = v["monitor"]["pid"]
                        .as_u64()
                        .and_then(|p| u32::try_from(p).ok());
                    last = v;
                }
                Err(e) => last = Value::String(format!("{e:#}")),
            }
            pid.is_some()
        });
        pid.with_context(|| {
            format!(
                "no monitor answers for {} 20 s after the submission (`ganga submit` starts one in the background): {last}",
                home.display()
            )
        })
    }

    /// Prints the table and writes every run's figures, with the machine, as JSON.
    pub(crate) fn finish(
        &self,
        args: &[String],
        json_path: Option<&Path>,
        results: &[BenchResult],
        extra: Value,
    ) -> anyhow::Result<()> {
        let json_path = json_path.map_or_else(|| self.dir.join("results.json"), Path::to_owned);
        let report = json!({
            "harness": format!("cargo xtask bench {}", self.name),
            "arguments": args,
            "started_utc": self.started,
            "finished_utc": machine::utc_now(),
            "load_average_at_end": machine::load_average(),
            "machine": machine::describe(&self.root, &self.dir),
            "extra": extra,
            "results": results,
        });
        let heading = format!(
            "{}: {}; load average now {}",
            self.name,
            self.started,
            machine::load_average().unwrap_or_default()
        );
        report::publish(&json_path, &report, &heading, results)
    }
}

/// Counts, every few milliseconds, the processes that belong to one home: those whose
/// command line names it (ganga with `--home`, the Local backend's runners and wrappers)
/// or whose working directory is inside it (the jobs' programs). Keeps the most seen
/// since it was last asked.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    pub(crate) fn start(home: &Path) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicUsize::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let home = home.to_owned();
        let thread = std::thread::spawn(move || {
            let needle = home.to_string_lossy().into_owned().into_bytes();
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(home_processes(&home, &needle), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Sampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// The most processes seen at once since the last call.
    pub(crate) fn take_peak(&self) -> usize {
        self.peak.swap(0, Ordering::Relaxed)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// How many processes belong to the home now.
fn home_processes(home: &Path, needle: &[u8]) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let named = contains(&cmdline, needle);
        let inside = !named
            && std::fs::read_link(format!("/proc/{pid}/cwd"))
                .is_ok_and(|cwd| cwd.starts_with(home));
        if named || inside {
            n += 1;
        }
    }
    n
}

/// CPU time (user + system) a live process has used so far, from `/proc/PID/stat`.
pub(crate) fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_sec > 0).then(|| ticks / per_sec as f64)
}

/// Waits (polling) until `f` holds or `timeout` passes; whether it held.
pub(crate) fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes `home/true.toml`: a job named `name` of `n` subjobs that run `/bin/true`, on
/// the backend `backend` describes (the lines of its `[backend]` table).
pub(crate) fn write_true_job(
    home: &Path,
    name: &str,
    backend: &str,
    n: u64,
) -> anyhow::Result<PathBuf> {
    let job_file = home.join("true.toml");
    let args: Vec<String> = (0..n).map(|i| format!("[\"{i}\"]")).collect();
    std::fs::write(
        &job_file,
        format!(
            "name = \"{name}\"\n[application]\nexe = \"/bin/true\"\n[backend]\n{backend}\
             [splitter]\ntype = \"args\"\nargs = [{}]\n",
            args.join(", ")
        ),
    )?;
    Ok(job_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_file_holds_one_true_subjob_per_argument_on_the_backend_given() {
        let home = tempfile::tempdir().expect("a temporary directory");
        let file = write_true_job(
            home.path(),
            "bench-slurm-2",
            "type = \"batch\"\nsystem = \"slurm\"\n",
            2,
        )
        .expect("written");
        assert_eq!(file, home.path().join("true.toml"));
        let text = std::fs::read_to_string(&file).expect("readable");
        assert_eq!(
            text,
            "name = \"bench-slurm-2\"\n[application]\nexe = \"/bin/true\"\n[backend]\n\
             type = \"batch\"\nsystem = \"slurm\"\n[splitter]\ntype = \"args\"\n\
             args = [[\"0\"], [\"1\"]]\n"
        );
    }
}
