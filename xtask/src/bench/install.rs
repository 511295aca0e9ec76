//! Building the binaries and plugins the benchmarks run, and installing them apart: each
//! build copied into a directory of its own, so that a concurrent `cargo build` cannot
//! swap a binary mid-run, and only the shipped plugins sit beside it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{Linking, Profile};

pub(super) fn build(
    root: &Path,
    target: &Path,
    linking: Linking,
    profile: Profile,
) -> anyhow::Result<()> {
    let release: &[&str] = match profile {
        Profile::Release => &["--release"],
        Profile::Debug => &[],
    };
    match (linking, profile) {
        // What `cargo xtask demo` builds too: the binary and every plugin library.
        (Linking::Dynamic, Profile::Release) => crate::run(
            crate::cargo()
                .current_dir(root)
                .args(["build", "--release", "--workspace"]),
        ),
        // Package by package, as the tests' own builds do, so they share artifacts.
        (Linking::Dynamic, Profile::Debug) => {
            for package in [
                "ganga-cli",
                "ganga-bench",
                "ganga-store-lmdb",
                "ganga-backend-local",
            ] {
                crate::run(
                    crate::cargo()
                        .current_dir(root)
                        .args(["build", "-p", package]),
                )?;
            }
            Ok(())
        }
        // A target directory of its own, so the dynamic build is not disturbed.
        (Linking::Static, _) => crate::run(
            crate::cargo()
                .current_dir(root)
                .args(["build"])
                .args(release)
                .args([
                    "-p",
                    "ganga-cli",
                    "-p",
                    "ganga-bench",
                    "--features",
                    "ganga-cli/static-plugins,ganga-bench/static-plugins",
                    "--target-dir",
                ])
                .arg(target.join("bench-static")),
        ),
    }
}

/// Copies the binaries (and, for dynamic linking, the shipped plugin libraries) into
/// `DIR/LINKING/bin`, as a user's install would hold them.
pub(super) fn install(
    target: &Path,
    linking: Linking,
    profile: Profile,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    let from = match linking {
        Linking::Dynamic => target.join(profile.dir()),
        Linking::Static => target.join("bench-static").join(profile.dir()),
    };
    let bin = dir.join(linking.name()).join("bin");
    let mut files = vec!["ganga".to_owned(), "ganga-bench".to_owned()];
    if linking == Linking::Dynamic {
        files.push(library("ganga_store_lmdb"));
        files.push(library("ganga_backend_local"));
    }
    copy_into(&bin, &from, &files)?;
    Ok(bin)
}

/// The file name of the plugin library `name` (`libNAME.so`).
pub(super) fn library(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Makes `bin` afresh and copies `files` into it from the build directory `from`.
pub(super) fn copy_into(bin: &Path, from: &Path, files: &[String]) -> anyhow::Result<()> {
    if bin.exists() {
        std::fs::remove_dir_all(bin).with_context(|| format!("cannot clear {}", bin.display()))?;
    }
    std::fs::create_dir_all(bin)?;
    for file in files {
        let src = from.join(file);
        std::fs::copy(&src, bin.join(file)).with_context(|| {
            format!(
                "cannot copy {} (built? run without --no-build)",
                src.display()
            )
        })?;
    }
    Ok(())
}

/// Where a benchmark's homes, installs and logs go: `DIR/NAME`, by default under
/// `target/bench`; made if missing, canonical.
pub(super) fn results_dir(
    target: &Path,
    dir: Option<&Path>,
    name: &str,
) -> anyhow::Result<PathBuf> {
    let dir = dir
        .map_or_else(|| target.join("bench"), Path::to_owned)
        .join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.canonicalize()?)
}

/// An empty directory at `dir`, whatever was there.
pub(super) fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}
