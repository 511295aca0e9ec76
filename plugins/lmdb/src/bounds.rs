//! Keeping reads of damaged entries inside the data file.
//!
//! LMDB hands out keys and values as slices of its memory map, with the lengths its
//! pages say. A damaged length (a changed byte in a node of a leaf page) makes a slice
//! that runs past the end of `data.mdb`: reading it (to check its checksum) would kill
//! the process with SIGBUS, or SIGSEGV past the map. So before anything reads a key or
//! a value, it is checked to lie inside the file's bytes of the map; one that does not is
//! damage, reported as such. Slices outside the map altogether are pages a write
//! transaction made in memory (LMDB's dirty pages), which this process wrote itself.
//!
//! The map's address is not given by LMDB (only for `MDB_FIXEDMAP`), so it is found in
//! `/proc/self/maps`: the shared, read-only mapping of this store's `data.mdb` (its
//! inode). Linux only; elsewhere, or if the mapping is not found, nothing is checked.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Where the map of one store's data file is, and how long the file is.
pub(crate) struct MapBounds {
    /// The map's first address; 0 when not known (nothing is checked then).
    base: AtomicUsize,
    /// The map's length.
    len: AtomicUsize,
    /// The data file's length when last looked at: it only grows while the store is
    /// open (LMDB never shrinks it), so a slice past it is looked at again before it is
    /// called damaged.
    file_len: AtomicU64,
    file: Option<File>,
    /// LMDB's page size (0 while not known: pages are not checked then).
    page_size: AtomicUsize,
}

thread_local! {
    /// The bounds of the store whose transaction runs on this thread.
    static CURRENT: RefCell<Option<Arc<MapBounds>>> = const { RefCell::new(None) };
    /// The leaf pages checked in the transaction running on this thread.
    static CHECKED: RefCell<HashSet<usize>> = RefCell::new(HashSet::new());
}

impl MapBounds {
    pub(crate) fn new(data: &Path) -> MapBounds {
        MapBounds {
            base: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            file_len: AtomicU64::new(0),
            file: File::open(data).ok(),
            page_size: AtomicUsize::new(0),
        }
    }

    /// LMDB's page size, once known.
    pub(crate) fn set_page_size(&self, page_size: usize) {
        if page_size.is_power_of_two() && page_size >= 512 {
            self.page_size.store(page_size, Ordering::Relaxed);
        }
    }

    /// Finds the map again (after it was opened or resized: it may have moved). No
    /// transaction of this process may be open.
    pub(crate) fn locate(&self, data: &Path) {
        let (base, len) = find_map(data).unwrap_or((0, 0));
        self.base.store(base, Ordering::Relaxed);
        self.len.store(len, Ordering::Relaxed);
        self.refresh_file_len();
    }

    fn refresh_file_len(&self) -> u64 {
        let len = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        self.file_len.store(len, Ordering::Relaxed);
        len
    }

    /// Whether `bytes` lie inside the file's part of the map (or outside the map).
    fn allows(&self, bytes: &[u8]) -> bool {
        let base = self.base.load(Ordering::Relaxed);
        if base == 0 {
            return true;
        }
        let start = bytes.as_ptr() as usize;
        let map_end = base.saturating_add(self.len.load(Ordering::Relaxed));
        if start < base || start >= map_end {
            return true;
        }
        let end = (start - base) as u64 + bytes.len() as u64;
        end <= self.file_len.load(Ordering::Relaxed) || end <= self.refresh_file_len()
    }

    /// Makes these the bounds checked on this thread until the returned guard goes
    /// (a transaction: pages checked are remembered until then).
    pub(crate) fn enter(self: &Arc<Self>) -> Entered {
        let previous = CURRENT.with(|c| c.replace(Some(self.clone())));
        CHECKED.with(|c| c.borrow_mut().clear());
        Entered(previous)
    }

    /// The page of the map holding the byte at `ptr`, if it is in the file's part of
    /// the map and its size is known: its address and number.
    fn page_of(&self, ptr: usize) -> Option<(usize, u64)> {
        let base = self.base.load(Ordering::Relaxed);
        let psize = self.page_size.load(Ordering::Relaxed);
        if base == 0 || psize == 0 || ptr < base {
            return None;
        }
        let offset = ptr - base;
        if offset >= self.len.load(Ordering::Relaxed)
            || offset as u64 >= self.file_len.load(Ordering::Relaxed)
        {
            return None;
        }
        let number = offset / psize;
        Some((base + number * psize, number as u64))
    }
}

/// While held, a thread's reads are checked against a store's bounds.
pub(crate) struct Entered(Option<Arc<MapBounds>>);

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Whether `bytes`, a key or value LMDB handed out, may be read.
pub(crate) fn readable(bytes: &[u8]) -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_none_or(|b| b.allows(bytes)))
}

/// LMDB's layout of a page (`mdb.c`, 0.9): a 16-byte header (page number, pad, flags,
/// lower and upper bounds of the free space; for an overflow page, the number of pages),
/// then 2-byte offsets of the nodes; each leaf node an 8-byte header (data size in two
/// halves, flags, key size), the key, then the data (or, `F_BIGDATA`, the number of the
/// overflow page holding it).
const PAGE_HEADER: usize = 16;
const NODE_HEADER: usize = 8;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
const F_BIGDATA: u16 = 0x01;

/// Checks the pages holding a key and its value, as LMDB handed them out, before
/// anything reads more of them (LMDB itself trusts them: a node whose flags or sizes
/// were changed makes it read where it should not, and crash): the key's leaf page must
/// be one LMDB could have written (its nodes inside it, packed, with plain flags, keys in
/// order), and a value outside it must start an overflow page long enough for it. A
/// page is checked once per transaction; pages outside the map (a write transaction's
/// own) are not.
pub(crate) fn check_pages(key: Option<&[u8]>, value: &[u8]) -> Result<(), String> {
    CURRENT.with(|c| {
        let current = c.borrow();
        let Some(bounds) = current.as_ref() else {
            return Ok(());
        };
        let psize = bounds.page_size.load(Ordering::Relaxed);
        let leaf_checked = |page: (usize, u64)| -> Result<(), String> {
            if CHECKED.with(|c| c.borrow_mut().insert(page.0)) {
                // SAFETY: `page_of` found the page inside the file's part of the map,
                // which the caller's transaction keeps mapped and unchanged.
                let bytes = unsafe { std::slice::from_raw_parts(page.0 as *const u8, psize) };
                check_leaf(bytes, page.1)?;
            }
            Ok(())
        };
        // A key LMDB handed out is always in its leaf.
        if let Some(page) = key.and_then(|k| bounds.page_of(k.as_ptr() as usize)) {
            leaf_checked(page)?;
        }
        let Some((start, number)) = bounds.page_of(value.as_ptr() as usize) else {
            return Ok(());
        };
        // SAFETY: as above, for the header of the value's page.
        let header = unsafe { std::slice::from_raw_parts(start as *const u8, PAGE_HEADER) };
        let overflow = u16_at(header, 10) & P_OVERFLOW != 0;
        if !overflow {
            return leaf_checked((start, number));
        }
        let pages = u32::from_ne_bytes([header[12], header[13], header[14], header[15]]);
        if value.as_ptr() as usize != start + PAGE_HEADER
            || u64_at(header, 0) != number
            || (pages as usize).saturating_mul(psize) < PAGE_HEADER + value.len()
        {
            return Err(format!(
                "its value's overflow page {number} is not one LMDB wrote for it"
            ));
        }
        Ok(())
    })
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([bytes[at], bytes[at + 1]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_ne_bytes(b)
}

fn check_leaf(page: &[u8], number: u64) -> Result<(), String> {
    let psize = page.len();
    let bad = |what: String| Err(format!("its leaf page {number} is damaged: {what}"));
    if u64_at(page, 0) != number {
        return bad(format!("it says it is page {}", u64_at(page, 0)));
    }
    let flags = u16_at(page, 10);
    if flags & !0x10 != P_LEAF {
        return bad(format!("its flags are {flags:#x}"));
    }
    let (lower, upper) = (usize::from(u16_at(page, 12)), usize::from(u16_at(page, 14)));
    if lower < PAGE_HEADER
        || lower > upper
        || upper > psize
        || !(lower - PAGE_HEADER).is_multiple_of(2)
    {
        return bad(format!("its free space runs from {lower} to {upper}"));
    }
    let mut used = 0;
    let mut last_key: Option<&[u8]> = None;
    for k in 0..(lower - PAGE_HEADER) / 2 {
        let at = usize::from(u16_at(page, PAGE_HEADER + 2 * k));
        if at < upper || at + NODE_HEADER > psize {
            return bad(format!("node {k} is at {at}, outside its nodes"));
        }
        let dsize = usize::from(u16_at(page, at)) | (usize::from(u16_at(page, at + 2)) << 16);
        let nflags = u16_at(page, at + 4);
        let ksize = usize::from(u16_at(page, at + 6));
        let data = match nflags {
            0 => dsize,
            F_BIGDATA => 8,
            other => return bad(format!("node {k} has flags {other:#x}")),
        };
        let size = NODE_HEADER + ksize + data;
        if at + size > psize {
            return bad(format!(
                "node {k} of {size} bytes at {at} runs past the page"
            ));
        }
        let key = &page[at + NODE_HEADER..at + NODE_HEADER + ksize];
        if last_key.is_some_and(|last| key <= last) {
            return bad(format!("the key of node {k} is out of order"));
        }
        last_key = Some(key);
        used += size + (size & 1);
    }
    if used != psize - upper {
        return bad(format!(
            "its nodes take {used} bytes, but its free space ends at {upper}"
        ));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn find_map(data: &Path) -> Option<(usize, usize)> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(data).ok()?.ino();
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let mut found = None;
    for line in maps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(range), Some(perms), Some(offset), Some(_dev), Some(ino)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        if ino.parse::<u64>().ok() != Some(inode) || !perms.ends_with('s') {
            continue;
        }
        let (start, end) = range.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        let offset = usize::from_str_radix(offset, 16).ok()?;
        if found.is_some() {
            // More than one mapping of the file: which is the map is not clear.
            return None;
        }
        found = Some((start.checked_sub(offset)?, end - start + offset));
    }
    found
}

#[cfg(not(target_os = "linux"))]
fn find_map(_data: &Path) -> Option<(usize, usize)> {
    None
}
