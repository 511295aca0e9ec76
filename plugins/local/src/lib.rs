//! The Local backend: jobs as detached processes on this machine (Ganga's `Local`).
//!
//! Each (sub)job runs under a small POSIX `sh` wrapper that leads its own session, waits
//! for a slot, runs the program in the job's working directory and records what happened
//! in files. Those files, not the `ganga` process, are the truth: the `ganga` that
//! submitted a job may exit at once, and a later `ganga monitor` with a fresh
//! [`LocalBackend`] finds out from them how the job ended.
//!
//! It is not a scheduler: there are no queues, priorities, resource requests or remote
//! hosts. The only policy is `max_parallel`. It does not watch the jobs either: it
//! answers when asked (`poll`), and the monitor decides how often to ask.
//!
//! # Files
//!
//! In a (sub)job's workspace the backend owns two directories and nothing else (the
//! workspace also holds the collected outputs, and a master's holds its subjobs):
//!
//! - `work/`: the working directory. Input files are copied here; the program runs here
//!   with stdin from `/dev/null` and its stdout and stderr in `work/stdout` and
//!   `work/stderr`. Output patterns are matched here.
//! - `local/`: the control directory: `wrapper.sh` (a copy per job, so a running job is not
//!   affected by a newer ganga), `wrapper.log` (the wrapper's own diagnostics) and the
//!   records below.
//!
//! Submitting a job again removes both and starts afresh.
//!
//! # Records
//!
//! Text files of `key=value` lines; readers ignore keys they do not know. Times are
//! `time_ms=` (milliseconds since the epoch) or, where `date` has no `%N`, `time_s=`
//! (seconds); readers take the unit from the magnitude, whatever the key.
//!
//! | file | written by, when | keys |
//! |---|---|---|
//! | `launch` | `submit`, right after starting the wrapper | `format=1`, `pgid`, `start_ticks` (the wrapper's start time from `/proc/<pid>/stat`, Linux only), `host`, `time_ms` |
//! | `started` | the wrapper, once it holds a slot and starts the program | `pid`, `pgid` (the same: the wrapper leads its session), `slot` (number, or `none`), time |
//! | `exit` | the wrapper, when the program ended | `exit_code`, `signal` (when the code is 129..=192, which sh uses for death by signal `code - 128`; a program that itself exits 137 is indistinguishable), `error` (when the program could not be started at all), time |
//! | `killed` | `kill`, before it sends any signal | `time_ms` |
//! | `outputs.json` | `outputs`, after collecting | the patterns, the files collected, the patterns unmatched |
//!
//! Every record is written to a temporary file and renamed, so a reader sees all of it or
//! nothing.
//!
//! # Deciding a job's state (`poll`)
//!
//! An `exit` record decides: code 0 is `Succeeded`, anything else `Failed`. A `killed`
//! record makes it `Killed`, unless an `exit` record is older (the job ended before the
//! kill). Without either, the process group is looked at: alive means `Running` once
//! `started` exists and `Queued` (waiting for a slot) before. Gone means the records are
//! read again (the job may have ended in between) and then `Failed`, "lost": gone from
//! the machine never means completed. Zombies do not count as alive, and a pid found in
//! use by a process with another start time means the job is gone (the kernel reuses a
//! group's id only once the group is empty). Without `/proc` (not Linux), only
//! `kill(-pgid, 0)` is asked, which cannot see pid reuse or zombies. I/O errors give
//! `Unknown`, which changes nothing.
//!
//! # Slots (`max_parallel`)
//!
//! At most `max_parallel` Local jobs of one ganga home run at once, across all ganga
//! processes and while none runs: the wrapper takes an `flock(1)` on one of the files
//! `<home>/local/slots/slot-1..N`, trying each with `flock -n`; when all are taken it
//! waits up to a second on one of them (`flock -w 1`, another one each round) and tries
//! all again. Waiting wrappers first line up on the lock `<home>/local/slots/queue`, so
//! that only one of them at a time looks for a slot, and a thousand queued jobs cost no
//! more CPU than one. A lock is released when the wrapper ends, however it ends; the
//! program runs with the lock descriptors closed, so a daemon it leaves behind does not
//! keep the slot. Without `flock` (util-linux) there is no limit, and a warning says so. Jobs
//! submitted with different `max_parallel` values share the first slots.
//!
//! # Starting and stopping
//!
//! The wrapper is started with `setsid`: its pid is the id returned by `submit` and the id
//! of the process group of everything the job starts. It is a child of the submitting
//! process, which waits for it in a background task, so no zombie is left in a
//! long-running monitor; if that process exits first, the wrapper is re-parented and goes
//! on. (An intermediate shell that backgrounds the wrapper would detach it too, but sh
//! starts background commands with SIGINT and SIGQUIT ignored, and jobs would inherit
//! that.) Job arguments and environment reach the program as separate `exec` arguments,
//! never as shell text; the environment is ganga's plus the job's, applied by `env(1)`
//! only for the program, so a job's `PATH` or `IFS` cannot break the wrapper.
//!
//! `kill` writes `killed`, sends SIGTERM to the process group, and after a grace period
//! (`kill_grace_secs`, default 2) SIGKILL to whatever of it is still alive. A job that has
//! already ended is left alone.
//!
//! # Outputs and peeking
//!
//! `outputs` copies into the output directory everything in `work/` that matches each
//! pattern (files, or directories with their contents; `*` does not match `/` or a leading
//! `.`), plus `stdout` and `stderr`. It can be repeated. With `keep_workdir = false` it
//! then removes `work/` (the control directory stays, so that a repeated call, and a
//! repeated poll, still answer). `peek` reads the end of `stdout`, `stderr` or a relative
//! path inside `work/`; paths that are absolute or contain `..` are refused.
//!
//! # Configuration (`[plugin.local]`)
//!
//! - `max_parallel` (positive integer, default: the number of CPUs)
//! - `keep_workdir` (boolean, default `true`): keep `work/` after collecting outputs
//! - `kill_grace_secs` (number, default 2): between SIGTERM and SIGKILL
//!
//! The per-job backend options are not used.

mod backend;
mod config;
mod kill;
mod layout;
mod outputs;
mod poll;
mod procs;
mod queue;
mod records;
mod runners;
mod submit;
mod unitfile;
mod watch;

pub use crate::backend::LocalBackend;

impl ganga_plugin_sdk::BackendPlugin for LocalBackend {
    fn create(context: ganga_core::protocol::PluginContext) -> Result<Self, String> {
        LocalBackend::new(context.home, &context.config).map_err(|e| e.to_string())
    }
}

ganga_plugin_sdk::export_backend!(LocalBackend, "local");
