//! The resolution without `openat2`, which this machine's kernel would not use on its own.

use std::os::fd::AsFd;
use std::path::Path;

use super::beneath::{Denied, Purpose, Root, walk_without_links};

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    let p = dir.path();
    std::fs::create_dir_all(p.join("work/sub")).expect("dirs");
    std::fs::write(p.join("work/sub/file.txt"), "inside").expect("file");
    std::fs::write(p.join("secret"), "outside").expect("secret");
    std::os::unix::fs::symlink("sub/file.txt", p.join("work/inner")).expect("link");
    std::os::unix::fs::symlink("sub", p.join("work/subdir")).expect("link");
    std::os::unix::fs::symlink("../secret", p.join("work/out")).expect("link");
    dir
}

#[test]
fn without_openat2_plain_paths_open() {
    let dir = tree();
    let root = Root::open(&dir.path().join("work")).expect("root");
    for purpose in [Purpose::Look, Purpose::Read] {
        assert!(walk_without_links(root.fd().as_fd(), Path::new("sub/file.txt"), purpose).is_ok());
    }
    assert!(walk_without_links(root.fd().as_fd(), Path::new("sub"), Purpose::List).is_ok());
    assert!(matches!(
        walk_without_links(root.fd().as_fd(), Path::new("sub/none"), Purpose::Read),
        Err(Denied::Missing)
    ));
}

#[test]
fn without_openat2_no_link_is_followed() {
    let dir = tree();
    let root = Root::open(&dir.path().join("work")).expect("root");
    for (path, purpose) in [
        ("inner", Purpose::Read),
        ("inner", Purpose::Look),
        ("out", Purpose::Read),
        ("out", Purpose::Look),
        ("subdir/file.txt", Purpose::Read),
        ("subdir", Purpose::List),
    ] {
        let got = walk_without_links(root.fd().as_fd(), Path::new(path), purpose);
        assert!(
            matches!(got, Err(Denied::Link)),
            "{path} {purpose:?}: {got:?}"
        );
    }
}

#[test]
fn with_openat2_links_inside_are_followed_and_links_out_are_not() {
    let dir = tree();
    let root = Root::open(&dir.path().join("work")).expect("root");
    assert!(root.open_beneath(Path::new("inner"), Purpose::Read).is_ok());
    assert!(
        root.open_beneath(Path::new("subdir/file.txt"), Purpose::Read)
            .is_ok()
    );
    assert!(matches!(
        root.open_beneath(Path::new("out"), Purpose::Read),
        Err(Denied::Escapes)
    ));
}
