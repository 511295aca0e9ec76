//! Checks of the data file before LMDB maps it: LMDB trusts `data.mdb` (a file shorter
//! than its meta page says kills the process with SIGBUS when a page past its end is
//! read; an empty one is taken for a new environment), so the store reads LMDB's two
//! meta pages itself first and refuses, with a sentence saying what to do, a file that
//! is missing, empty, truncated or whose meta pages do not agree with each other.
//!
//! It also keeps the marker that says a store lives in a directory: written once a
//! store opened (so for every store this code has seen), it turns a missing or empty
//! `data.mdb` into an error instead of a new, empty store.

use std::io::Read;
use std::path::{Path, PathBuf};

use ganga_core::StoreError;

/// The name of the marker beside `data.mdb`.
pub(crate) const MARKER: &str = "ganga-store";

/// LMDB's constants (`mdb.c`, 0.9.70): the magic number and data version of a meta page,
/// the page flag of a meta page, the size of a page header.
const MDB_MAGIC: u32 = 0xBEEF_C0DE;
const MDB_DATA_VERSION: u32 = 1;
const P_META: u16 = 0x08;
const PAGE_HEADER: usize = 16;
/// A page number that stands for no page (an empty tree's root).
const P_INVALID: u64 = u64::MAX;
/// What one meta page holds that is read here: page header, then `MDB_meta`.
const META_BYTES: usize = PAGE_HEADER + 136;
/// Deeper trees do not fit in any file: 2^48 pages of 4 KiB.
const MAX_DEPTH: u16 = 48;

/// One of LMDB's two meta pages, as far as it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) page_size: u32,
    pub(crate) map_size: u64,
    pub(crate) last_page: u64,
    pub(crate) txnid: u64,
    /// Depth and root of the free-page tree and of the main tree (the table of tables).
    trees: [(u16, u64); 2],
}

/// How the data file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// No `data.mdb` (and nothing saying there was one): a new store.
    New,
    /// A data file whose meta pages check out: the newer one.
    Existing(Meta),
}

fn damaged(dir: &Path, what: String) -> StoreError {
    let kept: Vec<String> = ["data.mdb.v1-backup", "data.mdb.v2-backup"]
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.exists())
        .map(|path| format!(" ({} is the copy an upgrade kept)", path.display()))
        .collect();
    StoreError::Io(format!(
        "the store in {} cannot be opened: {what}. Restore {} from a backup{}; nothing was \
         changed",
        dir.display(),
        dir.join("data.mdb").display(),
        kept.concat(),
    ))
}

/// Checks `dir/data.mdb` before it is opened.
pub(crate) fn check(dir: &Path) -> Result<Found, StoreError> {
    let data = dir.join("data.mdb");
    let marker = dir.join(MARKER);
    let mut file = match std::fs::File::open(&data) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if marker.exists() || dir.join("lock.mdb").exists() {
                return Err(damaged(
                    dir,
                    format!(
                        "{} is missing, but this directory held a store (it has {}); if it \
                         never held jobs, remove the directory to start a new store",
                        data.display(),
                        if marker.exists() { MARKER } else { "lock.mdb" }
                    ),
                ));
            }
            return Ok(Found::New);
        }
        Err(e) => {
            return Err(StoreError::Io(format!(
                "cannot read {}: {e}",
                data.display()
            )));
        }
    };
    // Another process may be committing meanwhile: a meta page read while LMDB writes it
    // can be torn. So a check that fails is made again a few times before it counts;
    // damage fails every time.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match check_once(dir, &data, &mut file) {
            Ok(meta) => return Ok(Found::Existing(meta)),
            Err(e) if attempt < 5 => {
                tracing::debug!(store = %dir.display(), error = %e, "checking the data file again");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads the meta pages, then the file's length (it only grows: a commit landing between
/// the two makes it longer, never shorter than the meta pages say).
fn check_once(dir: &Path, data: &Path, file: &mut std::fs::File) -> Result<Meta, StoreError> {
    use std::io::Seek;
    file.rewind()
        .map_err(|e| StoreError::Io(format!("cannot read {}: {e}", data.display())))?;
    let mut head = Vec::new();
    // Two meta pages of at most 64 KiB.
    file.take(2 << 16)
        .read_to_end(&mut head)
        .map_err(|e| StoreError::Io(format!("cannot read {}: {e}", data.display())))?;
    let size = file
        .metadata()
        .map_err(|e| StoreError::Io(format!("cannot read the size of {}: {e}", data.display())))?
        .len();
    if size == 0 {
        return Err(damaged(
            dir,
            format!(
                "{} is empty (LMDB would take it for a new store, and job ids would be handed \
                 out again); if the store never held jobs, remove the directory to start a new \
                 store",
                data.display()
            ),
        ));
    }
    let meta = newer_meta(&head)
        .map_err(|what| damaged(dir, format!("{} ({size} bytes): {what}", data.display())))?;
    let needed = (meta.last_page + 1).saturating_mul(u64::from(meta.page_size));
    if size < needed {
        return Err(damaged(
            dir,
            format!(
                "{} is {size} bytes long, but LMDB's meta page says the store uses {} pages of \
                 {} bytes ({needed} bytes): the file was truncated",
                data.display(),
                meta.last_page + 1,
                meta.page_size
            ),
        ));
    }
    Ok(meta)
}

/// The meta page LMDB would use, if both check out and agree.
fn newer_meta(head: &[u8]) -> Result<Meta, String> {
    let first = parse_meta(head, 0).map_err(|e| format!("meta page 0: {e}"))?;
    let psize = first.page_size as usize;
    let second =
        parse_meta(head.get(psize..).unwrap_or(&[]), 1).map_err(|e| format!("meta page 1: {e}"))?;
    if second.page_size != first.page_size {
        return Err(format!(
            "the meta pages disagree on the page size ({} and {})",
            first.page_size, second.page_size
        ));
    }
    // Each commit writes the meta page of its transaction's parity with the next
    // transaction id, so the two always hold consecutive ids (both 0 before the first).
    let (older, newer) = if second.txnid > first.txnid {
        (first, second)
    } else {
        (second, first)
    };
    let consecutive = newer.txnid == older.txnid + 1 || (newer.txnid == 0 && older.txnid == 0);
    let parity_right = first.txnid % 2 == 0 && (second.txnid % 2 == 1 || second.txnid == 0);
    if !consecutive || !parity_right {
        return Err(format!(
            "the meta pages hold transactions {} and {}, which no sequence of commits leaves",
            first.txnid, second.txnid
        ));
    }
    // Pages are never given back to the file system: the last page in use only grows.
    if newer.last_page < older.last_page {
        return Err(format!(
            "the newer meta page says the last page is {}, before the older one's {}",
            newer.last_page, older.last_page
        ));
    }
    for (name, (depth, root)) in ["free pages", "tables"].into_iter().zip(newer.trees) {
        let empty = root == P_INVALID;
        if empty != (depth == 0) || depth > MAX_DEPTH || (!empty && root > newer.last_page) {
            return Err(format!(
                "the tree of {name} has depth {depth} and root page {root}, which the last \
                 page in use ({}) rules out",
                newer.last_page
            ));
        }
    }
    Ok(newer)
}

fn parse_meta(page: &[u8], number: u64) -> Result<Meta, String> {
    let bytes = page
        .get(..META_BYTES)
        .ok_or_else(|| "the file ends before it".to_owned())?;
    let u16_at = |at: usize| u16::from_ne_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |at: usize| u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
    if u64_at(0) != number || u16_at(10) & P_META == 0 {
        return Err("it is not an LMDB meta page".to_owned());
    }
    if u32_at(16) != MDB_MAGIC {
        return Err("it is not an LMDB meta page (wrong magic number)".to_owned());
    }
    if u32_at(20) != MDB_DATA_VERSION {
        return Err(format!("LMDB data version {}, expected 1", u32_at(20)));
    }
    let page_size = u32_at(40);
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Err(format!("page size {page_size} is not one LMDB uses"));
    }
    let map_size = u64_at(32);
    let last_page = u64_at(136);
    if map_size % u64::from(page_size) != 0
        || (last_page + 1).saturating_mul(u64::from(page_size)) > map_size.max(1 << 40)
    {
        return Err(format!(
            "map size {map_size} and last page {last_page} do not fit pages of {page_size} bytes"
        ));
    }
    Ok(Meta {
        page_size,
        map_size,
        last_page,
        txnid: u64_at(144),
        trees: [(u16_at(46), u64_at(80)), (u16_at(94), u64_at(128))],
    })
}

/// Writes the marker that says `dir` holds a store, unless it is there.
pub(crate) fn mark(dir: &Path) -> Result<(), StoreError> {
    let marker: PathBuf = dir.join(MARKER);
    if marker.exists() {
        return Ok(());
    }
    std::fs::write(
        &marker,
        "This directory holds a ganga store (LMDB: data.mdb, lock.mdb).\n\
         While this file is here, a missing or empty data.mdb is an error, never a new store:\n\
         restore data.mdb from a backup, or remove the whole directory to start afresh.\n",
    )
    .map_err(|e| StoreError::Io(format!("cannot write {}: {e}", marker.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_page(number: u64, txnid: u64, last_page: u64) -> Vec<u8> {
        let mut page = vec![0u8; 4096];
        page[..8].copy_from_slice(&number.to_ne_bytes());
        page[10..12].copy_from_slice(&P_META.to_ne_bytes());
        page[16..20].copy_from_slice(&MDB_MAGIC.to_ne_bytes());
        page[20..24].copy_from_slice(&1u32.to_ne_bytes());
        page[32..40].copy_from_slice(&(64u64 << 20).to_ne_bytes());
        page[40..44].copy_from_slice(&4096u32.to_ne_bytes());
        page[80..88].copy_from_slice(&P_INVALID.to_ne_bytes());
        page[94..96].copy_from_slice(&1u16.to_ne_bytes());
        page[128..136].copy_from_slice(&2u64.to_ne_bytes());
        page[136..144].copy_from_slice(&last_page.to_ne_bytes());
        page[144..152].copy_from_slice(&txnid.to_ne_bytes());
        page
    }

    #[test]
    fn meta_pages_must_hold_consecutive_transactions() {
        let mut head = meta_page(0, 6, 9);
        head.extend(meta_page(1, 5, 8));
        let meta = newer_meta(&head).expect("consistent meta pages");
        assert_eq!((meta.txnid, meta.last_page), (6, 9));
        let mut stale = meta_page(0, 4, 7);
        stale.extend(meta_page(1, 5, 8));
        assert_eq!(newer_meta(&stale).map(|m| m.txnid), Ok(5));
        let mut wrong = meta_page(0, 6, 9);
        wrong.extend(meta_page(1, 9, 8));
        assert!(newer_meta(&wrong).is_err());
        let mut shrunk = meta_page(0, 6, 7);
        shrunk.extend(meta_page(1, 5, 8));
        assert!(newer_meta(&shrunk).is_err());
        let mut bad_root = meta_page(0, 6, 1);
        bad_root.extend(meta_page(1, 5, 1));
        assert!(newer_meta(&bad_root).is_err());
        assert!(newer_meta(&head[..100]).is_err());
    }
}
