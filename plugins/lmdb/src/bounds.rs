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
}

thread_local! {
    /// The bounds of the store whose transaction runs on this thread.
    static CURRENT: RefCell<Option<Arc<MapBounds>>> = const { RefCell::new(None) };
}

impl MapBounds {
    pub(crate) fn new(data: &Path) -> MapBounds {
        MapBounds {
            base: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            file_len: AtomicU64::new(0),
            file: File::open(data).ok(),
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

    /// Makes these the bounds checked on this thread until the returned guard goes.
    pub(crate) fn enter(self: &Arc<Self>) -> Entered {
        let previous = CURRENT.with(|c| c.replace(Some(self.clone())));
        Entered(previous)
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
