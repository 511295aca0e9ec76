//! `ganga_plugin_sdk::files` on real directories: what a job can leave in its working
//! directory (links out of it, FIFOs, dangling links, loops, huge files) and what
//! collection and `tail` make of it.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use ganga_plugin_sdk::files::{self, FilesError};

/// A test directory: `work/` (the working directory), `out/` (the output directory) and
/// `secret.txt` beside them, outside the working directory.
struct Dirs {
    _temp: tempfile::TempDir,
    work: PathBuf,
    out: PathBuf,
    secret: PathBuf,
}

fn dirs() -> Dirs {
    let temp = tempfile::tempdir().expect("temporary directory");
    let work = temp.path().join("work");
    std::fs::create_dir(&work).expect("work");
    let secret = temp.path().join("secret.txt");
    std::fs::write(&secret, "SECRET CONTENT\n").expect("secret");
    Dirs {
        out: temp.path().join("out"),
        work,
        secret,
        _temp: temp,
    }
}

fn patterns(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| (*s).to_owned()).collect()
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("inside");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Runs `f` on another thread and fails the test if it does not return within a minute:
/// collection must never block.
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} did not return within a minute: it blocked or looped"))
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
}

#[test]
fn patterns_match_like_the_shell() {
    let d = dirs();
    let w = &d.work;
    std::fs::create_dir_all(w.join("sub/deeper")).expect("dirs");
    std::fs::create_dir_all(w.join(".hidden")).expect("dirs");
    for (name, content) in [
        ("a.txt", "a"),
        (".dot.txt", "dot"),
        ("b.log", "b"),
        ("sub/c.txt", "c"),
        ("sub/deeper/d.txt", "d"),
        (".hidden/e.txt", "e"),
    ] {
        std::fs::write(w.join(name), content).expect("file");
    }
    let report = files::collect(
        w,
        &patterns(&["*.txt", "sub/*.txt", "**/*.txt", "none-*"]),
        &d.out,
    )
    .expect("collect");
    assert_eq!(report.collected, ["a.txt", "sub/c.txt", "sub/deeper/d.txt"]);
    assert_eq!(report.unmatched, ["none-*"]);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(
        files_under(&d.out),
        ["a.txt", "sub/c.txt", "sub/deeper/d.txt"]
    );

    // A directory is copied with everything in it, hidden files included.
    let report = files::collect(w, &patterns(&[".hidden"]), &d.out).expect("collect");
    assert_eq!(report.collected, [".hidden/e.txt"]);
}

#[test]
fn a_link_to_etc_is_not_followed() {
    let d = dirs();
    symlink("/etc", d.work.join("link")).expect("link");
    std::fs::write(d.work.join("real.txt"), "mine").expect("file");
    let report = files::collect(
        &d.work,
        &patterns(&["link/*", "link", "link/passwd", "real.txt"]),
        &d.out,
    )
    .expect("collect");
    assert_eq!(report.collected, ["real.txt"]);
    assert_eq!(report.unmatched, ["link/*", "link", "link/passwd"]);
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.starts_with("link: ") && s.contains("leading out of the working directory")),
        "{:?}",
        report.skipped
    );
    assert_eq!(files_under(&d.out), ["real.txt"]);
}

#[test]
fn a_link_to_a_file_outside_is_neither_collected_nor_read() {
    let d = dirs();
    symlink(&d.secret, d.work.join("abs")).expect("link");
    symlink("../secret.txt", d.work.join("rel")).expect("link");
    symlink("/etc/shadow", d.work.join("s")).expect("link");
    // A job may also replace its stdout at the end.
    symlink(&d.secret, d.work.join("stdout")).expect("link");
    let report = files::collect(&d.work, &patterns(&["*", "stdout"]), &d.out).expect("collect");
    assert!(report.collected.is_empty(), "{:?}", report.collected);
    for name in ["abs", "rel", "s", "stdout"] {
        assert!(
            report
                .skipped
                .iter()
                .any(|s| s.starts_with(&format!("{name}: ")) && s.contains("leading out")),
            "{name}: {:?}",
            report.skipped
        );
    }
    assert!(files_under(&d.out).is_empty());

    for name in ["abs", "rel", "s", "stdout"] {
        let e = files::tail(&d.work, name, 100).expect_err(name);
        assert!(matches!(e, FilesError::Outside { .. }), "{name}: {e}");
        assert!(e.to_string().contains("leads out"), "{e}");
    }
    for path in ["../secret.txt", "/etc/passwd", "a/../../secret.txt"] {
        let e = files::tail(&d.work, path, 100).expect_err(path);
        assert!(matches!(e, FilesError::Outside { .. }), "{path}: {e}");
    }
}

#[test]
fn links_inside_the_working_directory_are_followed() {
    let d = dirs();
    std::fs::create_dir_all(d.work.join("run3")).expect("dir");
    std::fs::write(d.work.join("run3/result_v3.txt"), "v3").expect("file");
    symlink("run3/result_v3.txt", d.work.join("result.txt")).expect("link");
    symlink("run3", d.work.join("latest")).expect("link");
    let report =
        files::collect(&d.work, &patterns(&["result.txt", "latest"]), &d.out).expect("collect");
    assert_eq!(report.collected, ["latest/result_v3.txt", "result.txt"]);
    assert_eq!(
        std::fs::read_to_string(d.out.join("result.txt")).expect("copy"),
        "v3"
    );
    // A copy is a file, not a link.
    assert!(
        std::fs::symlink_metadata(d.out.join("result.txt"))
            .expect("meta")
            .is_file()
    );
    assert_eq!(files::tail(&d.work, "result.txt", 1).expect("tail"), b"3");
}

#[test]
fn a_fifo_is_skipped_without_blocking() {
    let d = dirs();
    mkfifo(&d.work.join("data.dat"));
    std::fs::write(d.work.join("good.dat"), "good").expect("file");
    std::fs::create_dir(d.work.join("dir")).expect("dir");
    mkfifo(&d.work.join("dir/pipe"));
    std::fs::write(d.work.join("dir/ok.txt"), "ok").expect("file");
    let (work, out) = (d.work.clone(), d.out.clone());
    let report = within_a_minute("collecting a FIFO", move || {
        files::collect(&work, &patterns(&["*.dat", "dir", "data.dat"]), &out)
    })
    .expect("collect");
    assert_eq!(report.collected, ["dir/ok.txt", "good.dat"]);
    assert_eq!(report.unmatched, ["data.dat"]);
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.starts_with("data.dat: a FIFO")),
        "{:?}",
        report.skipped
    );
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.starts_with("dir/pipe: a FIFO")),
        "{:?}",
        report.skipped
    );
    let work = d.work.clone();
    let e = within_a_minute("tail of a FIFO", move || files::tail(&work, "data.dat", 10))
        .expect_err("a FIFO is not read");
    assert!(
        matches!(e, FilesError::NotAFile { kind: "a FIFO", .. }),
        "{e}"
    );
}

#[test]
fn a_dangling_link_is_reported_and_collection_ends() {
    let d = dirs();
    symlink("no-such-file", d.work.join("result.root")).expect("link");
    let (work, out) = (d.work.clone(), d.out.clone());
    let report = within_a_minute("collecting a dangling link", move || {
        files::collect(&work, &patterns(&["*.root"]), &out)
    })
    .expect("collect");
    assert!(report.collected.is_empty());
    assert_eq!(report.unmatched, ["*.root"]);
    assert_eq!(report.skipped, ["result.root: a dangling symbolic link"]);
    let e = files::tail(&d.work, "result.root", 10).expect_err("dangling");
    assert!(matches!(e, FilesError::NotFound { .. }), "{e}");
}

#[test]
fn directory_loops_end() {
    let d = dirs();
    let w = &d.work;
    std::fs::create_dir_all(w.join("d/e")).expect("dirs");
    std::fs::write(w.join("d/e/f.txt"), "f").expect("file");
    symlink("..", w.join("d/up")).expect("link");
    symlink(".", w.join("d/self")).expect("link");
    symlink("../..", w.join("d/e/top")).expect("link");
    symlink("loop2", w.join("loop1")).expect("link");
    symlink("loop1", w.join("loop2")).expect("link");
    let (work, out) = (w.clone(), d.out.clone());
    let report = within_a_minute("collecting a tree with loops", move || {
        files::collect(
            &work,
            &patterns(&["d", "**/*.txt", "d/self/self/self/e/*", "loop1", "**"]),
            &out,
        )
    })
    .expect("collect");
    assert_eq!(
        report.collected,
        ["d/e/f.txt", "d/self/self/self/e/f.txt"],
        "{report:?}"
    );
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s == "d/up: a link to a directory (not followed)"),
        "{:?}",
        report.skipped
    );
    for looping in ["d/up", "d/self", "d/e/top"] {
        assert!(
            report.skipped.iter().any(
                |s| *s == format!("{looping}: a link to a directory that contains it (a loop)")
            ),
            "{looping}: {:?}",
            report.skipped
        );
    }
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s == "loop1: a loop of symbolic links"),
        "{:?}",
        report.skipped
    );
    assert_eq!(report.unmatched, ["loop1"]);
}

#[test]
fn a_working_directory_that_is_a_link_is_refused() {
    let d = dirs();
    let linked = d.work.with_file_name("linked-work");
    symlink("/etc", &linked).expect("link");
    let e = files::collect(&linked, &patterns(&["*"]), &d.out).expect_err("refused");
    assert!(matches!(e, FilesError::Workdir { .. }), "{e}");
    let e = files::tail(&linked, "passwd", 10).expect_err("refused");
    assert!(matches!(e, FilesError::Workdir { .. }), "{e}");
}

#[test]
fn copies_are_private_under_a_private_umask() {
    // As ganga runs, with the user's `[home] umask` (077 unless configured otherwise).
    // nextest runs each test in a process of its own, so this touches no other test.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let d = dirs();
    std::fs::create_dir(d.work.join("sub")).expect("dir");
    std::fs::write(d.work.join("sub/data"), "x").expect("file");
    std::fs::write(d.work.join("prog"), "#!/bin/sh\n").expect("file");
    std::fs::set_permissions(d.work.join("prog"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::set_permissions(
        d.work.join("sub/data"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    files::collect(&d.work, &patterns(&["sub", "prog"]), &d.out).expect("collect");
    let mode = |p: &str| {
        std::fs::metadata(d.out.join(p))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700);
    assert_eq!(mode("sub"), 0o700);
    assert_eq!(mode("sub/data"), 0o600);
    assert_eq!(mode("prog"), 0o700);
}

#[test]
fn collecting_again_replaces_the_copies() {
    let d = dirs();
    std::fs::write(d.work.join("a.txt"), "first").expect("file");
    files::collect(&d.work, &patterns(&["a.txt"]), &d.out).expect("collect");
    std::fs::write(d.work.join("a.txt"), "second").expect("file");
    // Something put a link where the copy goes: it is replaced, not written through.
    std::fs::remove_file(d.out.join("a.txt")).expect("rm");
    symlink(&d.secret, d.out.join("a.txt")).expect("link");
    let report = files::collect(&d.work, &patterns(&["a.txt"]), &d.out).expect("collect");
    assert_eq!(report.collected, ["a.txt"]);
    assert_eq!(
        std::fs::read_to_string(d.out.join("a.txt")).expect("copy"),
        "second"
    );
    assert_eq!(
        std::fs::read_to_string(&d.secret).expect("secret"),
        "SECRET CONTENT\n"
    );
}

/// Bytes this thread has read with read(2) and friends so far.
fn bytes_read_by_this_thread() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("rchar in /proc/thread-self/io")
}

#[test]
fn tail_of_a_huge_file_reads_only_its_end() {
    let d = dirs();
    let path = d.work.join("stdout");
    let file = std::fs::File::create(&path).expect("file");
    // 800 MB, sparse: cheap to make, expensive to read whole.
    file.set_len(800 * 1024 * 1024).expect("set_len");
    drop(file);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        f.seek(SeekFrom::End(0)).expect("seek");
        f.write_all(b"the last line\n").expect("write");
    }
    let before = bytes_read_by_this_thread();
    let end = files::tail(&d.work, "stdout", 10).expect("tail");
    let read = bytes_read_by_this_thread() - before;
    assert_eq!(end, b"last line\n");
    // The end, plus what reading /proc/thread-self/io itself costs.
    assert!(read < 64 * 1024, "tail read {read} bytes for 10");
}

#[test]
fn tail_of_what_is_not_a_regular_file() {
    let d = dirs();
    std::fs::create_dir(d.work.join("dir")).expect("dir");
    let e = files::tail(&d.work, "dir", 10).expect_err("a directory");
    assert!(
        matches!(
            e,
            FilesError::NotAFile {
                kind: "a directory",
                ..
            }
        ),
        "{e}"
    );
    let e = files::tail(&d.work, "missing", 10).expect_err("missing");
    assert!(matches!(e, FilesError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("missing"), "{e}");
}

#[test]
fn remove_tree_finishes_an_interrupted_removal() {
    let d = dirs();
    std::fs::create_dir_all(d.work.join("a/b")).expect("dirs");
    std::fs::write(d.work.join("a/b/c"), "c").expect("file");
    symlink(&d.secret, d.work.join("link")).expect("link");
    // What a removal killed half-way leaves: the directory moved aside, partly removed.
    let aside = d.work.with_file_name(".work.removing");
    std::fs::create_dir_all(aside.join("left")).expect("aside");
    files::remove_tree(&d.work).expect("remove");
    assert!(!d.work.exists());
    assert!(!aside.exists());
    // Links are removed, never followed.
    assert!(d.secret.exists());
    // Again: nothing left to do.
    files::remove_tree(&d.work).expect("remove again");
}
