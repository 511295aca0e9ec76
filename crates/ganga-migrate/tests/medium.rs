//! The medium fixture (1,000 jobs, 20,000 subjobs; 859 MB unpacked) migrated into a real
//! LMDB store and compared, job by job and subjob by subjob, with what Ganga itself says
//! (`tests/expected/medium.json.gz`).
//!
//! To keep the test quick only what the migration reads is unpacked: the `data` files of
//! the repository (not their `data~` backups, the pickle caches, nor the 572 MB
//! workspace), so this also shows a gangadir whose workspace is gone is migrated all the
//! same.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Instant;

use common::{Home, compare, expected, options, unpack};
use ganga_core::Store;
use ganga_migrate::Severity;

fn wanted(path: &Path) -> bool {
    let p = path.to_string_lossy();
    p.starts_with("gangadir/repository/")
        && (p.ends_with("/data") || p.ends_with("/cnt") || p.ends_with("/sessions/global_lock"))
}

/// Free bytes on the filesystem holding `path` (0 if it cannot be asked).
#[allow(clippy::unnecessary_cast)] // statvfs field types differ between platforms
fn free_bytes(path: &str) -> u64 {
    let Ok(c) = std::ffi::CString::new(path) else {
        return 0;
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` is writable for one statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: statvfs succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    st.f_bavail as u64 * st.f_frsize as u64
}

#[test]
fn medium_fixture_matches_what_ganga_says_job_by_job() {
    // In memory where there is a roomy tmpfs: 200 MB of small files would otherwise be
    // flushed to disk by the store's first fsync. (Containers often have a 64 MB one.)
    let tmp = if free_bytes("/dev/shm") > 2 << 30 {
        tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir())
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    let t0 = Instant::now();
    let gangadir = unpack("ganga-repo-medium.tar.gz", tmp.path(), &wanted);
    let unpacked = t0.elapsed();

    let home = Home::new();
    let t1 = Instant::now();
    let report = home.migrate(&gangadir, &options());
    let migrated = t1.elapsed();
    eprintln!("{report}");

    let t2 = Instant::now();
    let exp = expected("medium.json.gz");
    let (jobs, subjobs) = compare(&home, &exp, "jobs", true);
    let compared = t2.elapsed();
    eprintln!(
        "medium: unpacked in {unpacked:.1?}, migrated in {migrated:.1?} ({:.0} subjobs/s), compared in {compared:.1?}",
        subjobs as f64 / migrated.as_secs_f64()
    );
    assert_eq!((jobs, subjobs), (1000, 20_000));

    let r = &report.registries["jobs"];
    assert_eq!((r.found, r.imported, r.skipped), (1000, 1000, 0));
    assert_eq!(r.statuses["new"], 780);
    assert_eq!(r.statuses["completed"], 110);
    assert_eq!(r.statuses["killed"], 90);
    assert_eq!(r.statuses["failed"], 20);
    assert_eq!(r.subjob_statuses["killed"], 18_000);
    assert_eq!(r.subjob_statuses["completed"], 2_000);
    assert!(report.problems_of(Severity::Skipped).next().is_none());
    assert!(
        report.problems_of(Severity::Flagged).next().is_none(),
        "{:?}",
        report.problems
    );
    // The missing workspace is said once, not per job.
    let not: Vec<_> = report.problems_of(Severity::NotMigrated).collect();
    assert_eq!(not.len(), 1, "{not:?}");
    assert!(
        not[0].reason.contains("workspace directory does not exist"),
        "{not:?}"
    );
    assert_eq!(report.workspace.dirs, 0);
    assert!(report.workspace.missing_dirs > 2000);
    // Thousands of subjobs per transaction, not one each.
    assert!(report.commits <= 10, "{} commits", report.commits);
    assert!(home.store.check().unwrap().problems.is_empty());

    // A second run is a no-op.
    let t3 = Instant::now();
    let dump = home.store.dump().unwrap();
    let dumped = t3.elapsed();
    let t4 = Instant::now();
    let again = home.migrate(&gangadir, &options());
    let second = t4.elapsed();
    assert_eq!(again.registries["jobs"].already_migrated, 1000);
    assert_eq!(again.commits, 0);
    assert_eq!(home.store.dump().unwrap(), dump);
    eprintln!("medium: store dumped in {dumped:.1?}, second run in {second:.1?}");
}
