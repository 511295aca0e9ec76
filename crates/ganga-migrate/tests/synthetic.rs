//! Hand-written repositories for what the fixtures lack: several users, older
//! (Python 2) values, constructor calls in values, inline subjobs, attributes and
//! repository kinds this tool does not know.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use common::{Home, options};
use ganga_core::{Status, Store};
use ganga_migrate::{IdPolicy, Severity, keys};

/// A minimal `Job` file; `extra` is spliced in among the attributes.
fn job_xml(id: u64, name: &str, status: &str, app: &str, extra: &str) -> String {
    format!(
        r#"<root>
 <class name="Job" version="1.5" category="jobs">
    <attribute name="id"> <value>{id}</value> </attribute>
    <attribute name="status"> <value>{status}</value> </attribute>
    <attribute name="name"> <value>{name}</value> </attribute>
    <attribute name="time">
      <class name="JobTime" version="0.0" category="jobtime">
        <attribute name="timestamps"> <value>{{u'new': datetime.datetime(2015, 3, 1, 10, 0, 0, 500999L)}}</value> </attribute>
      </class>
    </attribute>
    <attribute name="application">{app}</attribute>
    <attribute name="backend">
      <class name="Local" version="1.0" category="backends">
        <attribute name="id"> <value>-1</value> </attribute>
      </class>
    </attribute>
    {extra}
 </class>
</root>
"#
    )
}

const EXE: &str = r#"<class name="Executable" version="2.0" category="applications">
        <attribute name="exe"> <value>File(name=u'/opt/bin/run', subdir='.')</value> </attribute>
        <attribute name="args"> <value>[u'a', 2L, 3.5, True]</value> </attribute>
        <attribute name="env"> <value>{u'K': u'v\u00e9', 'N': 1}</value> </attribute>
      </class>"#;

fn put(repo: &Path, registry: &str, id: u64, sub: Option<u32>, xml: &str) {
    let mut dir = repo
        .join(registry)
        .join(format!("{}xxx", id / 1000))
        .join(id.to_string());
    if let Some(s) = sub {
        dir = dir.join(s.to_string());
    }
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("data"), xml).unwrap();
}

#[test]
fn several_users_old_values_calls_and_unknown_things() {
    let tmp = tempfile::tempdir().unwrap();
    let gd = tmp.path().join("gangadir");
    let alice = gd.join("repository/alice/LocalXML/6.0");
    let bob = gd.join("repository/bob/LocalXML/6.0");

    // alice 0: Python 2 values, a File exe as a call, inputs as calls, an unknown attribute.
    put(
        &alice,
        "jobs",
        0,
        None,
        &job_xml(
            0,
            "u'old'",
            "'completed'",
            EXE,
            r#"<attribute name="inputfiles"> <sequence> <value>LocalFile('in.txt', localDir='/data')</value> </sequence> </attribute>
    <attribute name="outputfiles"> <sequence> <value>MassStorageFile(namePattern='*.root')</value> </sequence> </attribute>
    <attribute name="frobnicate"> <value>1</value> </attribute>"#,
        ),
    );
    // alice 1: subjobs written inline in the master (older repositories).
    let inline_sub = |i: u32, st: &str| {
        job_xml(u64::from(i), "'split'", st, EXE, "")
            .replace("<root>\n", "")
            .replace("</root>\n", "")
            .replace("[u'a', 2L, 3.5, True]", &format!("['x{i}']"))
    };
    put(
        &alice,
        "jobs",
        1,
        None,
        &job_xml(
            1,
            "'split'",
            "'running'",
            EXE,
            &format!(
                r#"<attribute name="subjobs"> <sequence> {} {} </sequence> </attribute>"#,
                inline_sub(0, "'completed'"),
                inline_sub(1, "'running'")
            ),
        ),
    );
    // bob 0: a different user's job 0.
    put(
        &bob,
        "jobs",
        0,
        None,
        &job_xml(0, "'bobs'", "'new'", EXE, ""),
    );
    // Another kind of repository is reported, not read.
    fs::create_dir_all(gd.join("repository/carol/LocalPickle/6.0/jobs")).unwrap();

    let home = Home::new();
    let report = home.migrate(&gd, &options());
    eprintln!("{report}");
    assert_eq!(report.users, vec!["alice", "bob"]);
    assert_eq!(report.registries["alice/jobs"].imported, 2);
    assert_eq!(report.registries["bob/jobs"].imported, 1);
    assert_eq!(
        report.ids,
        IdPolicy::Renumbered,
        "bob's 0 cannot keep its id"
    );
    assert_eq!(report.renumbered.len(), 1);
    assert_eq!(report.renumbered[0].registry, "bob/jobs");
    assert_eq!(report.renumbered[0].id, 2);

    let old = home.store.job(0).unwrap().unwrap();
    assert_eq!(old.spec.name, "old");
    let exe = old.spec.application.executable();
    assert_eq!(exe.exe, "/opt/bin/run");
    assert_eq!(exe.args, vec!["a", "2", "3.5", "True"]);
    assert_eq!(exe.env["K"], "vé");
    assert_eq!(exe.env["N"], "1");
    assert_eq!(old.spec.input_files, vec![Path::new("/data/in.txt")]);
    assert_eq!(old.spec.output_files, vec!["*.root"]);
    assert_eq!(
        old.run.times.get(Status::New).unwrap().as_millis(),
        1_425_204_000_500
    );
    assert_eq!(old.metadata[keys::USER], "alice");

    let split = home.store.job(1).unwrap().unwrap();
    assert_eq!(split.status(), Status::Failed, "running in Ganga");
    let subjobs = home.store.subjobs(1, 0..2).unwrap();
    assert_eq!(subjobs.len(), 2);
    assert_eq!(
        subjobs[0].overrides,
        vec![ganga_core::Override::Args(vec!["x0".into()])]
    );
    assert_eq!(subjobs[1].run.status, Status::Failed);
    let active: Vec<&str> = report.active.iter().map(|a| a.ganga_ref.as_str()).collect();
    assert_eq!(active, vec!["alice/jobs 1", "alice/jobs 1.1"]);

    let bobs = home.store.job(2).unwrap().unwrap();
    assert_eq!(bobs.metadata[keys::USER], "bob");
    assert_eq!(bobs.metadata[keys::ID], "0");

    let flagged: Vec<String> = report
        .problems_of(Severity::Flagged)
        .map(|p| format!("{} {}: {}", p.registry, p.object, p.reason))
        .collect();
    assert!(
        flagged
            .iter()
            .any(|f| f.starts_with("alice/jobs 0: attribute `frobnicate`")),
        "{flagged:?}"
    );
    let not: Vec<String> = report
        .problems_of(Severity::NotMigrated)
        .map(|p| p.reason.clone())
        .collect();
    assert!(
        not.iter()
            .any(|r| r.contains("repository type LocalPickle")),
        "{not:?}"
    );

    // Again: nothing changes, for both users.
    let dump = home.store.dump().unwrap();
    let again = home.migrate(&gd, &options());
    assert_eq!(again.registries["alice/jobs"].already_migrated, 2);
    assert_eq!(again.registries["bob/jobs"].already_migrated, 1);
    assert_eq!(home.store.dump().unwrap(), dump);
}

/// Every directory under `dir` (itself included) that holds nothing.
fn empty_dirs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    if entries.is_empty() {
        out.push(dir.to_owned());
    }
    for e in entries {
        if e.file_type().unwrap().is_dir() {
            out.extend(empty_dirs(&e.path()));
        }
    }
    out
}

#[test]
fn only_outputs_that_hold_files_get_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let gd = tmp.path().join("gangadir");
    let repo = gd.join("repository/alice/LocalXML/6.0");
    let sub = |i: u32| {
        job_xml(u64::from(i), "'split'", "'completed'", EXE, "")
            .replace("<root>\n", "")
            .replace("</root>\n", "")
    };
    put(
        &repo,
        "jobs",
        0,
        None,
        &job_xml(
            0,
            "'split'",
            "'completed'",
            EXE,
            &format!(
                r#"<attribute name="subjobs"> <sequence> {} {} {} </sequence> </attribute>"#,
                sub(0),
                sub(1),
                sub(2)
            ),
        ),
    );
    // As Ganga leaves them: an output directory for every unit, most of them empty.
    let ws = gd.join("workspace/alice/LocalXML/0");
    fs::create_dir_all(ws.join("output")).unwrap();
    fs::create_dir_all(ws.join("0/output/logs")).unwrap();
    fs::write(ws.join("0/output/logs/run.log"), "ran\n").unwrap();
    fs::create_dir_all(ws.join("0/output/empty")).unwrap();
    fs::create_dir_all(ws.join("1/output")).unwrap();
    fs::create_dir_all(ws.join("2/output/nothing/here")).unwrap();

    let home = Home::new();
    let report = home.migrate(&gd, &options());
    assert_eq!(report.imported_jobs(), 1, "{report}");
    assert_eq!(report.workspace.files_copied, 1, "{:?}", report.workspace);
    let ours = home.workspaces();
    let first = ours.output_dir(ganga_core::JobRef::subjob(0, 0));
    assert_eq!(
        fs::read_to_string(first.join("logs/run.log")).unwrap(),
        "ran\n"
    );
    for unit in [
        ganga_core::JobRef::job(0),
        ganga_core::JobRef::subjob(0, 1),
        ganga_core::JobRef::subjob(0, 2),
    ] {
        let dir = ours.output_dir(unit);
        assert!(!dir.exists(), "{} made for nothing", dir.display());
    }
    let root = home.dir.path().join("workspace");
    assert_eq!(empty_dirs(&root), Vec::<std::path::PathBuf>::new());

    // A second run makes none either.
    home.migrate(&gd, &options());
    assert_eq!(empty_dirs(&root), Vec::<std::path::PathBuf>::new());
}
