//! What a directory tree holds on disk.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Value, json};

/// The bytes in the files of a directory tree, counted without holding a list of them
/// (a gangadir has 90,000 files, and the harness's own peak RSS is carried over into
/// every child it starts).
pub(super) fn apparent_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    each_file(dir, |_, meta| total += meta.len())?;
    Ok(total)
}

/// Calls `f` with the path and metadata of every file below `dir`.
fn each_file(dir: &Path, mut f: impl FnMut(PathBuf, std::fs::Metadata)) -> anyhow::Result<()> {
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?
        {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                f(entry.path(), meta);
            }
        }
    }
    Ok(())
}

/// The files of a directory tree: apparent size (bytes in the files) and allocated size
/// (blocks the filesystem gave them), in total and per file.
pub(super) fn disk_usage(dir: &Path) -> anyhow::Result<Value> {
    use std::os::unix::fs::MetadataExt as _;
    let mut files = Vec::new();
    each_file(dir, |path, meta| {
        let name = path
            .strip_prefix(dir)
            .map_or_else(|_| path.clone(), Path::to_owned);
        files.push((name.display().to_string(), meta.len(), meta.blocks() * 512));
    })?;
    files.sort();
    Ok(json!({
        "directory": dir,
        "apparent_bytes": files.iter().map(|f| f.1).sum::<u64>(),
        "allocated_bytes": files.iter().map(|f| f.2).sum::<u64>(),
        "files": files
            .iter()
            .map(|(name, apparent, allocated)| json!({"name": name, "apparent_bytes": apparent, "allocated_bytes": allocated}))
            .collect::<Vec<_>>(),
    }))
}
