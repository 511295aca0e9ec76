//! `ganga migrate` through the real binary on the small Ganga fixture: a dry run that
//! writes nothing, the migration, the migrated jobs seen by `jobs`, `show`, `subjobs` and
//! `peek`, a second run that changes nothing, and the refusal while Ganga runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::Ganga;

/// Unpacks the small fixture (with the system's tar) and returns its gangadir.
fn small_gangadir(g: &Ganga) -> PathBuf {
    let tarball = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/ganga-migrate/tests/data/ganga-repo-small.tar.gz");
    let dir = g.path("ganga");
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir)
        .status()
        .expect("tar runs");
    assert!(status.success(), "tar -xzf {}", tarball.display());
    dir.join("gangadir")
}

#[test]
fn migrate_brings_the_small_gangadir_and_a_second_run_changes_nothing() {
    let g = Ganga::new();
    let gangadir = small_gangadir(&g);
    let dir = gangadir.to_str().unwrap();

    // A dry run reports and writes nothing: no store, no workspace.
    let out = g.run(&["migrate", "--dry-run", dir]);
    assert!(out.contains("jobs: 20 found, would import 20"), "{out}");
    assert!(out.contains("subjobs: 93 found, would import 93"), "{out}");
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert!(!g.home().join("store").exists());
    assert!(!g.home().join("workspace").exists());

    let out = g.run(&["migrate", dir]);
    assert!(out.contains("jobs: 20 found, imported 20"), "{out}");
    assert!(out.contains("ids: Ganga's job ids kept"), "{out}");
    assert!(out.contains("box item `small-boxed-app`"), "{out}");

    let jobs = g.json(&["jobs", "--json"]);
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 21, "20 jobs and the template");
    assert_eq!(jobs[10]["name"], "small-argsplit-mixed");
    assert_eq!(jobs[10]["status"], "failed");
    assert_eq!(jobs[10]["subjobs"]["failed"], 3);
    assert_eq!(jobs[20]["status"], "template");

    let tricky = g.job(5);
    assert_eq!(
        tricky["spec"]["comment"],
        "Tom's \"quoted\" <comment> & ampersand, unicode éü✓, newline\nsecond line, backslash \\ end"
    );
    assert_eq!(tricky["spec"]["application"]["env"]["WEIRD"], "a&b<c>\"d'e");
    let sj = g.json(&["show", "11.4", "--json"]);
    assert_eq!(sj["spec"]["application"]["exe"], "/bin/echo");
    assert_eq!(sj["spec"]["application"]["args"][1], "4");
    assert_eq!(sj["run"]["status"], "completed");
    assert_eq!(sj["run"]["exit_code"], 0);
    assert_eq!(sj["run"]["outputs"][0], "stdout");
    assert_eq!(g.subjobs(9).len(), 11);

    // Outputs were brought over: peek reads them from the output directory.
    let ganga_stdout =
        std::fs::read_to_string(gangadir.join("workspace/user/LocalXML/11/4/output/stdout"))
            .unwrap();
    assert!(ganga_stdout.starts_with("gen 4 "), "{ganga_stdout}");
    assert_eq!(g.run(&["peek", "11.4", "stdout"]), ganga_stdout);

    // A second run: nothing new; the store says the same as before.
    let before = g.run(&["jobs", "--json"]);
    let again = g.json(&["migrate", "--json", dir]);
    assert_eq!(again["registries"]["jobs"]["already_migrated"], 20);
    assert_eq!(again["registries"]["jobs"]["imported"], 0);
    assert_eq!(again["commits"], 0);
    assert_eq!(g.run(&["jobs", "--json"]), before);
}

#[test]
fn migrate_refuses_while_a_ganga_session_is_alive() {
    let g = Ganga::new();
    let gangadir = small_gangadir(&g);
    let session = gangadir.join(
        "repository/user/LocalXML/6.0/sessions/host.12.00_Sunday_22_November_2026.PID.4242.session",
    );
    std::fs::write(&session, "").unwrap();
    let dir = gangadir.to_str().unwrap();
    let err = g.fail(&["migrate", dir]);
    assert!(err.contains("a Ganga session seems to be running"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert!(g.json(&["jobs", "--json"]).as_array().unwrap().is_empty());

    let out = g.run(&["migrate", "--force", dir]);
    assert!(out.contains("imported 20"), "{out}");
    // Not a gangadir at all: a clear error.
    let err = g.fail(&["migrate", g.home().to_str().unwrap()]);
    assert!(err.contains("is not a gangadir"), "{err}");
}
