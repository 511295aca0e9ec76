//! The Batch backend: units (jobs and subjobs) run on a batch system — Slurm, (Son of)
//! Grid Engine, PBS (OpenPBS, PBS Pro, Torque), LSF or HTCondor — through the system's
//! own commands, from a submit host that shares a file system with the workers.
//!
//! One plugin, several flavours: what differs between systems (the commands, their
//! arguments, how to read their answers, what each native state means) is a small table
//! per system in the `flavour` module (PSI/J's granularity); everything else is shared.
//! `docs/backends/batch.md` is the guide for users and site administrators.
//!
//! It is not a scheduler, and keeps no state in memory: what it knows of a unit is in
//! the unit's workspace and at the batch system, so a fresh instance in another process
//! answers for any unit.
//!
//! # How a unit runs
//!
//! `submit` makes the unit's directories in its workspace (`work/`, the working
//! directory, with the input files; `batch/`, the control directory, with `command.sh`,
//! the program and its arguments), then hands units over in chunks: one job array per
//! chunk where the system has arrays (Slurm `--array`, Grid Engine `-t`, LSF `name[1-N]`,
//! HTCondor `queue N`), one job per unit elsewhere (PBS). Every job of one ganga home
//! carries the same name, `ganga-<home id>`, so that one listing answers for all of them.
//! A chunk's single generated wrapper finds its unit by the task index, records `started`
//! and `exit` (with the run, the exit code, times) in the unit's control directory, and
//! runs the program with stdout and stderr in the working directory. Ids are
//! `<system>:<id>` (`slurm:12_3`), so that later calls know where to ask.
//!
//! # Deciding a unit's state
//!
//! `poll` and `poll_all` run one listing command per system for all the units asked
//! (Slurm `squeue --name`, Grid Engine `qstat -g d -xml`, PBS `qstat -f [-x]`, LSF
//! `bjobs -a -J`, HTCondor `condor_q -constraint`), read each unit's records, and decide
//! (`decide.rs`): an exit record of the unit's run decides; a kill record means killed;
//! else the listing's native state, kept as the report's native state; a unit neither
//! listed nor recorded is looked up in the history where there is one (Grid Engine's
//! accounting file, read incrementally; `condor_history`), else reported `Absent` (the
//! monitor fails it as lost after a grace period). A listing that fails, hangs past its
//! timeout or cannot be read fails the whole call: nothing changes, the monitor backs
//! off.
//!
//! # Configuration (`[plugin.batch]`) and job options
//!
//! See `config.rs` and `docs/backends/batch.md`: `system`, `queue`,
//! `extra_submit_options`, `commands` (paths of the commands), `array_size`, timeouts,
//! `pbs_history`, `sge_accounting`; per job, `system`, `queue`, `extra_options`.

mod accounting;
mod backend;
mod collect;
mod command;
mod config;
mod decide;
mod find;
mod flavour;
mod kill;
mod layout;
mod poll;
mod records;
mod script;
mod submissions;
mod submit;

pub use crate::backend::BatchBackend;

impl ganga_plugin_sdk::BackendPlugin for BatchBackend {
    fn create(context: ganga_plugin_sdk::PluginContext) -> Result<Self, String> {
        BatchBackend::new(context.home, &context.home_id, &context.config)
            .map_err(|e| e.to_string())
    }
}

ganga_plugin_sdk::export_backend!(BatchBackend, "batch");
