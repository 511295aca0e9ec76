//! Building plugin libraries from a test.
//!
//! Cargo cannot make a test depend on a cdylib (artifact dependencies are unstable), so a
//! test that needs one builds it with cargo, as nushell's test harness does. While tests
//! run cargo holds no build lock, so this nested build is safe; it is a no-op when the
//! library is up to date.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());

/// The directory holding this test binary's profile output (`target/debug`).
pub fn target_dir() -> PathBuf {
    // Test binaries live in `<target>/<profile>/deps/`.
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binaries live in <target>/<profile>/deps")
        .to_path_buf()
}

/// Builds `package` (all its targets' default outputs: a cdylib, a binary) with cargo in
/// this test's profile, once per test process. Panics with cargo's output if the build
/// fails: a test that needs a plugin or the binary must fail loudly without it.
fn cargo_build(package: &str) {
    cargo_build_with(package, &[]);
}

/// As [`cargo_build`], with more arguments for cargo (`--example NAME`).
fn cargo_build_with(package: &str, extra: &[&str]) {
    let key = format!("{package} {}", extra.join(" "));
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if built.contains_key(&key) {
        return;
    }
    let dir = target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package]).args(extra);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    if let Some(target) = dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let out = cmd.output().expect("cargo can be started");
    assert!(
        out.status.success(),
        "building {package} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    built.insert(key, dir);
}

/// Builds the cdylib of `package` (e.g. `ganga-backend-local`) and returns its path.
pub fn built_plugin(package: &str) -> PathBuf {
    cargo_build(package);
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        package.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    );
    let path = target_dir().join(file);
    assert!(
        path.exists(),
        "cargo built {package} but {} is missing",
        path.display()
    );
    path
}

/// Builds the binary `bin` of `package` (e.g. `ganga` of `ganga-cli`) and returns its path.
pub fn built_binary(package: &str, bin: &str) -> PathBuf {
    cargo_build(package);
    let path = target_dir().join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "cargo built {package} but {} is missing",
        path.display()
    );
    path
}

/// Builds the example `example` of `package` (a helper program a test runs as a process
/// of its own, to kill it at a chosen moment) and returns its path.
pub fn built_example(package: &str, example: &str) -> PathBuf {
    cargo_build_with(package, &["--example", example]);
    let path = target_dir()
        .join("examples")
        .join(format!("{example}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "cargo built example {example} of {package} but {} is missing",
        path.display()
    );
    path
}
