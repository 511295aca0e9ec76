//! `cargo xtask bench` end to end on the tiny workload (debug build, dynamic linking), so
//! that the harness cannot rot: every benchmark runs, and its figures add up.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The profile this test was built in (`target/<profile>/deps/bench-…`).
fn profile() -> &'static str {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let in_release = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .is_some_and(|n| n == "release");
    if in_release { "release" } else { "debug" }
}

#[test]
fn the_harness_runs_every_benchmark_on_the_tiny_workload() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json = dir.path().join("results.json");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--workload", "tiny", "--linking", "dynamic"])
        .args(["--profile", profile(), "--runs", "2", "--dir"])
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .output()
        .expect("xtask can be started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xtask bench failed:\n{stderr}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| benchmark"), "no table:\n{table}");

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the results file"))
            .expect("the results are JSON");
    assert!(report["machine"]["rustc"].is_string());
    assert_eq!(report["workload"]["name"], "tiny");
    let results = report["results"].as_array().expect("a list of results");
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["benchmark"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "store",
            "list",
            "load-one subjobs 13",
            "load-one show 13.550",
            "touch-all",
            "touch-all-subjobs",
            "churn",
            "migrate"
        ]
    );
    for r in results {
        assert_eq!(r["linking"], "dynamic");
        let runs = r["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), if r["benchmark"] == "store" { 1 } else { 2 });
        for run in runs {
            assert!(run["wall_secs"].as_f64().is_some_and(|w| w > 0.0), "{run}");
            assert!(run["peak_rss_kib"].as_u64().is_some_and(|k| k > 0), "{run}");
        }
    }
    let figure = |bench: &str, name: &str| {
        results
            .iter()
            .find(|r| r["benchmark"] == bench)
            .and_then(|r| r["figures"].as_array())
            .and_then(|fs| fs.iter().find(|f| f["name"] == name))
            .and_then(|f| f["value"].as_f64())
            .unwrap_or_else(|| panic!("no figure {name} of {bench}"))
    };
    // 3 x 50 + 1,100 subjobs in 14 jobs.
    assert_eq!(figure("store", "subjobs"), 1250.0);
    assert!(figure("store", "bytes_per_subjob") > 0.0);
    assert_eq!(figure("touch-all", "subjobs"), 1250.0);
    assert_eq!(figure("touch-all-subjobs", "subjobs"), 1250.0);
    assert_eq!(figure("churn", "changes"), 120.0);
    // Ganga's small fixture, migrated into a fresh store (the harness checks that all 93
    // subjobs were imported): the store is smaller than Ganga's repository.
    assert_eq!(figure("migrate", "subjobs"), 93.0);
    let store = figure("migrate", "store_bytes");
    assert!(store > 0.0 && store < figure("migrate", "repository_bytes"));
    assert!(figure("migrate", "gangadir_bytes") > figure("migrate", "repository_bytes"));
    let checks = &report["checks"]["dynamic"];
    assert_eq!(checks["jobs_listed"], 14);
    assert!(
        checks["cli_store"]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("libganga_store_lmdb.so")),
        "{checks}"
    );
    let first_churn = &results[6]["runs"][0]["driver"]["result"]["to_statuses"];
    assert_eq!(first_churn["submitting"], 120, "{first_churn}");
}

#[test]
fn asking_for_help_prints_the_usage_and_succeeds() {
    for flag in ["--help", "-h"] {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["bench", flag])
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("xtask can be started");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "bench {flag} failed:\n{stderr}");
        assert!(
            stdout.starts_with("cargo xtask bench [NAME...]") && stdout.contains("--no-build"),
            "no usage on stdout:\n{stdout}"
        );
        assert!(stderr.is_empty(), "bench {flag} said on stderr:\n{stderr}");
    }
    // A mistake still fails, with the usage.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--no-such-flag"])
        .output()
        .expect("xtask can be started");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cargo xtask bench [NAME...]"));
}
