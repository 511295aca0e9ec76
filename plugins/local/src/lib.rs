//! The Local backend: jobs as detached processes on this machine (Ganga's `Local`).
//!
//! `submit` queues each run as one small file and makes sure a few **runners** are
//! running: at most `max_parallel` detached `sh` processes per ganga home, each holding a
//! slot for as long as it lives, taking queued runs one after the other and running each
//! under a **wrapper** that records what happened in files. Those files, not the `ganga`
//! process, are the truth: the `ganga` that submitted may exit at once, and a later
//! `ganga monitor` with a fresh [`LocalBackend`] finds out from them how each run ended.
//! The number of processes follows `max_parallel`, never the number of units: submitting
//! 10,000 subjobs starts no process per subjob and keeps no descriptor per subjob.
//!
//! It is not a scheduler: there are no priorities, resource requests or remote hosts. The
//! only policy is `max_parallel`, first in, first out.
//!
//! # Files in a unit's workspace
//!
//! The backend owns two directories of a (sub)job's workspace and nothing else there (the
//! workspace also holds the collected outputs, and a master's holds its subjobs):
//!
//! - `work/`: the working directory, made by the wrapper when the run starts (or at
//!   submit, to copy input files into it). The program runs here with stdin from
//!   `/dev/null` and its stdout and stderr in `work/stdout` and `work/stderr`. Output
//!   patterns are matched here.
//! - `local/`: the control directory, with one file per record and run (below), the
//!   wrapper's own diagnostics (`wrapper-<run>.log`) and what `outputs` collected
//!   (`outputs-<run>.json`).
//!
//! Submitting a unit again first stops what is left of its earlier runs (a run forced
//! failed by a user, or left by a crashed ganga, may still be queued or running): it is
//! taken out of the queue, or its process group gets SIGTERM and, after
//! `kill_grace_secs`, SIGKILL, and submit waits until it is gone (or fails that unit).
//! Then both directories are removed and made afresh, so nothing of an old run writes
//! into the new one.
//!
//! Everything the backend creates is private: directories `0700`, files `0600`, and
//! runners (so wrappers and jobs) run with umask `077`.
//!
//! # Records
//!
//! One file per kind and run, `<kind>-<run>` (`exit-2`), each also saying `run=<run>`
//! inside: a record of another run is never read as this one's (an old run's exit can
//! never end a new run). Text of `key=value` lines, unknown keys ignored; times are
//! `time_ms=` (or `time_s=` where `date` has no `%N`; readers take the unit from the
//! magnitude). Each is written to a temporary file and renamed, so a reader sees all of
//! it or nothing.
//!
//! | file | written by, when | keys |
//! |---|---|---|
//! | `queued-<run>` | `submit`, under the queue lock, before the queue entry | five queue lines (below), then `#run`, `#seq` (the queue sequence number: the run's id), `#queue` (the queue directory), `#time_ms`; then the shell text the wrapper sources: the program, its arguments and the job's environment |
//! | `started-<run>` | the wrapper, before it runs the program | `run`, `seq`, `pid` = `pgid` (the wrapper leads its session), `start_ticks` (field 22 of `/proc/<pid>/stat`, telling the wrapper from a later process with its pid), time |
//! | `exit-<run>` | the wrapper, when the program ended | `run`, `exit_code`, `signal` (when the code is 129..=192, which sh uses for death by signal `code - 128`; a program that itself exits 137 is indistinguishable), `error` (why the program could not be started: `cannot execute /x: No such file or directory`), time |
//! | `killed-<run>` | `kill` (or a resubmission), before it does anything else | `run`, `time_ms` |
//!
//! The id `submit` returns is the queue sequence number (`17`): it exists from the moment
//! the run is queued, so a kill reaches a run that has not started, and `find` can name a
//! run whose id `ganga` never recorded (it answers from `queued-<run>`).
//!
//! # The queue (`<home>/local/`)
//!
//! - `queue/<seq>`: a queued run's entry, a hard link to its `queued-<run>` record (a copy
//!   where the workspace is on another file system). Its first five lines, each after a
//!   `#`, are the format (`ganga-local-queue 1`), the control directory, the run, the
//!   unit, and the wrapper to run it with.
//! - `queue/lock`, `queue/next`, `queue/head`: `submit` takes the lock (`flock`) for one
//!   batch: it reserves sequence numbers from `next`, writes each run's record and entry,
//!   then moves `head` past them. Runners look only below `head`, so they never see half
//!   a batch; a batch cut short by a crash left `next` ahead of `head`, and whoever next
//!   takes the lock (a submit, or a poll that finds a run waiting there) publishes it.
//! - `queue/<seq>.claim`: a runner takes entry `<seq>` by creating this file, which must
//!   not exist yet (`O_EXCL`): exactly one runner wins, and losers move on, without a lock
//!   and without a thundering herd. It holds the runner's pid and start time. `kill` takes
//!   a queued run out the same way (claim, then remove the entry), so it never starts.
//! - `cursors/<slot>`: each runner's position. Every runner keeps a cursor into the
//!   sequence and tries each entry once (a `stat`, then the claim): no directory is
//!   scanned per claim. Every entry below a runner's cursor has been taken, so a runner
//!   that starts later begins at the highest cursor.
//! - `slots/slot-<n>`: a runner holds an `flock(2)` on its slot file for as long as it
//!   lives. `submit` (and `poll`, when it finds runs waiting) starts a runner for each
//!   free slot it needs: it takes the lock itself and hands it to the runner.
//! - `bin/runner-<hash>.sh`, `bin/wrapper-<hash>.sh`: the scripts, one file per version,
//!   so a running runner or wrapper keeps its version whatever a newer ganga installs.
//! - `env/<hash>`: the environment of the `ganga` that submitted, as `export`s, one file
//!   per content (owner-only), removed after 30 days unused.
//! - `events/<job>-r<run>`: dropped by the wrapper when it recorded `exit`, by `kill` when
//!   it recorded `killed`, and by a runner whose wrapper ended without recording either
//!   (killed by SIGKILL). `changes` consumes them.
//! - `runner.log`: what runners have to say.
//!
//! # Runners and wrappers
//!
//! A runner is `sh runner-<hash>.sh <home>/local <slot>`, started by a double fork: a
//! child of `ganga` forks it and exits at once, and is reaped before `submit` answers, so
//! the runner is re-parented to init, leads a session of its own, and survives the
//! `ganga` that started it, which keeps neither a child nor a descriptor for it. Its
//! environment is `PATH` only. It takes entries from its cursor up to `head`; for each it
//! runs `setsid sh wrapper-<hash>.sh CONTROL RUN SEQ QUEUE EVENTS` in the foreground (a
//! background command would start with SIGINT and SIGQUIT ignored, which jobs would
//! inherit) without the slot's lock, and waits for it. When it sees nothing more, it
//! gives its slot up, looks at `head` once more (a submitter publishes before it looks
//! for free slots, so either it found this slot free and started a runner, or the runner
//! sees its runs now), and exits, or takes the slot again (`flock -n`) and goes on.
//!
//! The wrapper leads its own session: its pid is the id of the process group of
//! everything the run starts. It sources `queued-<run>`, records `started-<run>`, removes
//! the queue entry and claim, and then looks for `killed-<run>`: a kill records `killed`
//! before it looks for `started`, so whichever comes second sees the other, and a run
//! killed while it was starting never runs its program. It runs the program in `work/`
//! in a subshell that first applies the submitting ganga's environment and then the
//! job's (so a job's `PATH` or `IFS` cannot break the wrapper), checks that the program
//! can be started (saying why not in the exit record), and `exec`s it. Job arguments and
//! environment values are never on a command line of ours (they are in the owner-only
//! record) and never parsed as shell code (they are single-quoted words). Environment
//! variables whose names sh cannot export (`dotted.name`) are passed by env(1), on whose
//! command line they are visible until it starts the program. The program runs with the
//! slot's lock closed, so a daemon it leaves behind does not keep the slot.
//!
//! # Deciding a run's state (`poll`, `poll_all`)
//!
//! An `exit` record decides: code 0 is `Succeeded`, anything else `Failed`. A `killed`
//! record makes it `Killed`, unless an `exit` record is older (it ended before the kill).
//! Else, with `started`, the process group is looked at: alive is `Running`; gone means
//! the records are read again (it may have ended in between) and then `Absent` (the
//! monitor fails it as lost after its grace period: gone never means completed). Zombies
//! do not count as alive, and a pid in use by a process with another start time means the
//! run is gone. Without `started`, the queue tells: an entry nobody claimed is `Queued`
//! ("queued"), one claimed by a live runner is `Queued` ("starting"), and one claimed by
//! a runner that is gone, or no entry at all, is `Absent`. No `queued` record of the run,
//! or one with another id: `Absent`. I/O errors give `Unknown`, which changes nothing.
//! One poll reads `/proc` at most once for the whole batch, so `poll_all` is `poll`.
//!
//! # Stopping (`kill`)
//!
//! `kill` records `killed-<run>` (and an event), takes a queued run out of the queue (it
//! never starts), and sends SIGTERM to a running run's process group and, after a grace
//! period (`kill_grace_secs`, default 2), SIGKILL to whatever of it is still alive. A run
//! that has ended is left alone.
//!
//! # Watching (`changes`)
//!
//! One inotify watch (the `notify` crate) on `events/`, however many units: `changes`
//! reads the directory, removes what it read and returns the units named, or waits for
//! the watch to fire. A poll that reports a run ended removes its event too, so the
//! directory does not grow when nobody watches.
//!
//! # Outputs and peeking
//!
//! `outputs` collects with [`ganga_plugin_sdk::files::collect`]: what each pattern
//! matches in `work/` beneath it (links out of it are not followed, only regular files
//! and directories are read; what was left out is in the report's `skipped`), plus
//! `stdout` and `stderr`. It records what it collected in `outputs-<run>.json` before
//! anything is removed; a repeated call answers from that record. With `keep_workdir =
//! false` it then removes `work/` by renaming it to `.work.removing` first, so a repeated
//! call after a crash never reads a half-removed directory (it finishes the removal).
//! `peek` reads the end of `stdout`, `stderr` or a path inside `work/` with
//! [`ganga_plugin_sdk::files::tail`] (only the end is read, links out are refused), or,
//! once `work/` is gone, of the collected copy.
//!
//! # Configuration (`[plugin.local]`)
//!
//! - `max_parallel` (positive integer, default: the number of CPUs): runners per home
//! - `keep_workdir` (boolean, default `true`): keep `work/` after collecting outputs
//! - `kill_grace_secs` (number, default 2): between SIGTERM and SIGKILL
//!
//! Any other key is refused. The per-job backend options are not used. The backend needs
//! `sh`, `setsid`, `mv`, `rm`, `date` and `env` on `PATH`, and `flock` (util-linux) for a
//! runner that finds new runs just as it ends to keep max_parallel strictly.

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
    fn create(context: ganga_plugin_sdk::PluginContext) -> Result<Self, String> {
        LocalBackend::new(context.home, &context.config).map_err(|e| e.to_string())
    }
}

ganga_plugin_sdk::export_backend!(LocalBackend, "local");
