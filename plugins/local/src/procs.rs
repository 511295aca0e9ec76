//! What the operating system says about a job's processes, and the few system calls the
//! backend makes. All `unsafe` of the crate is here.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::OnceLock;

/// Whether a job's process group still has a process that is not a zombie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    Gone,
}

/// How to tell the job's wrapper from another process that got its pid later.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity<'a> {
    /// The wrapper's start time, as it recorded it.
    pub(crate) start_ticks: Option<u64>,
    /// Used when no start time was recorded: the wrapper's command line names this
    /// control directory.
    pub(crate) control: &'a Path,
}

/// The process groups that have at least one live (non-zombie) process, read from `/proc`
/// at most once per batch and only when a batch needs it.
#[derive(Debug, Default)]
pub(crate) struct GroupScan {
    live: Option<HashSet<i32>>,
}

impl GroupScan {
    fn has_live_member(&mut self, pgid: i32) -> io::Result<bool> {
        if self.live.is_none() {
            self.live = Some(scan_live_groups()?);
        }
        Ok(self.live.as_ref().is_some_and(|s| s.contains(&pgid)))
    }
}

/// Whether the job whose wrapper led process group `pgid` still runs.
///
/// With `/proc` (Linux): if a process with pid `pgid` exists and is not the wrapper (other
/// start time), the pid was reused, which the kernel allows only once the old group is
/// empty: gone. If it is the wrapper and not a zombie: alive. Otherwise the wrapper ended
/// (or was reaped) and the group lives on only if some member is not a zombie; zombies
/// count as gone because where init does not reap (some containers) they stay forever.
/// Without `/proc`, only `kill(-pgid, 0)` is asked, which cannot tell pid reuse or zombies.
pub(crate) fn liveness(
    pgid: i32,
    identity: Identity<'_>,
    scan: &mut GroupScan,
) -> io::Result<Liveness> {
    if !has_proc() {
        return Ok(if group_exists(pgid)? {
            Liveness::Alive
        } else {
            Liveness::Gone
        });
    }
    match read_stat(pgid) {
        Ok(stat) => {
            let ours = match identity.start_ticks {
                Some(t) => stat.start_ticks == t,
                None => cmdline_names(pgid, identity.control),
            };
            if !ours {
                Ok(Liveness::Gone)
            } else if !stat.is_zombie() {
                Ok(Liveness::Alive)
            } else {
                live_members(pgid, scan)
            }
        }
        Err(e) if is_gone(&e) => {
            if group_exists(pgid)? {
                live_members(pgid, scan)
            } else {
                Ok(Liveness::Gone)
            }
        }
        Err(e) => Err(e),
    }
}

fn live_members(pgid: i32, scan: &mut GroupScan) -> io::Result<Liveness> {
    Ok(if scan.has_live_member(pgid)? {
        Liveness::Alive
    } else {
        Liveness::Gone
    })
}

/// Sends `signal` to every process of group `pgid`. `Ok(false)`: the group is gone.
pub(crate) fn signal_group(pgid: i32, signal: i32) -> io::Result<bool> {
    check_pgid(pgid)?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. `pgid > 1` is
    // checked above, so this never means "every process" (-1) or "our own group" (0).
    let r = unsafe { libc::kill(-pgid, signal) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Whether any process (zombies included) is in group `pgid`.
fn group_exists(pgid: i32) -> io::Result<bool> {
    match signal_group(pgid, 0) {
        Ok(exists) => Ok(exists),
        // Someone else's processes: the group exists, but it is not one of ours.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(true),
        Err(e) => Err(e),
    }
}

fn check_pgid(pgid: i32) -> io::Result<()> {
    if pgid > 1 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{pgid} is not a process group this backend could have started"),
        ))
    }
}

/// Whether process `pid` runs (and is not a zombie), and is the one that started at
/// `ticks` when that is known.
pub(crate) fn is_alive(pid: i32, ticks: Option<u64>) -> bool {
    if pid <= 1 {
        return false;
    }
    if !has_proc() {
        return group_exists(pid).unwrap_or(true);
    }
    match read_stat(pid) {
        Ok(stat) => !stat.is_zombie() && ticks.is_none_or(|t| t == stat.start_ticks),
        Err(_) => false,
    }
}

/// Starts `/bin/sh SCRIPT ARGS...` as a daemon: the leader of a new session, re-parented
/// to init at once (an intermediate process forks it and exits, and is reaped here before
/// this returns, so a long-running `ganga` keeps no child and no descriptor for it). Its
/// stdin is `stdin` (the runner takes the slot's lock from there), its stdout and stderr
/// go to `log`, its umask is this process's and its environment is `PATH` only.
pub(crate) fn spawn_daemon(
    script: &Path,
    args: &[&std::ffi::OsStr],
    stdin: std::fs::File,
    log: std::fs::File,
    path: &std::ffi::OsStr,
) -> io::Result<()> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg(script)
        .args(args)
        .env_clear()
        .env("PATH", path)
        .current_dir("/")
        .stdin(stdin)
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (fork, setsid, _exit); it allocates nothing. The
    // intermediate child leaves with _exit, never returning into the runtime of this
    // process; the grandchild returns and goes on to exec. std's exec-error pipe stays
    // open in the grandchild until its exec, so `spawn` still reports an exec failure.
    unsafe {
        cmd.pre_exec(|| {
            // The runner keeps this process's umask (the user's `[home] umask`), and so
            // do the jobs it runs.
            match libc::fork() {
                -1 => Err(io::Error::last_os_error()),
                0 => {
                    if libc::setsid() == -1 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(())
                    }
                }
                _ => libc::_exit(0),
            }
        });
    }
    let mut child = cmd.spawn()?;
    let status = child.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "the process that starts a runner ended with {status}"
        )))
    }
}

/// This machine's name, for `actual_ce`.
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes at most that
    // many. One byte is held back so that the result is always NUL-terminated below.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if r != 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match String::from_utf8_lossy(&buf[..end]) {
        name if name.is_empty() => "localhost".to_owned(),
        name => name.into_owned(),
    }
}

/// Whether `/proc` is there to ask (Linux, and mounted).
fn has_proc() -> bool {
    static HAS_PROC: OnceLock<bool> = OnceLock::new();
    *HAS_PROC.get_or_init(|| Path::new("/proc/self/stat").exists())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    state: u8,
    pgrp: i32,
    start_ticks: u64,
}

impl Stat {
    fn is_zombie(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }
}

fn read_stat(pid: i32) -> io::Result<Stat> {
    let text = std::fs::read(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat is not understood"),
        )
    })
}

/// Parses `pid (comm) state ppid pgrp ... starttime ...`. The command name may contain
/// spaces and parentheses, so the fields are counted from the last `)`.
fn parse_stat(text: &[u8]) -> Option<Stat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // fields[0] is field 3 of proc(5) (state), so field n is fields[n - 3].
    Some(Stat {
        state: *fields.first()?.as_bytes().first()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

fn cmdline_names(pid: i32, wrapper: &Path) -> bool {
    // A process whose command line names the path: the wrapper, given its control
    // directory.
    use std::os::unix::ffi::OsStrExt;
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    cmdline
        .split(|&b| b == 0)
        .any(|arg| arg == wrapper.as_os_str().as_bytes())
}

/// A process that vanished between two reads of `/proc` shows as any of these.
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

fn scan_live_groups() -> io::Result<HashSet<i32>> {
    let mut live = HashSet::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // Processes end while we read; any error means this one is no longer there.
        if let Ok(stat) = read_stat(pid)
            && !stat.is_zombie()
        {
            live.insert(stat.pgrp);
        }
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        let line =
            b"4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: b'S',
                pgrp: 4242,
                start_ticks: 987654
            })
        );
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_stat(b"1 (x) Z 1"), None);
    }

    #[test]
    fn refuses_dangerous_groups() {
        assert!(signal_group(0, 0).is_err());
        assert!(signal_group(1, 0).is_err());
        assert!(signal_group(-5, 0).is_err());
    }

    #[test]
    fn own_process_is_alive() {
        if !has_proc() {
            return;
        }
        let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let stat = read_stat(me);
        assert!(stat.is_ok());
    }
}
