//! Where commands write, and what a closed pipe means.
//!
//! Everything a command prints goes through [`outln!`]/[`out!`] (stdout, errors returned)
//! or [`errln!`] (stderr, errors ignored), never `println!`, which panics when the reader
//! has gone. A reader going away (`ganga jobs | head -1`) is not a failure of ganga: the
//! write fails with `BrokenPipe`, the error travels up like any other, and `main` ends
//! quietly with exit code 0 ([`is_broken_pipe`]), as ripgrep does. (ganga keeps SIGPIPE
//! ignored, Rust's default, rather than dying of it: plugins write to pipes and sockets of
//! their own, where a signal would kill the whole command.)

use std::fmt;
use std::io::{self, Write as _};

/// Writes formatted text to stdout.
pub(crate) fn stdout_fmt(args: fmt::Arguments<'_>) -> io::Result<()> {
    io::stdout().lock().write_fmt(args)
}

/// Writes formatted text to stderr; a stderr that cannot be written to is ignored (there
/// is nowhere left to say so).
pub(crate) fn stderr_fmt(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// `println!` that returns the write's error instead of panicking.
macro_rules! outln {
    () => {
        $crate::out::stdout_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::stdout_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns the write's error instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::stdout_fmt(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::out::stderr_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};

/// Whether `e` comes from writing to a pipe whose reader has gone.
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(io::ErrorKind::BrokenPipe))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_pipe_is_recognised_through_context_and_json() {
        let io = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("writing the listing");
        assert!(is_broken_pipe(&io));
        let json = serde_json::to_writer(Broken, &[1, 2, 3]).expect_err("a broken writer");
        assert!(is_broken_pipe(&anyhow::Error::new(json)));
        let other = anyhow::Error::new(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&other));
        assert!(!is_broken_pipe(&anyhow::anyhow!("Broken pipe")));
    }

    struct Broken;

    impl io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
