//! A table of the store, and the checksum on every value it holds (format 3).
//!
//! LMDB keeps no checksums: a byte of `data.mdb` changed outside it (a failing disk, a
//! bad copy) is read back as it is. So every value the store writes ends with four bytes
//! of CRC-32 over the table's name, the key and the value, and every value read is
//! checked before anything decodes it: a value that was changed, a key that was changed
//! (its value no longer matches it), and a value found in another table's page (its
//! checksum names another table) are all reported as damage, [`Failure::Damaged`], for
//! the job the key names. A lookup that finds nothing looks at the keys around the one
//! it looked for, so that a key changed by damage does not pass for a job that was never
//! stored; a scan checks that keys come in order. `docs/storage-format.md` says what this
//! does not catch.

use std::ops::{Bound, RangeBounds};

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn};

use crate::error::{Doing, Failure};

/// The bytes of checksum at the end of every value.
pub(crate) const CHECKSUM_BYTES: usize = 4;

/// One named LMDB database of the store. Values are sealed with their checksum on
/// the way in and checked on the way out; callers see the value without it.
#[derive(Clone, Copy)]
pub(crate) struct Table {
    pub(crate) db: Database<'static, Bytes, Bytes>,
    pub(crate) name: &'static str,
}

/// The checksum of a value of `table` under `key`.
pub(crate) fn checksum(table: &str, key: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(table.as_bytes());
    // Separates the name from the key, so that no name ++ key can pass for another.
    h.update(&[0]);
    h.update(&(key.len() as u32).to_be_bytes());
    h.update(key);
    h.update(body);
    h.finalize()
}

/// `body` with its checksum after it: what is stored.
pub(crate) fn seal(table: &str, key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(body.len() + CHECKSUM_BYTES);
    value.extend_from_slice(body);
    value.extend_from_slice(&checksum(table, key, body).to_be_bytes());
    value
}

/// The body of a stored value, if its checksum matches; else why not.
pub(crate) fn open<'v>(table: &str, key: &[u8], value: &'v [u8]) -> Result<&'v [u8], String> {
    let Some(split) = value.len().checked_sub(CHECKSUM_BYTES) else {
        return Err(format!(
            "a value of {} bytes, too short to hold its checksum",
            value.len()
        ));
    };
    let (body, sum) = value.split_at(split);
    let stored = u32::from_be_bytes(sum.try_into().unwrap_or([0; 4]));
    if checksum(table, key, body) == stored {
        Ok(body)
    } else {
        Err(format!(
            "the checksum of its {} bytes does not match: the value or its key was changed \
             outside LMDB",
            value.len()
        ))
    }
}

impl Table {
    fn damaged(&self, key: &[u8], detail: String) -> Failure {
        Failure::Damaged {
            table: self.name,
            key: key.to_vec(),
            detail,
        }
    }

    /// Refuses a key or value that runs past the data file ([`crate::bounds`]): reading
    /// it would crash the process. `named` is the key the damage is reported under.
    fn in_file(&self, named: &[u8], key: Option<&[u8]>, value: &[u8]) -> Result<(), Failure> {
        if key.is_none_or(crate::bounds::readable) && crate::bounds::readable(value) {
            return crate::bounds::check_pages(key, value).map_err(|d| self.damaged(named, d));
        }
        let key = key.unwrap_or_default();
        let named = if crate::bounds::readable(named) {
            named
        } else {
            &[][..]
        };
        Err(self.damaged(
            named,
            format!(
                "LMDB gives an entry of {} + {} bytes that runs past the end of data.mdb: a \
                 page of the table is damaged",
                key.len(),
                value.len()
            ),
        ))
    }

    fn reading(&self) -> String {
        format!("reading table {}", self.name)
    }

    /// The value under `key`, checked. A lookup that finds nothing checks the entries
    /// beside where `key` would be: if one of them is `key` after all, or is damaged, the
    /// absence is damage too.
    pub(crate) fn get<'t>(&self, txn: &'t RoTxn, key: &[u8]) -> Result<Option<&'t [u8]>, Failure> {
        match self.db.get(txn, key).doing(&self.reading())? {
            Some(value) => {
                crate::trim::looked_up(Some(value));
                self.in_file(key, None, value)?;
                open(self.name, key, value)
                    .map(Some)
                    .map_err(|d| self.damaged(key, d))
            }
            None => {
                crate::trim::looked_up(None);
                self.verify_absent(txn, key)?;
                Ok(None)
            }
        }
    }

    /// Checks the neighbours of a key a lookup did not find.
    fn verify_absent(&self, txn: &RoTxn, key: &[u8]) -> Result<(), Failure> {
        let after = (Bound::Included(key), Bound::Unbounded);
        if let Some(entry) = self.db.range(txn, &after).doing(&self.reading())?.next() {
            let (k, v) = entry.doing(&self.reading())?;
            self.in_file(key, Some(k), v)?;
            if k == key {
                return Err(self.damaged(
                    key,
                    "a lookup did not find it but a scan does: a page of the table is damaged"
                        .to_owned(),
                ));
            }
            open(self.name, k, v).map_err(|d| self.damaged(k, d))?;
        }
        let before = (Bound::Unbounded, Bound::Excluded(key));
        if let Some(entry) = self
            .db
            .rev_range(txn, &before)
            .doing(&self.reading())?
            .next()
        {
            let (k, v) = entry.doing(&self.reading())?;
            self.in_file(key, Some(k), v)?;
            if k >= key {
                return Err(self.damaged(
                    key,
                    format!(
                        "the entry before it has a key that does not sort before it ({}): a \
                         page of the table is damaged",
                        crate::dump::hex(k)
                    ),
                ));
            }
            open(self.name, k, v).map_err(|d| self.damaged(k, d))?;
        }
        Ok(())
    }

    /// Writes `body` under `key`, sealed.
    pub(crate) fn put(&self, txn: &mut RwTxn, key: &[u8], body: &[u8]) -> Result<(), Failure> {
        self.db
            .put(txn, key, &seal(self.name, key, body))
            .doing(&format!("writing table {}", self.name))
    }

    /// Writes a value as it is, unsealed: for records of older formats and tests.
    pub(crate) fn put_raw(&self, txn: &mut RwTxn, key: &[u8], value: &[u8]) -> Result<(), Failure> {
        self.db
            .put(txn, key, value)
            .doing(&format!("writing table {}", self.name))
    }

    pub(crate) fn delete(&self, txn: &mut RwTxn, key: &[u8]) -> Result<bool, Failure> {
        self.db
            .delete(txn, key)
            .doing(&format!("deleting from table {}", self.name))
    }

    pub(crate) fn delete_range<R: RangeBounds<[u8]>>(
        &self,
        txn: &mut RwTxn,
        range: &R,
    ) -> Result<usize, Failure> {
        self.db
            .delete_range(txn, range)
            .doing(&format!("deleting from table {}", self.name))
    }

    pub(crate) fn clear(&self, txn: &mut RwTxn) -> Result<(), Failure> {
        self.db
            .clear(txn)
            .doing(&format!("emptying table {}", self.name))
    }

    pub(crate) fn len(&self, txn: &RoTxn) -> Result<u64, Failure> {
        self.db
            .len(txn)
            .doing(&format!("counting table {}", self.name))
    }

    pub(crate) fn stat(&self, txn: &RoTxn) -> Result<heed::DatabaseStat, Failure> {
        self.db
            .stat(txn)
            .doing(&format!("reading the statistics of table {}", self.name))
    }

    /// The table's last key (its value unchecked: only where to append is asked).
    pub(crate) fn last_key(&self, txn: &RoTxn) -> Result<Option<Vec<u8>>, Failure> {
        Ok(self
            .db
            .last(txn)
            .doing(&format!("finding the last key of table {}", self.name))?
            .map(|(k, _)| k.to_vec()))
    }

    /// The value under `key` as stored, unchecked: for records of older formats.
    pub(crate) fn get_raw<'t>(
        &self,
        txn: &'t RoTxn,
        key: &[u8],
    ) -> Result<Option<&'t [u8]>, Failure> {
        self.db.get(txn, key).doing(&self.reading())
    }

    /// Every entry, checked, in key order; once the scan is done, the number of entries
    /// is compared with LMDB's count of them.
    pub(crate) fn iter<'t>(&self, txn: &'t RoTxn) -> Result<Entries<'t>, Failure> {
        let expected = self.len(txn)?;
        Ok(Entries {
            table: *self,
            inner: Inner::All(self.db.iter(txn).doing(&self.reading())?),
            last: None,
            seen: 0,
            expected: Some(expected),
        })
    }

    /// The entries with keys in `range`, checked, in key order.
    pub(crate) fn range<'t, R: RangeBounds<[u8]>>(
        &self,
        txn: &'t RoTxn,
        range: &R,
    ) -> Result<Entries<'t>, Failure> {
        Ok(Entries {
            table: *self,
            inner: Inner::Range(self.db.range(txn, range).doing(&self.reading())?),
            last: None,
            seen: 0,
            expected: None,
        })
    }

    /// Every entry as stored, unchecked: for records of older formats.
    pub(crate) fn iter_raw<'t>(
        &self,
        txn: &'t RoTxn,
    ) -> Result<heed::RoIter<'t, Bytes, Bytes>, Failure> {
        self.db.iter(txn).doing(&self.reading())
    }

    /// The entries with keys in `range` as stored, unchecked.
    pub(crate) fn range_raw<'t, R: RangeBounds<[u8]>>(
        &self,
        txn: &'t RoTxn,
        range: &R,
    ) -> Result<heed::RoRange<'t, Bytes, Bytes>, Failure> {
        self.db.range(txn, range).doing(&self.reading())
    }
}

enum Inner<'t> {
    All(heed::RoIter<'t, Bytes, Bytes>),
    Range(heed::RoRange<'t, Bytes, Bytes>),
}

/// Checked entries of a scan: `(key, value without its checksum)`, or the damage found
/// at an entry (the scan goes on after it).
pub(crate) struct Entries<'t> {
    table: Table,
    inner: Inner<'t>,
    last: Option<&'t [u8]>,
    seen: u64,
    /// LMDB's count of the table's entries, for a scan of all of them.
    expected: Option<u64>,
}

impl<'t> Iterator for Entries<'t> {
    type Item = Result<(&'t [u8], &'t [u8]), Failure>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = match &mut self.inner {
            Inner::All(it) => it.next(),
            Inner::Range(it) => it.next(),
        };
        let Some(next) = next else {
            // A page whose entries went missing leaves fewer than LMDB counts.
            let expected = self.expected.take()?;
            if expected != self.seen {
                return Some(Err(Failure::Damaged {
                    table: self.table.name,
                    key: Vec::new(),
                    detail: format!(
                        "LMDB counts {expected} entries in it but a scan finds {}: a page of \
                         the table is damaged",
                        self.seen
                    ),
                }));
            }
            return None;
        };
        let (key, value) = match next.doing(&self.table.reading()) {
            Ok(kv) => kv,
            Err(e) => return Some(Err(e)),
        };
        self.seen += 1;
        if let Err(e) = self.table.in_file(key, Some(key), value) {
            return Some(Err(e));
        }
        crate::trim::scanned(value);
        if let Some(last) = self.last
            && key <= last
        {
            return Some(Err(self.table.damaged(
                key,
                format!(
                    "a scan finds it after {}, which does not sort before it: a page of the \
                     table is damaged",
                    crate::dump::hex(last)
                ),
            )));
        }
        self.last = Some(key);
        Some(
            open(self.table.name, key, value)
                .map(|body| (key, body))
                .map_err(|d| self.table.damaged(key, d)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_and_any_change_is_caught() {
        let sealed = seal("jobs", b"key", b"body");
        assert_eq!(open("jobs", b"key", &sealed), Ok(&b"body"[..]));
        assert!(open("specs", b"key", &sealed).is_err(), "another table");
        assert!(open("jobs", b"kez", &sealed).is_err(), "another key");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            assert!(open("jobs", b"key", &bad).is_err(), "byte {i}");
        }
        assert!(open("jobs", b"key", b"abc").is_err());
    }
}
