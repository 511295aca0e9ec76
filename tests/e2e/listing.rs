//! Listings of many subjobs: one job's, and every job's in a status (`subjobs --all`),
//! whole and in order whatever the cache holds.

use crate::util::Ganga;

/// The ids `populate` made failed: every seventh subjob from index 3.
fn failed_ids(jobs: &[u64], sizes: &[u32]) -> Vec<String> {
    jobs.iter()
        .zip(sizes)
        .flat_map(|(&id, &n)| {
            (0..n)
                .filter(|i| i % 7 == 3)
                .map(move |i| format!("{id}.{i}"))
        })
        .collect()
}

#[test]
fn every_failed_subjob_of_every_job_is_listed_as_a_table_and_as_json() {
    let g = Ganga::new();
    let sizes = [10, 2500, 4];
    let jobs = g.populate(3, &sizes);
    let expected = failed_ids(&jobs, &sizes);

    // JSON, through a cache far smaller than the job.
    let listed = g.json(&[
        "subjobs",
        "--all",
        "--status",
        "failed",
        "--json",
        "--cache-mib",
        "1",
    ]);
    let listed = listed.as_array().unwrap();
    let ids: Vec<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, expected);
    assert!(listed.iter().all(|s| s["run"]["status"] == "failed"));
    assert_eq!(listed[0]["job"], jobs[0]);
    assert_eq!(listed[0]["spec"]["application"]["args"][1], "a3");

    // The table: a header, then one row per subjob, in the same order.
    let table = g.run(&["subjobs", "--all", "--status", "failed"]);
    let mut lines = table.lines();
    assert!(
        lines.next().unwrap().trim_start().starts_with("id "),
        "{table}"
    );
    let rows: Vec<&str> = lines
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(rows, expected);

    // Without a status, every subjob; with one nothing is in, a sentence.
    let all = g.json(&["subjobs", "--all", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 2514);
    assert_eq!(
        g.run(&["subjobs", "--all", "--status", "killed"]).trim(),
        "no subjobs killed"
    );
    assert_eq!(
        g.run(&["subjobs", "--all", "--json", "-s", "killed"])
            .trim(),
        "[]"
    );
}

#[test]
fn one_jobs_many_subjobs_are_listed_whole_through_a_small_cache() {
    let g = Ganga::new();
    let big = g.populate(0, &[5000])[0];
    let listed = g.json(&["subjobs", &big.to_string(), "--json", "--cache-mib", "1"]);
    let indices: Vec<u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, (0..5000).collect::<Vec<u64>>());
    let table = g.run(&["subjobs", &big.to_string(), "--cache-mib", "1"]);
    assert_eq!(table.lines().count(), 5001);
    // The columns of rows past the first thousand line up with the header's.
    let header = table.lines().next().unwrap();
    let last = table.lines().last().unwrap();
    assert_eq!(
        last.find("completed"),
        header.find("status"),
        "{header}\n{last}"
    );
}

#[test]
fn subjobs_needs_a_job_or_all_but_not_both() {
    let g = Ganga::new();
    g.populate(0, &[3]);
    let err = g.fail(&["subjobs"]);
    assert!(err.contains("required") && err.contains("<JOB>"), "{err}");
    let err = g.fail(&["subjobs", "0", "--all"]);
    assert!(err.contains("cannot be used with"), "{err}");
}
