//! Puts that keep leaf pages full.
//!
//! A put whose key sorts after every key of its table is done with `MDB_APPEND`: LMDB
//! then goes straight to the last leaf and, when that leaf is full, starts a new one
//! instead of splitting it, so the leaf it leaves behind is full. That is the common case
//! (new jobs get ascending ids; a new job's subjobs are put in index order; the upgrade
//! rewrites whole tables in key order). Any other put is an ordinary one.
//! `docs/storage-format.md` has the measurements.

use heed::{PutFlags, RoTxn, RwTxn};

use crate::env::Table;
use crate::error::{Doing, Failure};

/// Puts into one table within one write transaction, remembering the table's last key.
pub(crate) struct OrderedPuts {
    table: Table,
    /// The table's last key, once looked up; `Some(None)` for an empty table.
    last: Option<Option<Vec<u8>>>,
    /// Values are sealed with their checksum (format 3); not when an older format is
    /// written (the upgrade from format 1 writes format 2).
    sealed: bool,
}

impl OrderedPuts {
    pub(crate) fn new(table: Table) -> OrderedPuts {
        OrderedPuts {
            table,
            last: None,
            sealed: true,
        }
    }

    /// Puts of values as they are given (records of format 2).
    pub(crate) fn unsealed(table: Table) -> OrderedPuts {
        OrderedPuts {
            table,
            last: None,
            sealed: false,
        }
    }

    /// Whether `key` sorts after every key of the table (so is not in it).
    pub(crate) fn is_after_last(&mut self, txn: &RoTxn, key: &[u8]) -> Result<bool, Failure> {
        Ok(self.last_key(txn)?.as_deref().is_none_or(|last| key > last))
    }

    fn last_key(&mut self, txn: &RoTxn) -> Result<&Option<Vec<u8>>, Failure> {
        if self.last.is_none() {
            let found = self.table.last_key(txn)?;
            self.last = Some(found);
        }
        Ok(self.last.get_or_insert(None))
    }

    /// Writes `value` under `key`, appending when `key` is beyond the last key.
    pub(crate) fn put(
        &mut self,
        txn: &mut RwTxn,
        key: &[u8],
        value: &[u8],
        doing: impl FnOnce() -> String,
    ) -> Result<(), Failure> {
        self.last_key(txn)?;
        let last = self.last.get_or_insert(None);
        let sealed;
        let value = if self.sealed {
            sealed = crate::table::seal(self.table.name, key, value);
            &sealed[..]
        } else {
            value
        };
        if last.as_deref().is_none_or(|last| key > last) {
            self.table
                .db
                .put_with_flags(txn, PutFlags::APPEND, key, value)
                .doing(&doing())?;
            match last {
                Some(last) => {
                    last.clear();
                    last.extend_from_slice(key);
                }
                None => *last = Some(key.to_vec()),
            }
        } else {
            self.table.db.put(txn, key, value).doing(&doing())?;
        }
        Ok(())
    }

    /// To be called after deleting from the table: the last key may have gone.
    pub(crate) fn forget_last(&mut self) {
        self.last = None;
    }
}
