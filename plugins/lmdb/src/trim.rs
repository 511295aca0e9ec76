//! Keeping what the store reads from staying in the process's memory.
//!
//! LMDB reads through a memory map of the data file: every page a read touches stays
//! mapped into the process (it counts in its resident memory, RSS) until the map is
//! unmapped, so reading a million subjobs left the whole data file resident. The store
//! counts about how many bytes of the map each call maps in ([`looked_up`], [`scanned`]);
//! once more than a threshold has been since the last trim, it tells the kernel
//! (`madvise(MADV_DONTNEED)`) that the process no longer needs the pages of the map.
//! LMDB maps the file read-only and shared (no `MDB_WRITEMAP`), so that only drops this
//! process's page-table entries: the pages stay in the operating system's page cache, and
//! the next read of one (by any thread, a transaction open meanwhile included) faults it
//! back in from there, unchanged. Nothing is written, nothing is lost.
//!
//! The map's address is not given by LMDB (`mdb_env_info` reports it only for
//! `MDB_FIXEDMAP`), so it is found from a pointer into the map (a value read in a read
//! transaction) and `/proc/self/maps`: the mapping holding it, which must be a shared,
//! non-writable mapping of this store's `data.mdb` (same inode), and its file offset give
//! the map's start. Only mappings of that file starting there are advised; anything that
//! does not check out is left alone (a trim never touches anonymous memory, where
//! `MADV_DONTNEED` would discard data). Linux only; elsewhere a trim does nothing.

use std::cell::Cell;
use std::path::Path;

/// Trim once this much of the map has been mapped in since the last trim, unless the
/// store is opened with another threshold.
pub(crate) const DEFAULT_THRESHOLD: u64 = 8 << 20;

/// What reading one byte of the map can map in: the kernel maps the pages around a page
/// that faults, up to an aligned window of this size (`fault_around_bytes`, 64 KiB by
/// default), when they are in the page cache, as a store's pages usually are.
const WINDOW: usize = 64 << 10;

/// What a point lookup that found nothing counts: the page it read.
const PAGE: u64 = 4096;

thread_local! {
    /// Bytes of the map the current call on this thread may have mapped in (calls run a
    /// transaction on the thread that called them).
    static READ: Cell<u64> = const { Cell::new(0) };
    /// The window the last bytes counted on this thread lie in.
    static LAST_WINDOW: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Counts bytes of the map just read (a key or value borrowed from a transaction): a
/// whole [`WINDOW`] for each window they reach other than the last one counted. So a scan
/// of consecutive entries counts about the bytes it reads, and one whose entries lie
/// apart in the file (a table written between others) counts what it maps in.
pub(crate) fn scanned(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let first = bytes.as_ptr() as usize / WINDOW;
    let last = (bytes.as_ptr() as usize + bytes.len() - 1) / WINDOW;
    let mut count = 0u64;
    LAST_WINDOW.with(|w| {
        for window in first..=last {
            if window != w.get() {
                count += WINDOW as u64;
                w.set(window);
            }
        }
    });
    READ.with(|r| r.set(r.get().saturating_add(count)));
}

/// Counts a lookup of one key that found `value` (or nothing: the page it read).
pub(crate) fn looked_up(value: Option<&[u8]>) {
    match value {
        Some(v) if !v.is_empty() => scanned(v),
        _ => READ.with(|r| r.set(r.get().saturating_add(PAGE))),
    }
}

/// The bytes counted on this thread since the last call, and starts again from zero.
pub(crate) fn take() -> u64 {
    READ.with(|r| r.replace(0))
}

/// Drops this process's mappings of the pages of the map of `data` (the store's
/// `data.mdb`) that starts below `probe`, a pointer into it. Returns how many bytes of
/// mappings were advised.
#[cfg(target_os = "linux")]
pub(crate) fn trim(data: &Path, probe: *const u8) -> Result<usize, String> {
    use std::os::unix::fs::MetadataExt;

    let inode = std::fs::metadata(data)
        .map_err(|e| format!("cannot stat {}: {e}", data.display()))?
        .ino();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| format!("cannot read /proc/self/maps: {e}"))?;
    let mappings: Vec<Mapping> = maps.lines().filter_map(Mapping::parse).collect();
    let probe = probe as usize;
    let holding = mappings
        .iter()
        .find(|m| m.start <= probe && probe < m.end)
        .ok_or("no mapping holds a value just read")?;
    if holding.inode != inode || !holding.is_shared_read_only() {
        return Err(format!(
            "the mapping holding a value just read is not a shared read-only mapping of {} \
             ({:x}-{:x}, inode {}, {})",
            data.display(),
            holding.start,
            holding.end,
            holding.inode,
            holding.perms
        ));
    }
    let base = holding
        .start
        .checked_sub(holding.offset)
        .ok_or("the mapping's offset is beyond its address")?;
    let mut advised = 0;
    for m in mappings.iter().filter(|m| {
        m.inode == inode && m.is_shared_read_only() && m.start.checked_sub(m.offset) == Some(base)
    }) {
        // SAFETY: [start, end) is a whole mapping of the kernel's list, a shared read-only
        // mapping of the store's data file (checked above): MADV_DONTNEED only drops
        // page-table entries of it, and any later access faults the same file pages back in
        // from the page cache. The caller holds the environment's gate, so LMDB cannot
        // unmap or remap it meanwhile.
        let done = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        if done != 0 {
            return Err(format!(
                "madvise(MADV_DONTNEED) failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        advised += m.end - m.start;
    }
    Ok(advised)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn trim(_data: &Path, _probe: *const u8) -> Result<usize, String> {
    Ok(0)
}

/// A line of `/proc/self/maps`: `start-end perms offset dev inode path`.
#[cfg(target_os = "linux")]
struct Mapping<'a> {
    start: usize,
    end: usize,
    perms: &'a str,
    offset: usize,
    inode: u64,
}

#[cfg(target_os = "linux")]
impl<'a> Mapping<'a> {
    fn parse(line: &'a str) -> Option<Mapping<'a>> {
        let mut fields = line.split_ascii_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let perms = fields.next()?;
        let offset = fields.next()?;
        let _dev = fields.next()?;
        let inode = fields.next()?;
        Some(Mapping {
            start: usize::from_str_radix(start, 16).ok()?,
            end: usize::from_str_radix(end, 16).ok()?,
            perms,
            offset: usize::from_str_radix(offset, 16).ok()?,
            inode: inode.parse().ok()?,
        })
    }

    /// `r--s` (readable, not writable, shared), as LMDB maps without `MDB_WRITEMAP`.
    fn is_shared_read_only(&self) -> bool {
        let p = self.perms.as_bytes();
        p.len() == 4 && p[0] == b'r' && p[1] == b'-' && p[3] == b's'
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn lines_of_proc_maps_parse() {
        let m = Mapping::parse(
            "7f0000000000-7f0000400000 r--s 00010000 fd:01 123456    /tmp/x/data.mdb",
        );
        let m = m.expect("a mapping");
        assert_eq!(
            (m.start, m.end, m.offset, m.inode),
            (0x7f00_0000_0000, 0x7f00_0040_0000, 0x10000, 123_456)
        );
        assert!(m.is_shared_read_only());
        let anon = Mapping::parse("55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0 [heap]");
        assert!(anon.is_some_and(|m| !m.is_shared_read_only()));
        assert!(Mapping::parse("garbage").is_none());
    }
}
