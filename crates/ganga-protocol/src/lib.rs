//! The messages that cross the plugin boundary between `ganga` (the host) and a plugin
//! library, encoded as CBOR: requests and replies for backends and stores, what a plugin
//! is given when it is created, and the version checked when one is loaded. Adding a
//! variant is a compatible change (an older plugin answers it with `Unsupported`);
//! changing or removing one is not, and needs a new major [`PROTOCOL_VERSION`].
//!
//! It is not: the ABI (`ganga-plugin-abi` carries these bytes), nor the record encoding
//! (bulk data travels as `ganga-records`' compact records, through its serde adapters).
//! Only the host and the SDK speak it; the core knows nothing of it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use ganga_core::{
    ActiveJob, ActiveUnit, Answers, BackendDescription, BackendRef, CheckReport, CommandStep,
    Committed, Job, JobId, JobRef, Options, OutputsReport, OutputsRequest, PeekFile, PollReport,
    StoreDescription, SubjobIndex, SubmitSpec, Submitted, SummaryEntry, UnitCursor, UnitRun,
    UnitUpdate, UnitsUpdated, Value,
};
use ganga_records::{JobRecord, RecordChanges, SubjobBatch};

/// The version of these messages, checked by caret rule when a plugin is loaded.
///
/// 3.0: every backend list call answers keyed by unit; `poll_all`, `changes`, `find` and
/// `command`; runs on submit specs and references; the store's index of active units,
/// unit updates and backups.
///
/// 4.0: a commit carries each job put as the records a store keeps of it
/// (`ganga_records::RecordChanges`: its state, spec and splitter, encoded once by the
/// host), not as one combined job record.
pub const PROTOCOL_VERSION: &str = "4.0.0";

/// What a plugin is given when it is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginContext {
    /// The ganga home: where the store and the job workspaces live.
    pub home: PathBuf,
    /// The plugin's table from the user's config file (`[plugin.<name>]`).
    #[serde(default)]
    pub config: Options,
    /// A short id of the ganga home, stable for its life: a backend tags every job of
    /// this home with it, so that one listing answers for all of them.
    #[serde(default)]
    pub home_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendRequest {
    Describe,
    Submit(Vec<SubmitSpec>),
    Poll(Vec<BackendRef>),
    PollAll(Vec<BackendRef>),
    Changes {
        wait_ms: u64,
    },
    Find(Vec<UnitRun>),
    Kill(Vec<BackendRef>),
    Peek {
        job: BackendRef,
        file: PeekFile,
        max_bytes: u64,
    },
    Outputs(Vec<OutputsRequest>),
    Command {
        args: Vec<String>,
        state: Option<Value>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendReply {
    Described(BackendDescription),
    Submitted(Answers<Submitted>),
    Polled(Answers<PollReport>),
    Changed(Vec<JobRef>),
    Found(Answers<Option<Submitted>>),
    Killed(Answers<()>),
    Peeked(ByteBuf),
    Outputs(Answers<OutputsReport>),
    Command(CommandStep),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreRequest {
    Describe,
    ReserveIds(u64),
    /// Since 4.0: every job put as its records.
    Commit(RecordChanges),
    Job(JobId),
    /// Since 2.1: the job as its records (`StoreReply::JobRecord`).
    JobRecord(JobId),
    Subjobs {
        job: JobId,
        start: SubjobIndex,
        end: SubjobIndex,
    },
    Summaries {
        from: JobId,
        limit: u32,
    },
    Active,
    ActiveUnits {
        after: Option<UnitCursor>,
        limit: u32,
    },
    UpdateUnits(#[serde(with = "ganga_records::packed_unit_updates")] Vec<UnitUpdate>),
    Backup(PathBuf),
    Check,
    Dump,
}

// A reply is made once per call and consumed at once; boxing the job would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreReply {
    Described(StoreDescription),
    Reserved(JobId),
    Committed(Vec<Committed>),
    Job(#[serde(with = "ganga_records::packed_opt_job")] Option<Job>),
    JobRecord(Option<JobRecord>),
    Subjobs(SubjobBatch),
    Summaries(#[serde(with = "ganga_records::packed_summaries")] Vec<SummaryEntry>),
    Active(Vec<ActiveJob>),
    ActiveUnits(Vec<ActiveUnit>),
    UnitsUpdated(UnitsUpdated),
    BackedUp,
    Checked(CheckReport),
    Dumped(String),
}
