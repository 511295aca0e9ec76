//! The Local backend at scale: how long `submit` of N units takes, how many processes are
//! alive meanwhile (they must stay proportional to `max_parallel`, not to N), and
//! optionally how long until all have run.
//!
//! ```text
//! cargo run --release -p ganga-backend-local --example local_bench -- \
//!     [--units N] [--max-parallel P] [--wait] [--nofile LIMIT] [--home DIR] [--sample-ms MS]
//! ```
//!
//! Prints one JSON object. `--nofile` lowers this process's open-file limit first (as
//! `ulimit -n` would); `--wait` also waits until every unit succeeded. Each unit runs
//! `true`. Processes are counted by sampling `/proc` every `--sample-ms` milliseconds
//! (default 10; 0: not at all): those whose command line names `<home>/local` (runners,
//! wrappers) or whose working directory is under the home (programs). `submit_cpu_secs` leaves the sampler out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ganga_backend_local::LocalBackend;
use ganga_core::{Backend, BackendRef, JobRef, Options, RemoteStatus, SubmitSpec, Value};

struct Args {
    units: u32,
    max_parallel: u32,
    wait: bool,
    nofile: Option<u64>,
    home: Option<PathBuf>,
    /// 0: no sampling of processes.
    sample_ms: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        units: 10_000,
        max_parallel: 4,
        wait: false,
        nofile: None,
        home: None,
        sample_ms: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--units" => {
                args.units = value("--units")?
                    .parse()
                    .map_err(|e| format!("--units: {e}"))?
            }
            "--max-parallel" => {
                args.max_parallel = value("--max-parallel")?
                    .parse()
                    .map_err(|e| format!("--max-parallel: {e}"))?;
            }
            "--wait" => args.wait = true,
            "--nofile" => {
                args.nofile = Some(
                    value("--nofile")?
                        .parse()
                        .map_err(|e| format!("--nofile: {e}"))?,
                );
            }
            "--home" => args.home = Some(PathBuf::from(value("--home")?)),
            "--sample-ms" => {
                args.sample_ms = value("--sample-ms")?
                    .parse()
                    .map_err(|e| format!("--sample-ms: {e}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// Processes whose command line names the backend's directory `<home>/local` (runners,
/// wrappers), or whose working directory is under `home` (programs), this one aside.
fn processes_under(home: &Path) -> usize {
    use std::os::unix::ffi::OsStrExt;
    let local = home.join("local");
    let needle = local.as_os_str().as_bytes();
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|pid| pid != me)
        })
        .filter(|e| {
            let p = e.path();
            let in_cmdline = std::fs::read(p.join("cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle));
            in_cmdline || std::fs::read_link(p.join("cwd")).is_ok_and(|cwd| cwd.starts_with(home))
        })
        .count()
}

/// CPU time (user + system) of this process, or of the calling thread.
fn cpu_secs(who: i32) -> f64 {
    // SAFETY: getrusage fills the struct we pass, nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut u) } != 0 {
        return 0.0;
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    if let Some(limit) = args.nofile {
        let lim = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: setrlimit reads the struct we pass; nothing else is touched.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(format!("setrlimit: {}", std::io::Error::last_os_error()).into());
        }
    }
    let temp = tempfile::Builder::new()
        .prefix("ganga-local-bench")
        .tempdir()?;
    let home = args
        .home
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let options: Options = [(
        "max_parallel".to_owned(),
        Value::Integer(i64::from(args.max_parallel)),
    )]
    .into();
    let backend = LocalBackend::new(home.clone(), &options)?;
    let specs: Vec<SubmitSpec> = (0..args.units)
        .map(|i| {
            let workspace = home.join("workspace").join("1").join(i.to_string());
            SubmitSpec {
                job: JobRef::subjob(1, i),
                run: 1,
                previous_id: None,
                name: format!("bench unit {i}"),
                exe: "true".to_owned(),
                args: Vec::new(),
                env: Default::default(),
                input_files: Vec::new(),
                output_patterns: Vec::new(),
                output_dir: workspace.join("output"),
                workspace,
                options: Options::new(),
            }
        })
        .collect();

    // Sample processes from another thread.
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler_cpu = Arc::new(std::sync::Mutex::new(0.0f64));
    let sampler = {
        let (stop, peak, home, cpu) = (
            stop.clone(),
            peak.clone(),
            home.clone(),
            sampler_cpu.clone(),
        );
        let every = Duration::from_millis(args.sample_ms);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) && !every.is_zero() {
                peak.fetch_max(processes_under(&home), Ordering::Relaxed);
                if let Ok(mut c) = cpu.lock() {
                    *c = cpu_secs(libc::RUSAGE_THREAD);
                }
                std::thread::sleep(every);
            }
        })
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let fds_before = open_fds();
    let sampled_before = sampler_cpu.lock().map_or(0.0, |c| *c);
    let cpu_before = cpu_secs(libc::RUSAGE_SELF);
    let started = Instant::now();
    let answers = runtime.block_on(backend.submit(&specs))?;
    let submit_secs = started.elapsed().as_secs_f64();
    let sampled_after = sampler_cpu.lock().map_or(0.0, |c| *c);
    // The sampler's own CPU time is not the backend's.
    let submit_cpu_secs =
        cpu_secs(libc::RUSAGE_SELF) - cpu_before - (sampled_after - sampled_before);
    let fds_after = open_fds();
    let peak_during_submit = peak.load(Ordering::Relaxed);
    let refused = answers.iter().filter(|(_, a)| a.is_err()).count();
    if let Some((job, Err(e))) = answers.iter().find(|(_, a)| a.is_err()) {
        eprintln!("first refusal: {job}: {e}");
    }

    let mut result = serde_json::json!({
        "units": args.units,
        "max_parallel": args.max_parallel,
        "nofile": args.nofile,
        "submit_secs": submit_secs,
        "submit_cpu_secs": submit_cpu_secs,
        "load_average": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("").to_owned(),
        "refused": refused,
        "processes_alive_max_during_submit": peak_during_submit,
        "open_fds_before_submit": fds_before,
        "open_fds_after_submit": fds_after,
    });

    let refs: Vec<BackendRef> = specs
        .iter()
        .zip(&answers)
        .filter_map(|(s, (_, a))| {
            a.as_ref().ok().map(|sub| BackendRef {
                job: s.job,
                id: sub.id.clone(),
                run: s.run,
                workspace: s.workspace.clone(),
            })
        })
        .collect();
    if args.wait {
        let deadline = Instant::now() + Duration::from_secs(3600);
        let (succeeded, failed) = loop {
            let reports = runtime.block_on(backend.poll_all(&refs))?;
            let count = |want: RemoteStatus| {
                reports
                    .iter()
                    .filter(|(_, r)| r.as_ref().is_ok_and(|r| r.status == want))
                    .count()
            };
            let (ok, bad) = (
                count(RemoteStatus::Succeeded),
                reports.len()
                    - count(RemoteStatus::Succeeded)
                    - count(RemoteStatus::Queued)
                    - count(RemoteStatus::Running),
            );
            if ok + bad == refs.len() || Instant::now() > deadline {
                break (ok, bad);
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        result["run_secs"] = serde_json::json!(started.elapsed().as_secs_f64());
        result["succeeded"] = serde_json::json!(succeeded);
        result["not_succeeded"] = serde_json::json!(failed);
        result["processes_alive_max"] = serde_json::json!(peak.load(Ordering::Relaxed));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    if !args.wait {
        // Not waiting for them: take what is still queued out of the queue and let the
        // runners end before the home is removed (runners left behind would skew the
        // next measurement).
        runtime.block_on(backend.kill(&refs))?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while processes_under(&home) > 0 {
        if Instant::now() > deadline {
            return Err(format!("processes under {} did not end", home.display()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("{result}");
    Ok(())
}
