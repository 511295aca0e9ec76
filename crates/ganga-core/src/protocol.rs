//! The messages that cross the plugin boundary, encoded as CBOR. Adding a variant is a
//! compatible change (an older plugin answers it with `Unsupported`); changing or removing
//! one is not, and needs a new major [`PROTOCOL_VERSION`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::compact::SubjobBatch;
use crate::{
    ActiveJob, BackendDescription, BackendRef, Change, CheckReport, Committed, Job, JobId, Options,
    OutputsReport, OutputsRequest, PeekFile, PerJob, PollReport, StoreDescription, SubjobIndex,
    SubmitSpec, Submitted, SummaryEntry,
};

/// The version of these messages, checked by caret rule when a plugin is loaded.
pub const PROTOCOL_VERSION: &str = "2.1.0";

/// What a plugin is given when it is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginContext {
    /// The ganga home: where the store and the job workspaces live.
    pub home: PathBuf,
    /// The plugin's table from the user's config file (`[plugin.<name>]`).
    #[serde(default)]
    pub config: Options,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendRequest {
    Describe,
    Submit(Vec<SubmitSpec>),
    Poll(Vec<BackendRef>),
    Kill(Vec<BackendRef>),
    Peek {
        job: BackendRef,
        file: PeekFile,
        max_bytes: u64,
    },
    Outputs(Vec<OutputsRequest>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendReply {
    Described(BackendDescription),
    Submitted(Vec<PerJob<Submitted>>),
    Polled(Vec<PollReport>),
    Killed(Vec<PerJob<()>>),
    Peeked(ByteBuf),
    Outputs(Vec<PerJob<OutputsReport>>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreRequest {
    Describe,
    ReserveIds(u64),
    Commit(Vec<Change>),
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
    Job(#[serde(with = "crate::compact::packed_opt_job")] Option<Job>),
    JobRecord(Option<crate::compact::JobRecord>),
    Subjobs(SubjobBatch),
    Summaries(#[serde(with = "crate::compact::packed_summaries")] Vec<SummaryEntry>),
    Active(Vec<ActiveJob>),
    Checked(CheckReport),
    Dumped(String),
}
