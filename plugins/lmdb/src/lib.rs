//! The LMDB store: ganga's jobs kept in an LMDB environment (through heed) as compact
//! CBOR records (`ganga_records`): a job in three parts (its state, its spec, its
//! splitter), subjob records sixteen to an LMDB entry, with the indexes `ganga jobs` and
//! the monitor read kept in the same transactions as the records.
//!
//! Tables (named databases) of format version 3 (`docs/storage-format.md`):
//!
//! | table       | key                                   | value                            |
//! |-------------|---------------------------------------|----------------------------------|
//! | `meta`      | `format_version`, `next_job_id`       | `u32` BE, `u64` BE               |
//! | `jobs`      | job id, `u64` BE                      | the job's state: revision, run   |
//! |             |                                       | state, subjob counters, metadata |
//! | `specs`     | job id, `u64` BE                      | the job's spec, without splitter |
//! | `splitters` | job id, `u64` BE                      | the job's splitter (if it has one)|
//! | `dicts`     | job id, `u64` BE                      | the job's `Dictionary` and the   |
//! |             |                                       | indices of its subjob records    |
//! | `subjobs`   | job id `u64` BE ++ group `u32` BE     | a group: the compact `Subjob`    |
//! |             | (group = index / 16)                  | records of 16 consecutive indices|
//! | `summaries` | job id, `u64` BE                      | compact `JobSummary::of(job)`    |
//! | `active`    | backend name ++ `0x00` ++ id `u64` BE | status byte ++ revision          |
//! | `units`     | backend ++ `0x00` ++ id [++ index]    | an active unit (`UnitEntry`)     |
//!
//! Every value ends with a CRC-32 over its table, key and value (`table`), checked before
//! it is decoded: damage is reported for the job its key names, never read back as data.
//! The data file is checked before LMDB maps it (`datafile`).
//!
//! A change of status (`Change::PutRun`, or `Store::update_units` for units) rewrites the
//! job's state, summary, active entry and the units' entries (and subjob groups touched),
//! never its spec or splitter; a job put rewrites the spec and the splitter only
//! when their encoding changed. A job has a dictionary exactly while it has subjob
//! records; the dictionary only grows and its base time never moves. A subjob record
//! leaves out overrides that are its master's split item; a commit that changes a
//! master's splitter first writes them out in the records whose item changes, so every
//! record stays readable whatever happens to its master. Puts beyond the last key of a
//! table append (`MDB_APPEND`), which keeps leaf pages full. A store of format version 1
//! or 2 is upgraded in place when opened, after a copy of it is kept beside it; a newer
//! one is refused.
//!
//! A job is in `active` exactly while its status is active, a unit in `units` exactly
//! while its status is. Every commit is one write transaction; a job put carries the
//! revision its writer read and is refused on a mismatch. The map starts small and
//! doubles when it fills; a map grown by another process is adopted. Readers in other
//! processes are never blocked. The pages of the map a process reads are let go every
//! 8 MiB read (`trim`), so that reading a large store does not keep it all resident.
//!
//! It is not: a cache (see `ganga_monitor::Cache`), nor safe to open from two copies of
//! this crate in one process (the host linking it and also loading it as a plugin):
//! LMDB allows one environment per file per process, and this crate can only enforce
//! that among its own handles.

mod bounds;
mod check;
mod codec;
mod commit;
mod datafile;
mod dump;
mod env;
mod error;
mod group;
mod indices;
mod keys;
mod ordered;
mod parts;
mod store;
mod table;
mod trim;
mod units;
mod upgrade;
mod v1;

#[cfg(feature = "test-hooks")]
pub use crate::store::RecordWrites;
pub use crate::{
    env::ReadStats,
    store::{LmdbOptions, LmdbStore, StoreSpace, TableSpace},
};

/// How many consecutive subjob indices one entry of table `subjobs` holds (see
/// `docs/storage-format.md`), for tests that reach into that table.
#[cfg(feature = "test-hooks")]
pub const SUBJOBS_PER_GROUP: u32 = crate::group::GROUP_SIZE;

/// As a plugin, the store lives in `<home>/store`, or in the directory the plugin's config
/// table names with `path` (relative to the home).
impl ganga_plugin_sdk::StorePlugin for LmdbStore {
    fn create(context: ganga_plugin_sdk::PluginContext) -> Result<Self, String> {
        let dir = match context.config.get("path") {
            None => context.home.join("store"),
            Some(ganga_core::Value::String(path)) => context.home.join(path),
            Some(other) => {
                return Err(format!(
                    "plugin.lmdb.path must be a string (a directory), not {}",
                    other.kind()
                ));
            }
        };
        LmdbStore::open(&dir).map_err(|e| e.to_string())
    }
}

ganga_plugin_sdk::export_store!(LmdbStore, "lmdb");
