//! Running a batch system's command: never on an async thread's time, always with a
//! timeout, and leaving nothing behind when it is cut off.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt as _;

use crate::flavour::CommandOutput;

/// Why a command gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommandError {
    #[error("cannot run {program}: {message}")]
    Start { program: String, message: String },
    #[error("{program} gave no answer within {} s (the batch system may be down or overloaded)", timeout.as_secs())]
    Timeout { program: String, timeout: Duration },
    #[error("{program} failed: {message}")]
    Io { program: String, message: String },
}

/// How a command is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locale {
    /// The environment as it is: submit commands pass it on to the jobs.
    Inherit,
    /// `LC_ALL=C`, so that what is parsed does not depend on the user's language.
    C,
}

/// Runs `program args...`, feeding it `stdin`, and waits at most `timeout` for it to end.
/// When the time is up, its whole process group is killed (wrappers such as Slurm's Perl
/// `qsub` start children of their own).
pub(crate) async fn run(
    program: &Path,
    args: &[String],
    stdin: Option<&str>,
    timeout: Duration,
    locale: Locale,
) -> Result<CommandOutput, CommandError> {
    let name = program.display().to_string();
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if locale == Locale::C {
        cmd.env("LC_ALL", "C");
    }
    let mut child = cmd.spawn().map_err(|e| CommandError::Start {
        program: name.clone(),
        message: e.to_string(),
    })?;
    let pgid = child.id().and_then(|p| i32::try_from(p).ok());
    let feeder = match (stdin, child.stdin.take()) {
        (Some(text), Some(mut pipe)) => {
            let text = text.to_owned();
            Some(tokio::spawn(async move {
                // A command that exits without reading all of it closes the pipe: fine.
                let _ = pipe.write_all(text.as_bytes()).await;
                let _ = pipe.shutdown().await;
            }))
        }
        _ => None,
    };
    let waited = tokio::time::timeout(timeout, child.wait_with_output()).await;
    if let Some(f) = feeder {
        f.abort();
    }
    let output = match waited {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(CommandError::Io {
                program: name,
                message: e.to_string(),
            });
        }
        Err(_) => {
            // The child itself is killed when its handle is dropped (kill_on_drop); the
            // rest of its group is killed here.
            if let Some(pgid) = pgid {
                // SAFETY: killpg only sends a signal; a group that is gone gives ESRCH.
                unsafe {
                    libc::killpg(pgid, libc::SIGKILL);
                }
            }
            return Err(CommandError::Timeout {
                program: name,
                timeout,
            });
        }
    };
    let out = CommandOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    tracing::debug!(
        "batch backend: {name} {} -> {:?} in {} ms",
        args.join(" "),
        out.code,
        started.elapsed().as_millis()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn output_stdin_and_exit_codes() {
        let sh = Path::new("/bin/sh");
        let args = ["-c".to_owned(), "cat; echo err >&2; exit 4".to_owned()];
        let out = run(sh, &args, Some("in\n"), Duration::from_secs(10), Locale::C)
            .await
            .expect("it runs");
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (Some(4), "in\n", "err\n")
        );
    }

    /// Whether process `pid` is gone (or a zombie, which runs no more).
    fn gone(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_hanging_command_is_cut_off_with_its_children() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pidfile = dir.path().join("child.pid");
        let script = format!("sleep 60 & echo $! > '{}'; wait", pidfile.display());
        let started = Instant::now();
        let e = run(
            Path::new("/bin/sh"),
            &["-c".to_owned(), script],
            None,
            Duration::from_millis(500),
            Locale::C,
        )
        .await
        .expect_err("it times out");
        assert!(matches!(e, CommandError::Timeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid = std::fs::read_to_string(&pidfile).expect("the child wrote its pid");
        let pid = pid.trim();
        // The background child was in the command's process group: it dies with it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gone(pid) {
            assert!(
                Instant::now() < deadline,
                "child {pid} of the timed-out command lives on"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_missing_command_is_named() {
        let e = run(
            Path::new("/no/such/sbatch"),
            &[],
            None,
            Duration::from_secs(1),
            Locale::C,
        )
        .await
        .expect_err("it cannot start");
        assert!(e.to_string().contains("cannot run /no/such/sbatch"), "{e}");
    }
}
