//! Compact records: jobs, subjobs and summaries of ganga-rs as CBOR arrays, without field
//! names. This is the encoding stores keep on disk, the plugin protocol carries for bulk
//! data and the cache holds in memory (see `docs/storage-format.md`).
//!
//! A subjob is kept as what differs from its master: its status, submit count, times as
//! deltas, backend facts and the splitter's overrides. Strings that repeat across the
//! subjobs of a job (native states, hosts, reasons, output names, override keys) are
//! interned in the job's [`Dictionary`], and every time is a delta from the dictionary's
//! base time. A dictionary only ever grows and its base never changes, so a subjob record
//! stays readable however its master changes later.
//!
//! Every record is an array whose trailing items may be left out (they read as empty),
//! and readers skip trailing items they do not know, so a field can be appended without
//! a new format. Decoding never panics and never trusts a length it has not checked.
//!
//! It is not: a store (it does no I/O), nor the plugin protocol (`ganga-protocol` uses
//! the serde adapters here to carry records). `ganga-core` does not know it: the core's
//! types are plain data, and [`RecordStore`] is the [`ganga_core::Store`] that hands its
//! records over as they are.

mod batch;
mod cbor;
mod changes;
mod dictionary;
mod job;
mod run;
mod spec;
mod store;
mod subjob;
mod summary;
mod times;
mod unit_entry;
mod wire;

pub use crate::{
    batch::SubjobBatch,
    cbor::CodecError,
    changes::RecordChanges,
    dictionary::Dictionary,
    job::{
        JobRecord, JobState, decode_job, decode_spec, decode_spec_apart, decode_splitter,
        decode_state, encode_job, encode_spec, encode_splitter, encode_state, encode_state_parts,
        job_from_parts, restamp_state,
    },
    spec::split_items_of_encoded,
    store::RecordStore,
    subjob::{
        RawOverrides, decode_subjob, decode_subjob_run, encode_subjob, encode_subjob_run,
        split_items,
    },
    summary::{decode_summary, encode_summary, summary_differences},
    unit_entry::{UnitEntry, decode_unit_entry, encode_unit_entry},
    wire::{
        packed_job, packed_opt_job, packed_run, packed_subjobs, packed_summaries,
        packed_unit_updates,
    },
};
