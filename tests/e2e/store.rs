//! `ganga store check` runs the store's check in a child process of its own, so that a
//! crash inside the store's library is a report naming the store, not the end of the
//! user's command; `ganga store backup` copies the store while it is in use.

use std::os::unix::process::ExitStatusExt as _;

use crate::util::Ganga;

#[test]
fn a_healthy_store_checks_clean() {
    let g = Ganga::new();
    g.populate(5, &[40]);
    let out = g.run(&["store", "check"]);
    let store = g.home().join("store");
    assert!(
        out.contains(&format!(
            "the store at {}: 6 jobs, 40 subjobs, no problems",
            store.display()
        )),
        "{out}"
    );
    let report = g.json(&["store", "check", "--json"]);
    assert_eq!(report["jobs"], 6);
    assert_eq!(report["subjobs"], 40);
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);
    assert_eq!(report["location"], store.display().to_string());
}

#[test]
fn problems_found_are_listed_and_the_exit_code_says_so() {
    let g = Ganga::new();
    g.populate(3, &[]);
    {
        // A summary that no longer agrees with its job, as a disk fault leaves it.
        let store = ganga_store_lmdb::LmdbStore::open(&g.home().join("store")).unwrap();
        store
            .raw_put("summaries", &1u64.to_be_bytes(), b"\xff\x00garbage")
            .unwrap();
    }
    let out = g.output(&["store", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let store = g.home().join("store");
    assert!(
        stdout.starts_with(&format!(
            "the store at {}: 3 jobs, 0 subjobs, 1 problem:\n  job 1: summary unreadable:",
            store.display()
        )),
        "{stdout}"
    );
    let report = g.output(&["store", "check", "--json"]);
    assert_eq!(report.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["problems"].as_array().unwrap().len(), 1);
}

#[test]
fn a_truncated_store_is_refused_naming_its_file_and_no_command_dies() {
    let g = Ganga::new();
    g.populate(2000, &[3000]);
    // Cut the store's file short, as a full disk or a bad copy leaves it: reading a page
    // past its end would kill the reader with SIGBUS; it is refused before.
    let data = g.home().join("store").join("data.mdb");
    let file = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
    file.set_len(3 * 4096).unwrap();
    drop(file);
    for args in [&["store", "check"][..], &["jobs"][..]] {
        let out = g.output(args);
        assert_eq!(out.status.signal(), None, "ganga {args:?} was killed");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&data.display().to_string()), "{err}");
        assert!(err.contains("truncated"), "{err}");
    }
}

#[test]
fn a_checker_killed_by_a_signal_is_a_report_naming_the_store() {
    let g = Ganga::new();
    g.populate(5, &[40]);
    // A crash inside LMDB (a damaged page it cannot survive) kills the process reading;
    // the checker runs apart, so the user's command reports it.
    let out = g
        .command(&["store", "check"])
        .env("GANGA_TEST_CHECKER_DIES_OF", libc::SIGBUS.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), None, "ganga itself was killed");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let home = g.home();
    assert!(
        err.contains("could not be checked: the checker was killed by signal 7 (SIGBUS)"),
        "{err}"
    );
    assert!(err.contains(&home.display().to_string()), "{err}");
}

#[test]
fn a_backup_is_a_store_with_the_same_jobs() {
    let g = Ganga::new();
    g.populate(5, &[40]);
    let dest = g.path("backup");
    g.run(&["store", "backup", dest.to_str().unwrap()]);
    let copy = g.path("restored-home");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::rename(&dest, copy.join("store")).unwrap();
    let listed = |home: &std::path::Path| {
        let out = g
            .command(&["jobs", "--json"])
            .env("GANGA_HOME", home)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(listed(&copy), listed(&g.home()));
}

#[test]
fn a_backup_never_overwrites() {
    let g = Ganga::new();
    g.populate(1, &[]);
    let dest = g.path("taken");
    std::fs::create_dir_all(&dest).unwrap();
    let err = g.fail(&["store", "backup", dest.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{} already exists", dest.display())),
        "{err}"
    );
}

/// LMDB reads its pages unchecked: some damage makes it fault (SIGSEGV) or abort on its
/// own assertions (SIGABRT) inside the store's library. Such a crash must end the user's
/// command with an error naming the store, never with a signal. The damage is real: bytes
/// of the pages' node offsets (LMDB's page header is 16 bytes, the offsets follow) are
/// changed one at a time in a copy of a store, and `ganga subjobs` reads it, until
/// enough cases have crashed inside LMDB.
#[test]
fn a_crash_inside_the_store_library_is_an_error_naming_the_store() {
    let g = Ganga::new();
    let ids = g.populate(5, &[400]);
    let big = ids.last().expect("the split job").to_string();
    let store = g.home().join("store");
    let data = store.join("data.mdb");
    let pristine = std::fs::read(&data).unwrap();
    let pages = pristine.len() / 4096;
    let mut crashed = Vec::new();
    let mut tried = 0;
    'pages: for page in 2..pages {
        for offset in 16..32 {
            for mask in [0xff_u8, 0x10, 0x80] {
                let mut damaged = pristine.clone();
                damaged[page * 4096 + offset] ^= mask;
                std::fs::write(&data, &damaged).unwrap();
                tried += 1;
                let out = g.output(&["subjobs", &big]);
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(
                    out.status.signal(),
                    None,
                    "ganga killed by a signal with byte {} ^ {mask:#x} changed: {err}",
                    page * 4096 + offset
                );
                if err.contains("crashed while being read") {
                    assert_eq!(out.status.code(), Some(1), "{err}");
                    // Named by its path, or (a crash while opening it, before it could
                    // say where it is) as the store of this home.
                    assert!(
                        err.contains(&format!("the store at {}", store.display()))
                            || err.contains(&format!("the `lmdb` store of {}", g.home().display())),
                        "{err}"
                    );
                    assert!(err.contains("ganga store check"), "{err}");
                    crashed.push(page * 4096 + offset);
                    if crashed.len() == 3 {
                        break 'pages;
                    }
                }
            }
        }
    }
    std::fs::write(&data, &pristine).unwrap();
    assert_eq!(
        crashed.len(),
        3,
        "{tried} damaged stores read, {} crashed inside LMDB: this test needs damage that does",
        crashed.len()
    );
    // The store itself was not changed by the crashed reads: the pristine copy reads whole.
    assert_eq!(g.subjobs(ids[ids.len() - 1]).len(), 400);
}
