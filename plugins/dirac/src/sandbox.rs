//! Sandboxes: the tar.bz2 archives DIRAC moves files in.
//!
//! Input sandboxes are packed deterministically (entries sorted, owner 0, mtime 0, mode
//! 0644 or 0755), so the same files give the same bytes and the same sha256, and DiracX
//! answers that it has them already instead of taking them again.
//!
//! Output sandboxes come from the worker node: they are unpacked as untrusted input. Only
//! regular files and directories are written, only below the destination; an entry with an
//! absolute path or `..`, a link, a device or a fifo is skipped and reported, a path
//! through an existing symlink is never followed, and the total size and entry count are
//! bounded.

use std::fs;
use std::io::{self, Read, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};

use sha2::Digest as _;

/// DiracX refuses sandboxes above 100 MiB.
pub(crate) const MAX_SANDBOX_BYTES: u64 = 100 * 1024 * 1024;

/// What the server calls the format.
pub(crate) const FORMAT: &str = "tar.bz2";

/// A packed input sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packed {
    pub(crate) bytes: Vec<u8>,
    /// sha256 of `bytes`, lowercase hex.
    pub(crate) checksum: String,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Packs `files` (each under its own file name; a directory with its contents) and
/// `extra` (name, contents, executable) into a tar.bz2. Errors name the file.
pub(crate) fn pack(files: &[PathBuf], extra: &[(&str, &[u8], bool)]) -> Result<Packed, String> {
    let mut entries: Vec<(String, Source)> = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("input file {}: no usable file name", path.display()))?
            .to_owned();
        let meta = fs::metadata(path).map_err(|e| format!("input file {}: {e}", path.display()))?;
        if meta.is_dir() {
            collect_dir(path, &name, &mut entries)?;
        } else if meta.is_file() {
            entries.push((name, Source::File(path.clone(), executable(&meta))));
        } else {
            return Err(format!(
                "input file {}: not a regular file or directory",
                path.display()
            ));
        }
    }
    for (name, data, exec) in extra {
        entries.push(((*name).to_owned(), Source::Bytes(data.to_vec(), *exec)));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("two input files are both called `{}`", w[0].0));
    }

    let encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    let mut tar = tar::Builder::new(encoder);
    tar.mode(tar::HeaderMode::Deterministic);
    for (name, source) in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match source {
            Source::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, name, io::empty())
            }
            Source::File(path, exec) => {
                let f = fs::File::open(path)
                    .map_err(|e| format!("input file {}: {e}", path.display()))?;
                let len = f
                    .metadata()
                    .map_err(|e| format!("input file {}: {e}", path.display()))?
                    .len();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *exec { 0o755 } else { 0o644 });
                header.set_size(len);
                // A file that changes while it is read would give a bad archive: read
                // exactly `len` bytes.
                tar.append_data(&mut header, name, f.take(len))
            }
            Source::Bytes(data, exec) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *exec { 0o755 } else { 0o644 });
                header.set_size(data.len() as u64);
                tar.append_data(&mut header, name, data.as_slice())
            }
        }
        .map_err(|e| format!("packing `{name}`: {e}"))?;
    }
    let bytes = tar
        .into_inner()
        .and_then(bzip2::write::BzEncoder::finish)
        .map_err(|e| format!("packing the input sandbox: {e}"))?;
    if bytes.len() as u64 > MAX_SANDBOX_BYTES {
        return Err(format!(
            "the input sandbox is {} MiB once packed; DiracX takes at most {} MiB (put large inputs on grid storage and name them in input_data)",
            bytes.len() / (1024 * 1024),
            MAX_SANDBOX_BYTES / (1024 * 1024)
        ));
    }
    let checksum = sha256_hex(&bytes);
    Ok(Packed { bytes, checksum })
}

enum Source {
    Dir,
    File(PathBuf, bool),
    Bytes(Vec<u8>, bool),
}

fn executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o111 != 0
}

fn collect_dir(dir: &Path, name: &str, out: &mut Vec<(String, Source)>) -> Result<(), String> {
    out.push((name.to_owned(), Source::Dir));
    let mut children: Vec<_> = fs::read_dir(dir)
        .map_err(|e| format!("input directory {}: {e}", dir.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("input directory {}: {e}", dir.display()))?;
    children.sort_by_key(fs::DirEntry::file_name);
    for child in children {
        let path = child.path();
        let child_name = child
            .file_name()
            .into_string()
            .map_err(|n| format!("input file {}: the name {n:?} is not UTF-8", path.display()))?;
        let meta =
            fs::metadata(&path).map_err(|e| format!("input file {}: {e}", path.display()))?;
        let full = format!("{name}/{child_name}");
        if meta.is_dir() {
            collect_dir(&path, &full, out)?;
        } else if meta.is_file() {
            out.push((full, Source::File(path, executable(&meta))));
        }
        // Anything else (a socket, a fifo) is not a file to ship.
    }
    Ok(())
}

/// Bounds on what an output sandbox may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_bytes: u64,
    pub(crate) max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024 * 1024 * 1024,
            max_entries: 100_000,
        }
    }
}

/// What unpacking did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Unpacked {
    /// Regular files written, relative to the destination.
    pub(crate) files: Vec<String>,
    /// Entries not written, with why.
    pub(crate) skipped: Vec<String>,
}

/// The archive's reader, decompressed by its magic bytes (bzip2 or plain tar).
fn decompressed<'a>(mut reader: Box<dyn io::BufRead + 'a>) -> io::Result<Box<dyn Read + 'a>> {
    let magic = reader.fill_buf()?;
    if magic.starts_with(b"BZh") {
        Ok(Box::new(bzip2::bufread::MultiBzDecoder::new(reader)))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(io::Error::other(
            "a tar.zst sandbox: only tar.bz2 is supported",
        ))
    } else {
        Ok(reader)
    }
}

/// An entry's path as a safe relative path, or why not.
fn safe_relative(path: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("its path holds `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("its path is absolute"),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("its path is empty");
    }
    Ok(out)
}

/// Makes the directories of `rel` below `dest`, refusing to go through anything that is
/// not a real directory (a symlink planted there would lead out).
fn make_parents(dest: &Path, rel: &Path) -> Result<(), String> {
    let mut at = dest.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for c in &parts[..parts.len().saturating_sub(1)] {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => return Err(format!("{} is in the way (not a directory)", at.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&at).map_err(|e| format!("cannot create {}: {e}", at.display()))?;
            }
            Err(e) => return Err(format!("{}: {e}", at.display())),
        }
    }
    Ok(())
}

/// Unpacks an output sandbox into `dest` (created if needed). An `Err` means the archive
/// could not be read or a limit was passed; entries refused one by one are in `skipped`.
pub(crate) fn unpack(
    archive: impl io::BufRead,
    dest: &Path,
    limits: Limits,
) -> Result<Unpacked, String> {
    fs::create_dir_all(dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let reader = decompressed(Box::new(archive)).map_err(|e| format!("the sandbox: {e}"))?;
    let mut tar = tar::Archive::new(reader);
    let mut done = Unpacked::default();
    let mut total: u64 = 0;
    let entries = tar
        .entries()
        .map_err(|e| format!("the sandbox is not a tar archive: {e}"))?;
    for (count, entry) in entries.enumerate() {
        if count >= limits.max_entries {
            return Err(format!(
                "the sandbox has more than {} entries",
                limits.max_entries
            ));
        }
        let mut entry = entry.map_err(|e| format!("the sandbox is damaged: {e}"))?;
        let raw = entry
            .path()
            .map_err(|e| format!("the sandbox is damaged: {e}"))?
            .into_owned();
        let shown = raw.display().to_string();
        let rel = match safe_relative(&raw) {
            Ok(rel) => rel,
            Err(why) => {
                done.skipped.push(format!("{shown}: {why}"));
                continue;
            }
        };
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            if let Err(why) = make_parents(dest, &rel.join("x")) {
                done.skipped.push(format!("{shown}: {why}"));
            }
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            let what = if kind.is_symlink() {
                "a symbolic link"
            } else if kind.is_hard_link() {
                "a hard link"
            } else {
                "not a regular file"
            };
            done.skipped.push(format!("{shown}: {what}"));
            continue;
        }
        let size = entry
            .header()
            .size()
            .map_err(|e| format!("the sandbox is damaged: {e}"))?;
        total = total.saturating_add(size);
        if total > limits.max_bytes {
            return Err(format!(
                "the sandbox unpacks to more than {} bytes",
                limits.max_bytes
            ));
        }
        if let Err(why) = make_parents(dest, &rel) {
            done.skipped.push(format!("{shown}: {why}"));
            continue;
        }
        let exec = entry.header().mode().is_ok_and(|m| m & 0o100 != 0);
        let target = dest.join(&rel);
        if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
            done.skipped
                .push(format!("{shown}: a directory of that name is in the way"));
            continue;
        }
        // O_NOFOLLOW: a symlink at the target is not written through.
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(if exec { 0o755 } else { 0o644 })
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target);
        let mut file = match file {
            Ok(f) => f,
            Err(e) => {
                done.skipped.push(format!("{shown}: cannot write it: {e}"));
                continue;
            }
        };
        io::copy(&mut (&mut entry).take(size), &mut file)
            .and_then(|_| file.flush())
            .map_err(|e| format!("unpacking {shown}: {e}"))?;
        let name = rel.to_string_lossy().into_owned();
        if !done.files.contains(&name) {
            done.files.push(name);
        }
    }
    Ok(done)
}

/// The last `max_bytes` of the entry `name` in an archive, if it has one.
pub(crate) fn tail_of_entry(
    archive: impl io::BufRead,
    name: &Path,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, String> {
    let reader = decompressed(Box::new(archive)).map_err(|e| format!("the sandbox: {e}"))?;
    let mut tar = tar::Archive::new(reader);
    let wanted = safe_relative(name).map_err(|why| format!("{}: {why}", name.display()))?;
    let entries = tar
        .entries()
        .map_err(|e| format!("the sandbox is not a tar archive: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("the sandbox is damaged: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("the sandbox is damaged: {e}"))?;
        if safe_relative(&path).ok().as_deref() != Some(wanted.as_path())
            || !entry.header().entry_type().is_file()
        {
            continue;
        }
        let size = entry
            .header()
            .size()
            .map_err(|e| format!("the sandbox is damaged: {e}"))?;
        let skip = size.saturating_sub(max_bytes);
        let mut reader = entry;
        io::copy(&mut (&mut reader).take(skip), &mut io::sink())
            .map_err(|e| format!("reading {}: {e}", name.display()))?;
        let mut tail = Vec::new();
        reader
            .take(max_bytes)
            .read_to_end(&mut tail)
            .map_err(|e| format!("reading {}: {e}", name.display()))?;
        return Ok(Some(tail));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use proptest::prelude::*;

    use super::*;

    /// A tar.bz2 built by hand, entry by entry, including what a hostile worker could send.
    fn archive(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(bzip2::write::BzEncoder::new(
            Vec::new(),
            bzip2::Compression::fast(),
        ));
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // set_path refuses `..`; write the raw name field as a hostile archive would.
            let name = path.as_bytes();
            h.as_gnu_mut().expect("gnu header").name[..name.len()].copy_from_slice(name);
            if let Some(l) = link {
                h.set_link_name(l).expect("link name");
            }
            h.set_cksum();
            b.append(&h, *data).expect("append");
        }
        b.into_inner().expect("tar").finish().expect("bz2")
    }

    #[test]
    fn packing_is_deterministic_and_keeps_the_executable_bit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.txt");
        let s = dir.path().join("run.sh");
        let sub = dir.path().join("data");
        fs::write(&a, "alpha").expect("write");
        fs::write(&s, "#!/bin/sh\necho hi\n").expect("write");
        fs::set_permissions(&s, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::create_dir(&sub).expect("mkdir");
        fs::write(sub.join("x.dat"), "x").expect("write");
        let one = pack(
            &[s.clone(), a.clone(), sub.clone()],
            &[("w.sh", b"echo", true)],
        )
        .expect("packs");
        let two = pack(&[sub, a, s], &[("w.sh", b"echo", true)]).expect("packs");
        assert_eq!(one, two, "same files, same bytes");
        assert_eq!(one.checksum, sha256_hex(&one.bytes));

        let out = tempfile::tempdir().expect("tempdir");
        let got =
            unpack(io::Cursor::new(&one.bytes), out.path(), Limits::default()).expect("unpacks");
        assert_eq!(got.files, ["a.txt", "data/x.dat", "run.sh", "w.sh"]);
        assert!(got.skipped.is_empty());
        let mode = fs::metadata(out.path().join("run.sh"))
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert_eq!(
            fs::read_to_string(out.path().join("a.txt")).expect("read"),
            "alpha"
        );
    }

    #[test]
    fn packing_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.txt");
        let err = pack(&[missing], &[]).expect_err("missing");
        assert!(err.contains("nope.txt"), "{err}");
        let a = dir.path().join("x");
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).expect("mkdir");
        fs::write(&a, "1").expect("write");
        fs::write(sub.join("x"), "2").expect("write");
        let err = pack(&[a, sub.join("x")], &[]).expect_err("clash");
        assert!(err.contains("`x`"), "{err}");
    }

    #[test]
    fn hostile_entries_are_skipped_and_nothing_leaves_the_destination() {
        let root = tempfile::tempdir().expect("tempdir");
        let dest = root.path().join("out");
        fs::create_dir(&dest).expect("mkdir");
        // A symlink planted in the destination beforehand must not be written through.
        std::os::unix::fs::symlink(root.path(), dest.join("planted")).expect("symlink");
        std::os::unix::fs::symlink(root.path().join("victim"), dest.join("victim-link"))
            .expect("symlink");
        let bytes = archive(&[
            ("ok.txt", tar::EntryType::Regular, b"fine", None),
            ("../escape.txt", tar::EntryType::Regular, b"bad", None),
            ("/abs.txt", tar::EntryType::Regular, b"bad", None),
            ("link", tar::EntryType::Symlink, b"", Some("/etc/passwd")),
            ("hard", tar::EntryType::Link, b"", Some("ok.txt")),
            ("planted/through.txt", tar::EntryType::Regular, b"bad", None),
            ("victim-link", tar::EntryType::Regular, b"bad", None),
            ("dev", tar::EntryType::Char, b"", None),
            ("d/e/f.txt", tar::EntryType::Regular, b"deep", None),
        ]);
        let got = unpack(io::Cursor::new(bytes), &dest, Limits::default()).expect("readable");
        assert_eq!(got.files, ["ok.txt", "d/e/f.txt"]);
        assert_eq!(got.skipped.len(), 7, "{:?}", got.skipped);
        assert!(!root.path().join("escape.txt").exists());
        assert!(!root.path().join("through.txt").exists());
        assert!(!root.path().join("victim").exists());
        assert!(!Path::new("/abs.txt").exists());
        assert!(fs::symlink_metadata(dest.join("link")).is_err());
    }

    #[test]
    fn limits_are_kept() {
        let dest = tempfile::tempdir().expect("tempdir");
        let bytes = archive(&[
            ("a", tar::EntryType::Regular, &[0u8; 100], None),
            ("b", tar::EntryType::Regular, &[0u8; 100], None),
        ]);
        let small = Limits {
            max_bytes: 150,
            max_entries: 10,
        };
        assert!(unpack(io::Cursor::new(&bytes), dest.path(), small).is_err());
        let few = Limits {
            max_bytes: 1000,
            max_entries: 1,
        };
        assert!(unpack(io::Cursor::new(&bytes), dest.path(), few).is_err());
    }

    #[test]
    fn the_tail_of_one_entry() {
        let bytes = archive(&[("std.out", tar::EntryType::Regular, b"0123456789", None)]);
        assert_eq!(
            tail_of_entry(io::Cursor::new(&bytes), Path::new("std.out"), 4).expect("ok"),
            Some(b"6789".to_vec())
        );
        assert_eq!(
            tail_of_entry(io::Cursor::new(&bytes), Path::new("./std.out"), 40).expect("ok"),
            Some(b"0123456789".to_vec())
        );
        assert_eq!(
            tail_of_entry(io::Cursor::new(&bytes), Path::new("std.err"), 4).expect("ok"),
            None
        );
        assert!(tail_of_entry(io::Cursor::new(&bytes), Path::new("../x"), 4).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

        /// Whatever bytes come, unpacking answers (Ok or Err) and writes only below dest.
        #[test]
        fn unpacking_garbage_never_panics_or_escapes(data in proptest::collection::vec(any::<u8>(), 0..4096), bz in any::<bool>()) {
            let root = tempfile::tempdir().expect("tempdir");
            let dest = root.path().join("out");
            let bytes = if bz {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(&data).expect("compress");
                e.finish().expect("compress")
            } else {
                data
            };
            let _ = unpack(io::Cursor::new(&bytes), &dest, Limits { max_bytes: 1 << 20, max_entries: 1000 });
            let _ = tail_of_entry(io::Cursor::new(&bytes), Path::new("std.out"), 10);
            let outside: Vec<_> = fs::read_dir(root.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
            prop_assert!(outside.iter().all(|n| n == "out"), "{:?}", outside);
        }

        /// Archives of arbitrary entry names never write outside dest.
        #[test]
        fn arbitrary_names_stay_inside(names in proptest::collection::vec("[a-z./]{1,20}", 1..8)) {
            let root = tempfile::tempdir().expect("tempdir");
            let dest = root.path().join("out");
            let entries: Vec<(&str, tar::EntryType, &[u8], Option<&str>)> =
                names.iter().map(|n| (n.as_str(), tar::EntryType::Regular, &b"x"[..], None)).collect();
            let bytes = archive(&entries);
            let _ = unpack(io::Cursor::new(&bytes), &dest, Limits::default());
            let outside: Vec<_> = fs::read_dir(root.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
            prop_assert!(outside.iter().all(|n| n == "out"), "{:?}", outside);
        }
    }
}
