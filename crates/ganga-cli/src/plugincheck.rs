//! `ganga plugins check FILE`: the backend conformance suite (`ganga-conformance`) run
//! against a built plugin library, for a plugin author's last look before installing it.
//!
//! Every step runs in a child process (this binary again, with hidden flags), each check
//! in a scratch home of its own: a plugin that crashes (a signal, an abort) or hangs fails
//! the check it was in, by name, instead of ending or hanging this command. The first
//! child loads the library and describes the backend; a library that cannot be loaded
//! (truncated, not a ganga plugin, built for another ABI) is refused by name, as
//! `--plugin FILE` would refuse it.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use ganga_conformance::{Check, ConformanceEnv, Outcome};
use ganga_core::{BackendDescription, JobRef};
use ganga_plugin_host::{Catalog, PluginInfo, PluginKind};
use ganga_protocol::PluginContext;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::args::{Global, PluginCheckArgs};
use crate::out::outln;
use ganga_session::Config;

/// The exit code when a check failed.
const CHECKS_FAILED: u8 = 2;
/// How long loading and describing the plugin may take.
const PROBE_LIMIT: Duration = Duration::from_secs(60);
/// How much longer than the suite's own limit a check's process may take before it is
/// stopped (a call that blocks its thread is beyond the suite's timer).
const CHILD_GRACE: Duration = Duration::from_secs(30);

pub(crate) async fn run(global: &Global, args: PluginCheckArgs) -> anyhow::Result<ExitCode> {
    let timeout = job_timeout(args.timeout)?;
    match (&args.scratch, args.probe, &args.checker) {
        (Some(scratch), true, _) => probe(global, &args.file, scratch).await,
        (Some(scratch), false, Some(name)) => {
            let check = parse_check(name)?;
            one_check(global, &args.file, scratch, check, timeout).await
        }
        _ => check_library(global, args, timeout).await,
    }
}

fn job_timeout(secs: f64) -> anyhow::Result<Duration> {
    if !(secs.is_finite() && secs > 0.0) {
        bail!("--timeout {secs}: expected a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_check(name: &str) -> anyhow::Result<Check> {
    Check::from_name(name).with_context(|| {
        let names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
        format!(
            "no check is called `{name}`; the checks: {}",
            names.join(", ")
        )
    })
}

/// What the first child says of the library.
#[derive(Debug, Serialize, Deserialize)]
struct Probed {
    name: String,
    version: String,
    abi: u32,
    protocol: String,
    rustc: String,
    description: BackendDescription,
}

/// What a check's child says of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Verdict {
    Passed,
    NotApplicable {
        why: String,
    },
    Skipped,
    Failed {
        job: Option<JobRef>,
        expected: String,
        got: String,
    },
}

// --- in the children ---

/// Loads the library, refusing anything that is not a backend plugin, and makes the
/// backend with the config's table for it.
fn load(
    global: &Global,
    file: &Path,
    home: &Path,
) -> anyhow::Result<(PluginInfo, std::sync::Arc<dyn ganga_core::Backend>)> {
    let mut catalog = Catalog::new();
    let info = catalog
        .load_file(file)
        .map_err(|refusal| anyhow::anyhow!("{refusal}"))?;
    if info.kind != PluginKind::Backend {
        bail!(
            "{} holds the {} plugin `{}`: `ganga plugins check` checks backend plugins",
            file.display(),
            info.kind,
            info.name
        );
    }
    // Only a config file named on purpose: a scratch home has none of its own.
    let config = match &global.config {
        Some(path) => Config::load(Some(path), home)?.0.plugin_options(&info.name),
        None => Default::default(),
    };
    std::fs::create_dir_all(home)
        .with_context(|| format!("cannot create the scratch home {}", home.display()))?;
    let context = PluginContext {
        home: home.to_owned(),
        config,
        home_id: "plugin-check".into(),
    };
    let backend = catalog.backend(&info.name, &context)?;
    Ok((info, backend))
}

async fn probe(global: &Global, file: &Path, scratch: &Path) -> anyhow::Result<ExitCode> {
    let (info, backend) = load(global, file, scratch)?;
    let description = backend
        .describe()
        .await
        .with_context(|| format!("backend plugin `{}` cannot describe itself", info.name))?;
    print_line(&Probed {
        name: info.name,
        version: info.version,
        abi: info.abi,
        protocol: info.protocol,
        rustc: info.rustc,
        description,
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn one_check(
    global: &Global,
    file: &Path,
    scratch: &Path,
    check: Check,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let (_, backend) = load(global, file, scratch)?;
    let env = ConformanceEnv::in_dir(scratch).with_timeout(timeout);
    let verdict = match ganga_conformance::run_check(check, &*backend, &env).await {
        Ok(Outcome::Passed) => Verdict::Passed,
        Ok(Outcome::NotApplicable(why)) => Verdict::NotApplicable { why: why.into() },
        Err(failure) => Verdict::Failed {
            job: failure.job,
            expected: failure.expected,
            got: failure.got,
        },
    };
    print_line(&verdict)?;
    Ok(ExitCode::SUCCESS)
}

fn print_line<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

// --- in the parent ---

async fn check_library(
    global: &Global,
    args: PluginCheckArgs,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let file = std::path::absolute(&args.file).unwrap_or_else(|_| args.file.clone());
    std::fs::metadata(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let (run, skipped) = selected(&args.only, &args.skip)?;
    let scratch = tempfile::Builder::new()
        .prefix("ganga-plugin-check-")
        .tempdir()
        .context("cannot make a scratch home")?;
    let child = Child {
        global,
        file: &file,
        timeout,
    };
    let probed: Probed = child
        .run(
            &["--probe".as_ref()],
            &scratch.path().join("probe"),
            PROBE_LIMIT,
        )
        .await
        .map_err(|why| anyhow::anyhow!("{why}"))?;
    let kept = args.keep.then(|| scratch.path().to_owned());
    if !args.json {
        print_header(&probed, &file, kept.as_deref())?;
    }
    let limit = ConformanceEnv::in_dir(scratch.path())
        .with_timeout(timeout)
        .check_timeout()
        + CHILD_GRACE;
    let mut verdicts = Vec::new();
    for check in Check::ALL {
        let verdict = if skipped.contains(&check) || !run.contains(&check) {
            Verdict::Skipped
        } else {
            let name = OsString::from(check.name());
            let dir = scratch.path().join(check.name());
            child
                .run(&["--checker".as_ref(), name.as_os_str()], &dir, limit)
                .await
                .unwrap_or_else(|why| Verdict::Failed {
                    job: None,
                    expected: "the check's process to report".into(),
                    got: why,
                })
        };
        // Checks left out by --only are not worth a line each; those named by --skip are.
        if !args.json && (run.contains(&check) || skipped.contains(&check)) {
            print_verdict(check, &verdict)?;
        }
        verdicts.push((check, verdict));
    }
    let failed = count(&verdicts, |v| matches!(v, Verdict::Failed { .. }));
    if args.json {
        print_json(&probed, &file, kept.as_deref(), &verdicts)?;
    } else {
        print_summary(&probed.name, &verdicts)?;
    }
    if args.keep {
        // Left in place for the author to look at.
        let _ = scratch.keep();
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHECKS_FAILED)
    })
}

/// The checks to run and those left out on purpose.
fn selected(only: &[String], skip: &[String]) -> anyhow::Result<(Vec<Check>, Vec<Check>)> {
    let parse = |names: &[String]| {
        names
            .iter()
            .map(|n| parse_check(n))
            .collect::<anyhow::Result<Vec<Check>>>()
    };
    let only = parse(only)?;
    let skip = parse(skip)?;
    let run: Vec<Check> = Check::ALL
        .into_iter()
        .filter(|c| (only.is_empty() || only.contains(c)) && !skip.contains(c))
        .collect();
    if run.is_empty() {
        bail!("--only and --skip leave no check to run");
    }
    Ok((run, skip))
}

/// How the parent starts its children: this binary, with the same config.
struct Child<'a> {
    global: &'a Global,
    file: &'a Path,
    timeout: Duration,
}

impl Child<'_> {
    /// Runs `ganga plugins check FILE --scratch DIR ARGS...` and reads the one JSON line
    /// it prints; `Err` says, in a sentence, what became of it instead.
    async fn run<T: serde::de::DeserializeOwned>(
        &self,
        args: &[&std::ffi::OsStr],
        scratch: &Path,
        limit: Duration,
    ) -> Result<T, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this program to run the check: {e}"))?;
        let mut cmd = tokio::process::Command::new(&exe);
        if let Some(config) = &self.global.config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(["plugins", "check"])
            .arg(self.file)
            .arg("--timeout")
            .arg(self.timeout.as_secs_f64().to_string())
            .arg("--scratch")
            .arg(scratch)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(limit, cmd.output()).await {
            Err(_) => {
                return Err(format!(
                    "it was stopped after {limit:?}: a call into the plugin hangs"
                ));
            }
            Ok(Err(e)) => return Err(format!("cannot start {}: {e}", exe.display())),
            Ok(Ok(out)) => out,
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(signal) = out.status.signal() {
            return Err(format!(
                "the process running it was killed by signal {signal}{}: the plugin crashed{}",
                crate::maintenance::signal_name(signal)
                    .map_or_else(String::new, |n| format!(" ({n})")),
                last_words(&stderr)
            ));
        }
        if !out.status.success() {
            let said = stderr.trim().trim_start_matches("error: ");
            return Err(if said.is_empty() {
                format!("its process ended with {}", out.status)
            } else {
                said.to_owned()
            });
        }
        stdout
            .lines()
            .last()
            .and_then(|line| serde_json::from_str(line).ok())
            .ok_or_else(|| format!("its process printed no result{}", last_words(&stderr)))
    }
}

/// The end of what a crashed child said, for the report.
fn last_words(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.trim().lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(5)..];
    format!("; its last words:\n{}", tail.join("\n"))
}

fn count(verdicts: &[(Check, Verdict)], which: impl Fn(&Verdict) -> bool) -> usize {
    verdicts.iter().filter(|(_, v)| which(v)).count()
}

fn print_header(probed: &Probed, file: &Path, kept: Option<&Path>) -> anyhow::Result<()> {
    outln!(
        "checking backend plugin `{}` {} ({}; plugin ABI {}, protocol {}, built by {})",
        probed.name,
        probed.version,
        file.display(),
        probed.abi,
        probed.protocol,
        probed.rustc
    )?;
    match kept {
        Some(dir) => outln!("scratch home (kept): {}", dir.display())?,
        None => {
            outln!("each check in a scratch home of its own, removed afterwards (--keep keeps it)")?
        }
    }
    Ok(())
}

fn print_verdict(check: Check, verdict: &Verdict) -> anyhow::Result<()> {
    let printed = match verdict {
        Verdict::Passed => outln!("ok    {:<20} {}", check.name(), check.rule()),
        Verdict::NotApplicable { why } => outln!("n/a   {:<20} {why}", check.name()),
        Verdict::Skipped => outln!("skip  {:<20} (left out with --skip)", check.name()),
        Verdict::Failed { job, expected, got } => {
            let job = job.map_or_else(String::new, |j| format!("\n      job {j}"));
            outln!(
                "FAIL  {:<20} {}{job}\n      expected: {}\n      got:      {}",
                check.name(),
                check.rule(),
                expected.replace('\n', "\n                "),
                got.replace('\n', "\n                ")
            )
        }
    };
    Ok(printed?)
}

fn print_summary(name: &str, verdicts: &[(Check, Verdict)]) -> anyhow::Result<()> {
    let passed = count(verdicts, |v| matches!(v, Verdict::Passed));
    let failed = count(verdicts, |v| matches!(v, Verdict::Failed { .. }));
    let na = count(verdicts, |v| matches!(v, Verdict::NotApplicable { .. }));
    let skipped = count(verdicts, |v| matches!(v, Verdict::Skipped));
    let end = if failed == 0 {
        format!("backend plugin `{name}` passes")
    } else {
        let names: Vec<&str> = verdicts
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Failed { .. }))
            .map(|(c, _)| c.name())
            .collect();
        format!(
            "backend plugin `{name}` fails {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    outln!("{passed} passed, {failed} failed, {na} not applicable, {skipped} not run: {end}")?;
    Ok(())
}

fn print_json(
    probed: &Probed,
    file: &Path,
    kept: Option<&Path>,
    verdicts: &[(Check, Verdict)],
) -> anyhow::Result<()> {
    let checks: Vec<serde_json::Value> = verdicts
        .iter()
        .map(|(check, verdict)| {
            let mut entry = serde_json::to_value(verdict).unwrap_or_else(|_| json!({}));
            if let Some(map) = entry.as_object_mut() {
                map.insert("check".into(), check.name().into());
                map.insert("rule".into(), check.rule().into());
            }
            entry
        })
        .collect();
    let out = json!({
        "file": file,
        "plugin": probed,
        "ganga": crate::versions::json(),
        "scratch": kept,
        "checks": checks,
        "passed": count(verdicts, |v| matches!(v, Verdict::Passed)),
        "failed": count(verdicts, |v| matches!(v, Verdict::Failed { .. })),
    });
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut stdout, &out)?;
    writeln!(stdout)?;
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_chosen_by_name() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let (run, skipped) = selected(&[], &names(&["kill_running", "runs"])).expect("valid");
        assert_eq!(run.len(), Check::ALL.len() - 2);
        assert_eq!(skipped, [Check::KillRunning, Check::Runs]);
        let (run, _) = selected(&names(&["describe"]), &[]).expect("valid");
        assert_eq!(run, [Check::Describe]);
        let e = selected(&names(&["kill_runing"]), &[]).expect_err("a typo");
        assert!(
            e.to_string()
                .contains("no check is called `kill_runing`; the checks: describe, "),
            "{e}"
        );
        assert!(selected(&names(&["runs"]), &names(&["runs"])).is_err());
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(job_timeout(1.5).ok(), Some(Duration::from_millis(1500)));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(job_timeout(bad).is_err(), "{bad}");
        }
    }
}
