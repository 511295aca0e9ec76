//! Many units under a low limit of open files. Alone in its test binary: it lowers this
//! process's `RLIMIT_NOFILE`, as `ulimit -n 1024` would (which made 880 of 2,000 subjobs
//! fail with "Too many open files" when each held a descriptor in the submitting ganga).

mod common;

use std::time::{Duration, Instant};

use common::*;
use ganga_core::{Backend, BackendRef, JobRef, RemoteStatus, SubmitSpec, Value};

const UNITS: u32 = 2_000;

fn limit_open_files(n: u64) {
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    assert_eq!(r, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_units_all_run_with_1024_open_files() {
    limit_open_files(1024);
    let home = home();
    let b = backend(home.path(), &[("max_parallel", Value::Integer(4))]);
    let specs: Vec<SubmitSpec> = (0..UNITS)
        .map(|i| spec_of(home.path(), JobRef::subjob(1, i), "true", &[]))
        .collect();
    let refs: Vec<BackendRef> = submit(&b, &specs)
        .await
        .into_iter()
        .map(|r| r.expect("every unit is accepted"))
        .collect();
    let fds = std::fs::read_dir("/proc/self/fd").expect("fds").count();
    assert!(fds < 64, "{fds} descriptors open after submitting");

    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let reports = b.poll_all(&refs).await.expect("poll_all");
        let mut succeeded = 0;
        for (job, r) in &reports {
            let r = r.as_ref().expect("a report");
            assert!(
                !is_final(r.status) || r.status == RemoteStatus::Succeeded,
                "{job}: {r:?}"
            );
            succeeded += usize::from(r.status == RemoteStatus::Succeeded);
        }
        if succeeded == refs.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{succeeded} of {} succeeded",
            refs.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
