//! The operating system's side: starting a run's wrapper detached, telling whether its
//! process group still runs (a pid is reused once its process is gone), and signalling
//! the group. All `unsafe` of the crate is here.

use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;
use std::{fs, io};

use ganga_core::SubmitSpec;
use rustix::process::Pid;
pub(crate) use rustix::process::Signal;

const WRAPPER: &str = include_str!("wrapper.sh");

/// Starts `wrapper.sh` for one run, in the working directory `work`, as the leader of a
/// session of its own: away from the terminal's signals, and with its pid naming the
/// process group of everything the job starts.
pub(crate) fn spawn_wrapper(
    control: &Path,
    work: &Path,
    spec: &SubmitSpec,
    nice: i64,
) -> io::Result<Proc> {
    let mut command = tokio::process::Command::new("/bin/sh");
    command.args(["-c", WRAPPER, "wrapper.sh"]).arg(control);
    command
        .args([spec.run.to_string(), nice.to_string(), spec.exe.clone()])
        .args(&spec.args);
    // Nothing of ganga's: a detached job holding ganga's stdout open would keep a pipe
    // (`ganga submit | tail`) from ending.
    command
        .envs(&spec.env)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: runs in the forked child before exec; setsid(2) is async-signal-safe and
    // nothing here allocates.
    unsafe { command.pre_exec(|| rustix::process::setsid().map(|_| ()).map_err(Into::into)) };
    // Dropped unwaited, the child is reaped by tokio in the background once it ends.
    let child = command.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("the wrapper was reaped at once"))?;
    // Not yet reaped, the process is in /proc even if it has ended already.
    let (_, ticks) = stat(pid)?;
    Ok(Proc {
        host: hostname()?,
        pid,
        ticks,
    })
}

fn hostname() -> io::Result<String> {
    static HOST: OnceLock<String> = OnceLock::new();
    if let Some(host) = HOST.get() {
        return Ok(host.clone());
    }
    let host = fs::read_to_string("/proc/sys/kernel/hostname")?
        .trim()
        .to_owned();
    Ok(HOST.get_or_init(|| host).clone())
}

/// A run's wrapper: the host it runs on (a pid means nothing on another), its pid, which
/// also names its process group, and its start time in clock ticks since boot, which
/// tells it from a later process given the same pid. Shown as `HOST:PID:TICKS`.
#[derive(Clone)]
pub(crate) struct Proc {
    host: String,
    pid: u32,
    ticks: u64,
}

impl std::fmt::Display for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.host, self.pid, self.ticks)
    }
}

impl Proc {
    pub(crate) fn parse(id: &str) -> Option<Proc> {
        let mut parts = id.rsplitn(3, ':');
        let (ticks, pid, host) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Proc {
            host: host.to_owned(),
            pid: pid.parse().ok()?,
            ticks: ticks.parse().ok()?,
        })
    }

    /// Whether anything of the run's process group still runs. While a group has a
    /// process, no new process is given its number; once the wrapper is gone, a process
    /// with its pid and another start time is someone else's.
    /// A run on another host (a home shared between machines) cannot be told from here:
    /// that is an error, never "gone".
    pub(crate) fn alive(&self) -> io::Result<bool> {
        let here = hostname()?;
        if self.host != here {
            return Err(io::Error::other(format!(
                "it runs on {}, not on this host ({here}): ask from there",
                self.host
            )));
        }
        match stat(self.pid) {
            Ok((state, ticks)) => Ok(ticks == self.ticks && state != 'Z'),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(self
                .group()
                .is_some_and(|g| rustix::process::test_kill_process_group(g).is_ok())),
            Err(e) => Err(e),
        }
    }

    /// SIGTERMs the group if it still runs, and notes it in `signalled`.
    pub(crate) fn terminate(&self, signalled: &mut Vec<Proc>) -> io::Result<()> {
        if self.alive()? {
            self.signal(Signal::TERM)?;
            signalled.push(self.clone());
        }
        Ok(())
    }

    pub(crate) fn signal(&self, signal: Signal) -> io::Result<()> {
        let group = self.group().ok_or_else(|| {
            io::Error::other(format!("{} is no process group of a run", self.pid))
        })?;
        Ok(rustix::process::kill_process_group(group, signal)?)
    }

    /// Never 0 or 1: kill(-1) would signal every process the user may signal.
    fn group(&self) -> Option<Pid> {
        i32::try_from(self.pid)
            .ok()
            .filter(|&p| p > 1)
            .and_then(Pid::from_raw)
    }
}

/// A process's state and start time: fields 3 and 22 of /proc/PID/stat, counted after the
/// command name, which may hold spaces and `)`.
fn stat(pid: u32) -> io::Result<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let state = fields.first().and_then(|s| s.chars().next());
    match (state, fields.get(19).and_then(|t| t.parse().ok())) {
        (Some(state), Some(ticks)) => Ok((state, ticks)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat: not understood"),
        )),
    }
}
