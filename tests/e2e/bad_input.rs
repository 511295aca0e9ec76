//! Bad input gets a clear error naming the thing and the cause, and nothing stored is lost.

use ganga_test_support::built_plugin;

use crate::util::Ganga;

/// Submits `toml` as a job file and returns the error, with the temp path made stable.
fn job_file_error(g: &Ganga, toml: &str) -> String {
    let file = g.job_file("bad.toml", toml);
    let err = g.fail(&["submit", file.to_str().unwrap()]);
    err.replace(&file.display().to_string(), "bad.toml")
        .trim()
        .to_owned()
}

#[test]
fn malformed_job_files_are_reported_with_file_line_and_field() {
    let g = Ganga::new();
    let cases = [
        ("wrong type", "name = \"x\"\n[application]\nexe = 3\n"),
        (
            "unknown field",
            "[application]\nexe = \"/bin/true\"\nexecutable = \"/bin/echo\"\n",
        ),
        (
            "missing exe",
            "name = \"x\"\n[application]\nargs = [\"a\"]\n",
        ),
        ("not toml", "name = \"x\n[application]\n"),
        (
            "bad arg",
            "[application]\nexe = \"/bin/echo\"\nargs = [\"a\", [1]]\n",
        ),
        (
            "missing input file",
            "input_files = [\"nope.txt\"]\n[application]\nexe = \"/bin/true\"\n",
        ),
        (
            "bad splitter",
            "[application]\nexe = \"/bin/true\"\n[splitter]\ntype = \"generic\"\n[splitter.attributes]\nname = [\"a\", \"b\"]\ncomment = [\"c\"]\n",
        ),
        (
            "unknown splitter",
            "[application]\nexe = \"/bin/true\"\n[splitter]\ntype = \"dataset\"\n",
        ),
    ];
    let mut report = String::new();
    for (what, toml) in cases {
        let err = job_file_error(&g, toml);
        let err = err.replace(&g.dir.path().display().to_string(), "<tmp>");
        report.push_str(&format!("## {what}\n{err}\n\n"));
    }
    insta::assert_snapshot!(report);
    // Nothing was stored by any of them.
    assert_eq!(g.run(&["jobs"]).trim(), "no jobs");
}

#[test]
fn an_unknown_backend_type_lists_the_loaded_ones() {
    let g = Ganga::new();
    let file = g.job_file(
        "slurmm.toml",
        "[application]\nexe = \"/bin/true\"\n\n[backend]\ntype = \"slurmm\"\n",
    );
    let err = g.fail(&["submit", file.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{}:5:8: backend.type:", file.display())),
        "{err}"
    );
    assert!(
        err.contains("unknown backend `slurmm`; loaded backends: batch, example, local"),
        "{err}"
    );
    assert_eq!(g.run(&["jobs"]).trim(), "no jobs");
}

#[test]
fn a_plugin_built_for_another_abi_is_refused_naming_it_and_both_versions() {
    let g = Ganga::new();
    let plugin = built_plugin("ganga-testplugin-wrong-abi");
    let err = g.fail(&["--plugin", plugin.to_str().unwrap(), "plugins"]);
    assert!(
        err.contains("plugin `wrong-abi`")
            && err.contains("was built for plugin ABI 2, and this ganga speaks plugin ABI 1"),
        "{err}"
    );

    // Found by searching, it is refused and listed, and ganga goes on.
    let dir = g.path("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join(
        plugin
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .replace("testplugin", "backend"),
    );
    std::fs::copy(&plugin, &copy).unwrap();
    let out = g.run(&["--plugin-dir", dir.to_str().unwrap(), "plugins"]);
    assert!(out.contains("local") && out.contains("lmdb"), "{out}");
    // The copy's file name no longer matches its declaration symbol, so it is refused
    // for that; the original name is refused for its ABI (above).
    assert!(
        out.contains(&format!("{} refused", copy.display())),
        "{out}"
    );
}

#[test]
fn a_corrupt_record_makes_that_job_unreadable_and_the_others_still_list() {
    let g = Ganga::new();
    let file = g.job_file(
        "ok.toml",
        "name = \"fine\"\n[application]\nexe = \"/bin/true\"\n",
    );
    for _ in 0..3 {
        g.run(&["submit", "--wait", file.to_str().unwrap()]);
    }
    {
        // Damage job 1's records as a disk fault would, with no ganga running.
        let store = ganga_store_lmdb::LmdbStore::open(&g.home().join("store")).unwrap();
        let key = 1u64.to_be_bytes();
        store
            .raw_put("summaries", &key, b"\xff\x00garbage")
            .unwrap();
        store.raw_put("jobs", &key, b"\xa1\x61").unwrap();
    }
    let out = g.output(&["jobs"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("fine") && stdout.lines().count() == 4,
        "{stdout}"
    );
    assert!(stdout.contains("unreadable"), "{stdout}");
    assert!(stderr.contains("warning: job 1 is unreadable"), "{stderr}");

    let err = g.fail(&["show", "1"]);
    assert!(err.contains("job 1: record unreadable"), "{err}");
    // The others are intact.
    assert_eq!(g.status("0"), "completed");
    assert_eq!(g.status("2"), "completed");
    let listed = g.json(&["jobs", "--json"]);
    assert_eq!(listed[1]["id"], 1);
    assert!(listed[1]["unreadable"].is_string());
}

#[test]
fn a_malformed_config_file_is_reported_with_its_line() {
    let g = Ganga::new();
    std::fs::write(
        g.home().join("config.toml"),
        "[monitor]\ninterval_secs = \"fast\"\n",
    )
    .unwrap();
    let err = g.fail(&["jobs"]);
    assert!(
        err.contains(
            "config.toml:2:17: monitor.interval_secs: invalid type: string \"fast\", expected f64"
        ),
        "{err}"
    );
}
