//! Running one measured child process: wall time from the parent's clock, CPU time and
//! peak RSS from the kernel (`wait4`), never from the child's own estimates.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Serialize;

/// One run of one process.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Measured {
    /// From just before spawning to the return of `wait4`.
    pub(crate) wall_secs: f64,
    pub(crate) user_secs: f64,
    pub(crate) sys_secs: f64,
    /// `ru_maxrss` of the child: its peak resident set, in KiB (Linux's unit).
    pub(crate) peak_rss_kib: u64,
    /// Page faults that needed I/O; 0 when the page cache is warm.
    pub(crate) major_faults: u64,
    /// This harness's own peak RSS when it started the child, in KiB. Linux carries the
    /// parent's peak over into a child's `ru_maxrss` when it spawns it (the exec takes
    /// the high-water mark of the address space it replaces), so a child's figure at or
    /// below this one is the parent's, not the child's. The harness keeps its own small.
    pub(crate) parent_peak_rss_kib: u64,
    /// Where its stdout went (`None`: discarded).
    #[serde(skip)]
    pub(crate) stdout: Option<PathBuf>,
}

impl Measured {
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }

    /// The child's stdout.
    pub(crate) fn output(&self) -> anyhow::Result<String> {
        let path = self
            .stdout
            .as_ref()
            .context("the child's stdout was discarded")?;
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }

    /// How many elements the JSON array on the child's stdout has, read as a stream so
    /// that this process stays small (see `parent_peak_rss_kib`).
    pub(crate) fn json_array_len(&self) -> anyhow::Result<usize> {
        let path = self
            .stdout
            .as_ref()
            .context("the child's stdout was discarded")?;
        let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let items: Vec<serde::de::IgnoredAny> =
            serde_json::from_reader(std::io::BufReader::new(file))
                .with_context(|| format!("{} is not a JSON array", path.display()))?;
        Ok(items.len())
    }
}

/// Runs `cmd` to its end with stdin empty, stdout into `stdout` (or discarded) and stderr
/// into `stderr`: files, so that the parent does nothing while the child runs. Fails if
/// the child does, with the end of its stderr.
pub(crate) fn measure(
    cmd: &mut Command,
    stdout: Option<&Path>,
    stderr: &Path,
) -> anyhow::Result<Measured> {
    let shown = crate::shown(cmd);
    cmd.stdin(Stdio::null());
    cmd.stdout(match stdout {
        Some(p) => {
            Stdio::from(File::create(p).with_context(|| format!("cannot create {}", p.display()))?)
        }
        None => Stdio::null(),
    });
    cmd.stderr(Stdio::from(
        File::create(stderr).with_context(|| format!("cannot create {}", stderr.display()))?,
    ));
    let parent_peak_rss_kib = own_peak_rss_kib();
    let start = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {shown}"))?;
    let pid = libc::pid_t::try_from(child.id()).context("a pid that fits pid_t")?;
    let (status, usage) = wait4(pid).with_context(|| format!("waiting for {shown}"))?;
    let wall_secs = start.elapsed().as_secs_f64();
    // Reaped by wait4 above: dropping `child` neither waits nor kills.
    drop(child);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let err = std::fs::read_to_string(stderr).unwrap_or_default();
        let tail: String = err
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        bail!("{shown} failed (wait status {status:#x}):\n{tail}");
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Measured {
        wall_secs,
        user_secs: secs(usage.ru_utime),
        sys_secs: secs(usage.ru_stime),
        peak_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        major_faults: u64::try_from(usage.ru_majflt).unwrap_or(0),
        parent_peak_rss_kib,
        stdout: stdout.map(Path::to_owned),
    })
}

/// A command for one of the installed programs into which no user config, plugin path,
/// home or log level leaks: the caller says which home it is for.
pub(crate) fn isolated(program: &Path, xdg_config: &Path) -> Command {
    let mut cmd = Command::new(program);
    for var in [
        "GANGA_HOME",
        "GANGA_CONFIG",
        "GANGA_PLUGIN_PATH",
        "GANGA_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", xdg_config);
    cmd
}

/// The logs directory of a benchmark: each measured process's stderr (and stdout, when
/// kept), named by the order the processes ran in.
pub(crate) struct Logs {
    dir: PathBuf,
    /// How many processes ran so far.
    count: usize,
}

impl Logs {
    pub(crate) fn new(dir: PathBuf) -> Logs {
        Logs { dir, count: 0 }
    }

    /// Runs a process to its end, measured; its stdout kept in the logs if `keep`.
    pub(crate) fn measure(
        &mut self,
        label: &str,
        cmd: &mut Command,
        keep: bool,
    ) -> anyhow::Result<Measured> {
        self.count += 1;
        let stem = format!("{:03}-{}", self.count, label.replace([' ', '/'], "_"));
        let stdout = keep.then(|| self.dir.join(format!("{stem}.stdout")));
        measure(
            cmd,
            stdout.as_deref(),
            &self.dir.join(format!("{stem}.stderr")),
        )
    }
}

/// `VmHWM` of this process, in KiB (0 if unknown).
fn own_peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn wait4(pid: libc::pid_t) -> std::io::Result<(libc::c_int, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet reaped; both pointers are valid for the
        // call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
