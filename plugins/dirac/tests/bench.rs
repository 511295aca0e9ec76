//! The DIRAC backend's budgets, measured against the real test server (ignored by default;
//! `cargo xtask bench dirac` runs it, or
//! `cargo test -p ganga-backend-dirac --release --test bench -- --ignored --nocapture`):
//!
//! - submitting 1,000 subjobs that ship the same input file: at most 60 requests, 10 s;
//! - the status of 10,000 jobs (`poll_all`): at most 2 requests, 2 s.
//!
//! Request counts are the backend's own (every HTTP attempt, the sandbox store's too) and
//! are checked; times are printed, never asserted.

mod common;

use std::time::Instant;

use common::{Server, ids_of, reference, spec};
use ganga_core::{Backend as _, BackendRef, JobRef, RemoteStatus, SubmitSpec};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: run with --ignored (cargo xtask bench dirac)"]
async fn bench_dirac() {
    let server = Server::get().await;
    let home = tempfile::tempdir().expect("home");
    let token_file = home.path().join("token.json");
    std::fs::write(&token_file, server.token("alice", "user").await.to_string())
        .expect("token written");
    let backend = server.backend(
        home.path(),
        &server.url,
        &[("GANGA_DIRAC_TOKEN_FILE", token_file.display().to_string())],
    );
    let input = home.path().join("input.txt");
    std::fs::write(&input, format!("shared input {}\n", fastrand::u64(..))).expect("input written");

    // Submission of 1,000 subjobs.
    let specs: Vec<SubmitSpec> = (0..1000)
        .map(|i| {
            spec(
                home.path(),
                JobRef::subjob(1, i),
                std::slice::from_ref(&input),
            )
        })
        .collect();
    let before = backend.requests_sent();
    let t = Instant::now();
    let answers = backend.submit(&specs).await.expect("submitted");
    let submit_time = t.elapsed();
    let submit_requests = backend.requests_sent() - before;
    let ids = ids_of(&specs, &answers);

    // 9,000 more jobs, so that there are 10,000 to ask about.
    let more: Vec<SubmitSpec> = (1000..10_000)
        .map(|i| {
            spec(
                home.path(),
                JobRef::subjob(1, i),
                std::slice::from_ref(&input),
            )
        })
        .collect();
    let t = Instant::now();
    let more_ids = ids_of(&more, &backend.submit(&more).await.expect("submitted"));
    let more_time = t.elapsed();
    let all: Vec<BackendRef> = specs
        .iter()
        .chain(&more)
        .zip(ids.iter().chain(&more_ids))
        .map(|(s, id)| reference(s, id))
        .collect();
    assert_eq!(all.len(), 10_000);

    let mut poll_times = Vec::new();
    let mut poll_requests = Vec::new();
    for _ in 0..5 {
        let before = backend.requests_sent();
        let t = Instant::now();
        let answers = backend.poll_all(&all).await.expect("polled");
        poll_times.push(t.elapsed());
        poll_requests.push(backend.requests_sent() - before);
        assert_eq!(answers.len(), 10_000);
        assert!(
            answers
                .iter()
                .all(|(_, a)| a.as_ref().is_ok_and(|r| r.status == RemoteStatus::Queued))
        );
    }

    println!(
        "DIRAC backend against DiracX 0.7 on loopback ({}):",
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        }
    );
    println!(
        "  submit 1,000 subjobs:  {submit_requests} requests, {:.2} s  (budget: 60 requests, 10 s)",
        submit_time.as_secs_f64()
    );
    println!("  submit 9,000 more:     {:.2} s", more_time.as_secs_f64());
    for (i, (t, n)) in poll_times.iter().zip(&poll_requests).enumerate() {
        println!(
            "  status of 10,000 (#{}): {n} requests, {:.3} s  (budget: 2 requests, 2 s)",
            i + 1,
            t.as_secs_f64()
        );
    }
    let mut sorted = poll_times.clone();
    sorted.sort();
    println!(
        "  status of 10,000: median {:.3} s, best {:.3} s (server-bound: sqlite and Python on the same machine)",
        sorted[sorted.len() / 2].as_secs_f64(),
        sorted[0].as_secs_f64()
    );
    assert!(
        submit_requests <= 60,
        "{submit_requests} requests to submit 1,000 subjobs"
    );
    assert!(
        poll_requests.iter().all(|n| *n <= 2),
        "{poll_requests:?} requests for 10,000 statuses"
    );
}
