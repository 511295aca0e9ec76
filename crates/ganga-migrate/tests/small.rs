//! The migration of the small fixture (20 jobs, 93 subjobs, a template, a box item, job
//! tree folders, as Ganga 8.7.12 wrote them) and of the backends fixture (batch backends,
//! Condor, Dirac, DiracFile and MassStorageFile outputs), compared with what Ganga itself
//! says about every job and subjob; plus idempotency, dry runs, read-only access, session
//! files, renumbering and damaged files.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{Home, compare, expected, id_of, options, snapshot, unpack_all};
use ganga_core::{Change, JobRef, Status, Store};
use ganga_migrate::{IdPolicy, MigrateError, Severity, WorkspaceMode, keys};

#[test]
fn small_fixture_matches_what_ganga_says_job_by_job() {
    let tmp = tempfile::tempdir().unwrap();
    let gangadir = unpack_all("ganga-repo-small.tar.gz", tmp.path());
    let home = Home::new();
    let report = home.migrate(&gangadir, &options());
    eprintln!("{report}");

    let exp = expected("small.json");
    let (jobs, subjobs) = compare(&home, &exp, "jobs", true);
    assert_eq!((jobs, subjobs), (20, 93));
    assert_eq!(compare(&home, &exp, "templates", true), (1, 0));

    // The report's counts.
    assert_eq!(report.ids, IdPolicy::Kept);
    let r = &report.registries["jobs"];
    assert_eq!(
        (r.found, r.imported, r.skipped, r.already_migrated),
        (20, 20, 0, 0)
    );
    assert_eq!(r.subjobs_imported, 93);
    assert_eq!(r.statuses["completed"], 8);
    assert_eq!(r.statuses["failed"], 5);
    assert_eq!(r.statuses["new"], 6);
    assert_eq!(r.statuses["killed"], 1);
    assert_eq!(r.subjob_statuses["completed"], 90);
    assert_eq!(r.subjob_statuses["failed"], 3);
    assert_eq!(report.registries["templates"].imported, 1);
    assert!(report.active.is_empty());
    assert_eq!(
        report.problems_of(Severity::Skipped).count(),
        0,
        "{:?}",
        report.problems
    );
    // The box item is an Executable: reported, with what it was.
    let not: Vec<_> = report.problems_of(Severity::NotMigrated).collect();
    assert_eq!(not.len(), 1, "{not:?}");
    assert!(not[0].reason.contains("small-boxed-app"), "{not:?}");
    assert!(not[0].reason.contains("/bin/echo"), "{not:?}");
    assert_eq!(
        report.problems_of(Severity::Flagged).count(),
        0,
        "{:?}",
        report.problems
    );

    // The store: ids kept, the template after the jobs, next id past them all.
    let all = home.jobs();
    assert_eq!(all.len(), 21);
    assert_eq!(id_of(&all, "templates", 0), 20);
    assert_eq!(home.store.reserve_ids(0).unwrap(), 21);
    assert!(home.store.check().unwrap().problems.is_empty());

    // Provenance and job tree folders.
    let j9 = home.store.job(9).unwrap().unwrap();
    assert_eq!(j9.metadata[keys::ID], "9");
    assert_eq!(j9.metadata[keys::USER], "user");
    assert_eq!(j9.metadata[keys::REGISTRY], "jobs");
    assert_eq!(
        Path::new(&j9.metadata[keys::GANGADIR]),
        fs::canonicalize(&gangadir).unwrap()
    );
    assert_eq!(j9.metadata[keys::JOBTREE], "/small/analysis");
    assert_eq!(
        home.store.job(10).unwrap().unwrap().metadata[keys::JOBTREE],
        "/small/failed"
    );
    assert!(
        !home
            .store
            .job(0)
            .unwrap()
            .unwrap()
            .metadata
            .contains_key(keys::JOBTREE)
    );
    // The File exe's prepared copy is referenced.
    let j4 = home.store.job(4).unwrap().unwrap();
    assert!(
        j4.metadata["ganga.exe.prepared"].ends_with("/run.sh"),
        "{:?}",
        j4.metadata
    );
    assert!(Path::new(&j4.metadata["ganga.exe.prepared"]).is_file());

    // Splitters: kept, and able to split again.
    for id in [9, 10, 11, 12, 16] {
        let job = home.store.job(id).unwrap().unwrap();
        let splitter = job
            .spec
            .splitter
            .as_ref()
            .unwrap_or_else(|| panic!("job {id}"));
        splitter.split().unwrap();
    }
    // multi_attrs: args and env of each subjob, as overrides.
    let j12 = home.store.job(12).unwrap().unwrap();
    let sj = home.store.subjobs(12, 3..4).unwrap();
    assert_eq!(
        sj[0].overrides,
        vec![
            ganga_core::Override::Args(vec!["-c".into(), "echo $MYENV > env.txt".into()]),
            ganga_core::Override::Env([("MYENV".to_owned(), "env-1-3".to_owned())].into()),
        ]
    );
    assert!(
        matches!(&j12.spec.splitter, Some(ganga_core::Splitter::Generic { attributes }) if attributes.len() == 2)
    );

    // Outputs were copied where ganga-rs looks for them.
    let ws = home.workspaces();
    for sj in home.subjobs(&j9) {
        for o in &sj.run.outputs {
            let f = ws.output_dir(JobRef::subjob(9, sj.index)).join(o);
            assert!(f.is_file(), "{}", f.display());
        }
        assert!(
            ws.output_dir(JobRef::subjob(9, sj.index))
                .join("stdout")
                .is_file()
        );
    }
    let out0 = fs::read_to_string(ws.output_dir(JobRef::job(0)).join("out.txt")).unwrap();
    assert!(out0.starts_with("value="), "{out0}");
    // 10 plain jobs that ran, 4 masters' own directories, 93 subjobs; none for the template.
    assert_eq!(report.workspace.dirs, 107, "{:?}", report.workspace);
    assert!(report.workspace.files_copied > 90, "{:?}", report.workspace);
    assert!(!ws.job_dir(20).exists());
    assert_eq!(report.workspace.missing_dirs, 0, "{:?}", report.workspace);
}

#[test]
fn backends_fixture_maps_batch_condor_and_dirac() {
    let tmp = tempfile::tempdir().unwrap();
    let gangadir = unpack_all("ganga-repo-backends.tar.gz", tmp.path());
    let home = Home::new();
    let report = home.migrate(&gangadir, &options());
    eprintln!("{report}");
    let exp = expected("backends.json");
    assert_eq!(compare(&home, &exp, "jobs", true), (9, 3));

    // Options of the batch backends and Dirac.
    let job = |id| home.store.job(id).unwrap().unwrap();
    let lsf = job(0);
    assert_eq!(lsf.spec.backend.options["queue"], "1nh".into());
    assert_eq!(
        lsf.spec.backend.options["extraopts"],
        r#"-R "rusage[mem=2000]""#.into()
    );
    assert_eq!(lsf.metadata["ganga.backend.actualqueue"], "1nh");
    assert_eq!(
        lsf.metadata["ganga.outputfile.hist.root.locations"],
        "/eos/user/u/user/ganga/0/hist.root"
    );
    assert!(
        job(1).spec.backend.options.len() == 1,
        "{:?}",
        job(1).spec.backend.options
    );
    let condor = job(4);
    assert_eq!(
        condor.spec.backend.options["accounting_group"],
        "group_u_TEST.user".into()
    );
    assert!(condor.spec.backend.options.contains_key("requirements"));
    assert!(
        !condor.spec.backend.options.contains_key("universe"),
        "a default is not stored"
    );
    let dirac = job(5);
    assert_eq!(dirac.spec.backend.kind, "dirac");
    assert_eq!(
        dirac.spec.backend.options["diracOpts"],
        r#"j.setTag(["skylake"])"#.into()
    );
    assert_eq!(
        dirac.spec.backend.options["credential_group"],
        "lhcb_user".into()
    );
    let sub = home.subjobs(&dirac);
    assert_eq!(sub[1].run.backend.native_state.as_deref(), Some("Failed"));
    assert_eq!(sub[1].run.backend.exit_code, Some(3));
    assert_eq!(sub[1].run.backend.actual_ce.as_deref(), Some("LCG.RAL.uk"));
    assert_eq!(
        dirac.metadata["ganga.subjob.0.outputfile.out0.root.guid"],
        "A1B2C3D4-0000-0000-0000-000000000000"
    );
    assert_eq!(sub[2].run.outputs, vec!["out2.root"], "downloaded");
    assert!(sub[0].run.outputs.is_empty(), "on the grid only");
    let plain = job(6);
    assert_eq!(
        plain.metadata["ganga.outputfile.result.txt.lfn"],
        "/lhcb/user/u/user/ganga/6/result.txt"
    );
    assert_eq!(plain.run.outputs, vec!["result.txt", "stderr", "stdout"]);
    assert!(plain.metadata["ganga.inputfile.0"].contains("LFN:/lhcb/user/u/user/in/data.txt"));

    // Active in Ganga: imported as failed, listed, with the reason.
    let active: Vec<&str> = report.active.iter().map(|a| a.ganga_ref.as_str()).collect();
    assert_eq!(active, vec!["2", "3"]);
    let sge = job(2);
    assert_eq!(sge.status(), Status::Failed);
    assert_eq!(sge.metadata[keys::STATUS], "running");
    assert!(
        sge.run
            .backend
            .reason
            .as_ref()
            .unwrap()
            .contains("was `running` in Ganga")
    );
    assert!(
        home.store.active().unwrap().is_empty(),
        "no monitor will chase Ganga's processes"
    );

    let frozen = job(8);
    assert_eq!(frozen.status(), Status::CompletedFrozen);

    // Flagged: the DiracFile input, the Interactive backend needs no flag (known).
    let flagged: Vec<String> = report
        .problems_of(Severity::Flagged)
        .map(|p| format!("{} {}", p.object, p.reason))
        .collect();
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert!(
        flagged[0].starts_with("6 input file DiracFile"),
        "{flagged:?}"
    );
}

#[test]
fn a_second_run_changes_nothing_and_a_dry_run_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let gangadir = unpack_all("ganga-repo-small.tar.gz", tmp.path());
    let before = snapshot(&gangadir);

    // Dry run: a full report, nothing written.
    let home = Home::new();
    let empty = home.store.dump().unwrap();
    let mut dry = options();
    dry.dry_run = true;
    let planned = home.migrate(&gangadir, &dry);
    assert!(planned.dry_run);
    assert_eq!(planned.registries["jobs"].imported, 20);
    assert_eq!(planned.registries["jobs"].subjobs_imported, 93);
    assert!(planned.workspace.files_copied > 90);
    assert_eq!(planned.commits, 0);
    assert_eq!(home.store.dump().unwrap(), empty);
    assert_eq!(home.store.reserve_ids(0).unwrap(), 0, "no id was reserved");
    assert!(!home.dir.path().join("workspace").exists());
    // Without any store at all, too.
    let none = ganga_migrate::migrate_with(&gangadir, None, &home.workspaces(), &dry, &mut |_| {})
        .unwrap();
    assert_eq!(none.registries, planned.registries);

    let first = home.migrate(&gangadir, &options());
    assert_eq!(first.registries["jobs"].imported, 20);
    assert_eq!(
        first.registries, planned.registries,
        "the dry run said what happened"
    );
    let dump = home.store.dump().unwrap();
    let files = snapshot(&home.dir.path().join("workspace"));

    let second = home.migrate(&gangadir, &options());
    assert_eq!(second.registries["jobs"].imported, 0);
    assert_eq!(second.registries["jobs"].already_migrated, 20);
    assert_eq!(second.registries["templates"].already_migrated, 1);
    assert_eq!(second.commits, 0);
    assert_eq!(home.store.dump().unwrap(), dump, "the store is unchanged");
    assert_eq!(snapshot(&home.dir.path().join("workspace")), files);
    assert_eq!(home.store.reserve_ids(0).unwrap(), 21, "no id was used");

    // And the gangadir was never written to.
    assert_eq!(snapshot(&gangadir), before);
}

#[test]
fn links_instead_of_copies_when_asked_and_the_gangadir_stays_unchanged() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let gangadir = unpack_all("ganga-repo-small.tar.gz", tmp.path());
    let before = snapshot(&gangadir);
    let home = Home::new();
    let mut o = options();
    o.workspace = WorkspaceMode::Link;
    let report = home.migrate(&gangadir, &o);
    // The temp dirs may be on different filesystems: then it copies.
    let theirs = gangadir.join("workspace/user/LocalXML/0/output/out.txt");
    let ours = home.workspaces().output_dir(JobRef::job(0)).join("out.txt");
    let same = fs::metadata(&theirs).unwrap().ino() == fs::metadata(&ours).unwrap().ino();
    assert_eq!(
        same,
        report.workspace.files_linked > 0,
        "{:?}",
        report.workspace
    );
    assert_eq!(snapshot(&gangadir), before);

    let none = Home::new();
    o.workspace = WorkspaceMode::None;
    let report = none.migrate(&gangadir, &o);
    assert_eq!(
        report.workspace.files_copied + report.workspace.files_linked,
        0
    );
    assert!(!none.dir.path().join("workspace").exists());
}

#[test]
fn refuses_while_a_ganga_session_is_alive_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let gangadir = unpack_all("ganga-repo-small.tar.gz", tmp.path());
    let session = gangadir.join(
        "repository/user/LocalXML/6.0/sessions/vm.19.02_Sunday_22_November_2026.PID.6793.session",
    );
    fs::write(&session, "").unwrap();
    let home = Home::new();
    let err =
        ganga_migrate::migrate(&gangadir, &home.store, &home.workspaces(), &options()).unwrap_err();
    assert!(
        matches!(err, MigrateError::GangaSessionAlive { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--force"), "{err}");
    assert!(home.jobs().is_empty());

    // A stale session file (Ganga reaps them after 45 s) is no obstacle.
    let old = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&session)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(
        home.migrate(&gangadir, &options()).registries["jobs"].imported,
        20
    );

    // A fresh one with --force.
    fs::File::options()
        .write(true)
        .open(&session)
        .unwrap()
        .set_modified(SystemTime::now())
        .unwrap();
    let forced = Home::new();
    let mut o = options();
    o.force = true;
    assert_eq!(
        forced.migrate(&gangadir, &o).registries["jobs"].imported,
        20
    );
}

#[test]
fn gives_new_ids_when_the_store_used_ganga_s_and_reports_them() {
    let tmp = tempfile::tempdir().unwrap();
    let gangadir = unpack_all("ganga-repo-small.tar.gz", tmp.path());
    let home = Home::new();
    // A store that has had jobs: ids 0..3 are used.
    let first = home.store.reserve_ids(3).unwrap();
    assert_eq!(first, 0);
    let report = home.migrate(&gangadir, &options());
    assert_eq!(report.ids, IdPolicy::Renumbered);
    assert_eq!(report.renumbered.len(), 21, "20 jobs and the template");
    assert!(
        report
            .renumbered
            .iter()
            .any(|r| r.registry == "jobs" && r.ganga_id == 0 && r.id == 3)
    );
    assert!(report.to_string().contains("jobs 19 -> 22"), "{report}");
    let exp = expected("small.json");
    assert_eq!(compare(&home, &exp, "jobs", false), (20, 93));
    let jobs = home.jobs();
    assert_eq!(id_of(&jobs, "jobs", 9), 12);
    // Outputs are under the new ids.
    assert!(
        home.workspaces()
            .output_dir(JobRef::subjob(12, 0))
            .join("part0.txt")
            .is_file()
    );
    // Still idempotent.
    let dump = home.store.dump().unwrap();
    assert_eq!(
        home.migrate(&gangadir, &options()).registries["jobs"].already_migrated,
        20
    );
    assert_eq!(home.store.dump().unwrap(), dump);
}

#[test]
fn big_jobs_are_written_in_several_transactions_and_an_interrupted_one_is_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let gangadir = unpack_all("ganga-repo-small.tar.gz", tmp.path());
    let exp = expected("small.json");
    let home = Home::new();
    let mut o = options();
    o.batch_subjobs = 10;
    let report = home.migrate(&gangadir, &o);
    assert!(report.commits >= 10, "{}", report.commits);
    assert_eq!(compare(&home, &exp, "jobs", true), (20, 93));
    assert!(home.store.check().unwrap().problems.is_empty());
    assert!(
        home.jobs()
            .iter()
            .all(|j| !j.metadata.contains_key(keys::INCOMPLETE))
    );

    // As if a run had stopped after the first part of job 11 (43 subjobs).
    let job = home.store.job(11).unwrap().unwrap();
    let part = home.store.subjobs(11, 0..5).unwrap();
    let mut partial = job.clone();
    partial.revision = 0;
    partial.subjobs = part.iter().map(|s| s.run.status).collect();
    partial
        .metadata
        .insert(keys::INCOMPLETE.into(), "5/43 subjobs written".into());
    home.store
        .commit(&[Change::RemoveJob {
            job: 11,
            revision: job.revision,
        }])
        .unwrap();
    home.store
        .commit(&[
            Change::PutJob(partial),
            Change::PutSubjobs {
                job: 11,
                subjobs: part,
            },
        ])
        .unwrap();
    assert_eq!(home.store.job(11).unwrap().unwrap().subjob_count(), 5);

    let again = home.migrate(&gangadir, &options());
    assert_eq!(
        again.registries["jobs"].imported, 1,
        "job 11 is written again"
    );
    assert_eq!(again.registries["jobs"].already_migrated, 19);
    assert_eq!(compare(&home, &exp, "jobs", true), (20, 93));
    assert!(
        !home
            .store
            .job(11)
            .unwrap()
            .unwrap()
            .metadata
            .contains_key(keys::INCOMPLETE)
    );
}

/// Replaces `from` by `to` in a file (which must contain it).
fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn truncate(path: &Path) {
    let bytes = fs::read(path).unwrap();
    fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

#[test]
fn damaged_files_are_reported_and_skipped_and_the_rest_imports() {
    let tmp = tempfile::tempdir().unwrap();
    let gangadir = unpack_all("ganga-repo-small.tar.gz", tmp.path());
    let jobs = gangadir.join("repository/user/LocalXML/6.0/jobs/0xxx");
    let both = |id: &str, f: &dyn Fn(&Path)| {
        f(&jobs.join(id).join("data"));
        f(&jobs.join(id).join("data~"));
    };
    // Truncated (data and its backup).
    both("3", &|p| truncate(p));
    // Invalid XML.
    both("6", &|p| edit(p, "</attribute>", "</atribute>"));
    // An unknown class.
    both("7", &|p| {
        edit(
            p,
            r#"<class name="Executable" version="2.0""#,
            r#"<class name="Nonexistent" version="2.0""#,
        )
    });
    // A schema version this tool does not know.
    both("8", &|p| {
        edit(
            p,
            r#"<class name="Job" version="1.6""#,
            r#"<class name="Job" version="1.7""#,
        )
    });
    // A value that is not a Python literal.
    both("13", &|p| {
        edit(p, "<value>'new'</value>", "<value>'new</value>")
    });
    // Only `data` damaged: Ganga's fallback to `data~` applies.
    truncate(&jobs.join("0/data"));
    // One subjob unreadable: the job is imported with that subjob marked incomplete.
    truncate(&jobs.join("9/3/data"));
    truncate(&jobs.join("9/3/data~"));
    // An unknown backend class: imported as far as possible, flagged.
    both("14", &|p| {
        edit(
            p,
            r#"<class name="Local" version="1.2" category="backends""#,
            r#"<class name="Remote" version="1.2" category="backends""#,
        )
    });

    let before = snapshot(&gangadir);
    let home = Home::new();
    let report = home.migrate(&gangadir, &options());
    eprintln!("{report}");
    let skipped: Vec<(String, String)> = report
        .problems_of(Severity::Skipped)
        .map(|p| (p.object.clone(), p.reason.clone()))
        .collect();
    let ids: Vec<&str> = skipped.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(ids, vec!["3", "6", "7", "8", "13"], "{skipped:?}");
    assert!(
        skipped[0].1.contains("data is not valid Ganga XML") && skipped[0].1.contains("truncated"),
        "{skipped:?}"
    );
    assert!(skipped[1].1.contains("atribute"), "{skipped:?}");
    assert!(
        skipped[2].1.contains("Nonexistent") && skipped[2].1.contains("only Executable"),
        "{skipped:?}"
    );
    assert!(
        skipped[3].1.contains("Job has schema version 1.7"),
        "{skipped:?}"
    );
    assert!(skipped[4].1.contains("not a Python literal"), "{skipped:?}");

    let r = &report.registries["jobs"];
    assert_eq!((r.found, r.imported, r.skipped), (20, 15, 5));
    let flagged: Vec<String> = report
        .problems_of(Severity::Flagged)
        .map(|p| format!("{}: {}", p.object, p.reason))
        .collect();
    assert!(
        flagged
            .iter()
            .any(|f| f.starts_with("0: read from data~ because data")),
        "{flagged:?}"
    );
    assert!(
        flagged
            .iter()
            .any(|f| f.starts_with("9.3: subjob imported as `incomplete`")),
        "{flagged:?}"
    );
    assert!(
        flagged
            .iter()
            .any(|f| f.starts_with("14: backend class Remote")),
        "{flagged:?}"
    );

    let stored = home.jobs();
    assert_eq!(stored.len(), 16, "15 jobs and the template");
    for id in [3, 6, 7, 8, 13] {
        assert!(home.store.job(id).unwrap().is_none(), "job {id}");
    }
    let j9 = home.store.job(9).unwrap().unwrap();
    let subjobs = home.subjobs(&j9);
    assert_eq!(subjobs.len(), 11);
    assert_eq!(subjobs[3].run.status, Status::Incomplete);
    assert_eq!(j9.subjobs.get(Status::Incomplete), 1);
    assert_eq!(
        home.store.job(14).unwrap().unwrap().spec.backend.kind,
        "remote"
    );
    assert_eq!(home.store.job(0).unwrap().unwrap().spec.name, "small-ok0");
    assert_eq!(
        snapshot(&gangadir),
        before,
        "damaged or not, the gangadir is only read"
    );

    // The rest matches Ganga's view (the undamaged jobs).
    let mut exp = expected("small.json");
    exp["jobs"]
        .as_array_mut()
        .unwrap()
        .retain(|j| ![0, 3, 6, 7, 8, 9, 13, 14].contains(&j["id"].as_u64().unwrap()));
    assert_eq!(compare(&home, &exp, "jobs", true).0, 12);
}

#[test]
fn a_directory_that_is_not_a_gangadir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::new();
    let err = ganga_migrate::migrate(tmp.path(), &home.store, &home.workspaces(), &options())
        .unwrap_err();
    assert!(matches!(err, MigrateError::NotAGangadir { .. }), "{err}");
    let err = ganga_migrate::migrate(
        &tmp.path().join("nope"),
        &home.store,
        &home.workspaces(),
        &options(),
    )
    .unwrap_err();
    assert!(matches!(err, MigrateError::Io { .. }), "{err}");
}
