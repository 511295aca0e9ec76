//! `monitor-cycle`: the monitoring service over many active units, with the fake backend
//! of test-support (which answers at once), so that what is measured is the monitor and
//! the store: reading the index of active units, deciding, committing.
//!
//! Jobs of `subjobs` subjobs each are submitted through `Operations` until `units` are
//! active; then the monitor runs. First every unit is `Running` at the backend: one cycle
//! turns them all from `submitted` to `running` (one status change each). Then every
//! unit has `Succeeded`: each becomes `completing`, has its outputs collected and ends
//! `completed` (two status changes each).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ganga_core::{
    Application, BackendConfig, Executable, JobSpec, RemoteStatus, Splitter, Workspaces,
};
use ganga_monitor::{Backends, Context, Monitor, MonitorSettings, Operations, StoreHandle, Until};
use ganga_test_support::FakeBackend;
use serde::Serialize;

/// What was measured.
#[derive(Debug, Serialize)]
pub(crate) struct Figures {
    pub(crate) units: u64,
    pub(crate) jobs: u64,
    pub(crate) submit_secs: f64,
    /// The peak resident memory once every unit was submitted, in KiB.
    pub(crate) submit_peak_rss_kib: Option<u64>,
    /// Whether the peak was reset after submitting (Linux: `/proc/self/clear_refs`), so
    /// that the process's peak RSS is the monitor's.
    pub(crate) peak_reset: bool,
    /// From the monitor's start until every unit was recorded `running`: one full cycle
    /// (read the active units, poll, decide, commit).
    pub(crate) cycle_secs: f64,
    pub(crate) cycle_changes: u64,
    /// The peak resident memory at the end of that cycle, in KiB (the process's peak,
    /// which the parent reads, is the peak to the end).
    pub(crate) cycle_peak_rss_kib: Option<u64>,
    /// CPU (user + system) of this process during that cycle, per status change.
    pub(crate) cycle_cpu_us_per_change: f64,
    /// From `Succeeded` at the backend until every unit was `completed`.
    pub(crate) finish_secs: f64,
    pub(crate) finish_changes: u64,
    pub(crate) finish_cpu_us_per_change: f64,
    pub(crate) polls: u64,
    pub(crate) outputs_collected: u64,
}

struct Fake(Arc<FakeBackend>);

impl Backends for Fake {
    fn backend(&self, name: &str) -> Result<Arc<dyn Backend>, String> {
        match name {
            "fake" => Ok(self.0.clone()),
            other => Err(format!("unknown backend `{other}`")),
        }
    }
}

use ganga_core::Backend;

fn spec(subjobs: u64) -> JobSpec {
    JobSpec {
        name: "bench".into(),
        comment: String::new(),
        application: Application::Executable(Executable {
            exe: "/bin/true".into(),
            args: Vec::new(),
            env: Default::default(),
        }),
        backend: BackendConfig::named("fake"),
        input_files: Vec::new(),
        output_files: Vec::new(),
        splitter: Some(Splitter::Args {
            args: (0..subjobs).map(|i| vec![i.to_string()]).collect(),
            append: false,
        }),
        auto_resubmit: None,
    }
}

/// CPU time (user + system) of this process so far.
fn cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` into the pointer it is given.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0;
    if !ok {
        return Duration::ZERO;
    }
    // SAFETY: getrusage succeeded, so it filled the struct.
    let u = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

pub(crate) fn monitor_cycle(
    store: Arc<dyn ganga_records::RecordStore>,
    home: &std::path::Path,
    units: u64,
    subjobs: u64,
    budget_bytes: u64,
) -> anyhow::Result<Figures> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("a runtime")?;
    runtime.block_on(run(store, home, units, subjobs.max(1), budget_bytes))
}

async fn run(
    store: Arc<dyn ganga_records::RecordStore>,
    home: &std::path::Path,
    units: u64,
    subjobs: u64,
    budget_bytes: u64,
) -> anyhow::Result<Figures> {
    let fake = Arc::new(FakeBackend::new("fake"));
    let ctx = Context::new(
        StoreHandle::new(store, budget_bytes),
        Arc::new(Fake(fake.clone())),
        Workspaces::new(home.join("workspace")),
        home.join("locks"),
    );
    let ops = Operations::new(ctx.clone());
    let jobs = units.div_ceil(subjobs);
    let started = Instant::now();
    for _ in 0..jobs {
        let report = ops.submit_spec(spec(subjobs)).await?;
        anyhow::ensure!(report.failed.is_empty(), "submission failed: {report:?}");
    }
    let submit_secs = started.elapsed().as_secs_f64();
    let total = jobs * subjobs;
    // The submission is the setup (users submit with another process): its memory is
    // not the monitor's. The kernel's high-water mark of resident memory, which the
    // parent reads from `wait4`, starts again from here.
    let submit_peak_rss_kib = crate::vm_hwm_kib();
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();

    let settings = MonitorSettings {
        interval: Some(Duration::from_millis(1)),
        ..MonitorSettings::default()
    };
    let monitor = Monitor::new(ctx, settings);
    fake.set_state(RemoteStatus::Running);
    let (mut changed, mut finished) = (0u64, 0u64);
    let (mut cycle, mut finish) = (None, None);
    let mut cycle_peak_rss_kib = None;
    let (mut cpu_at, mut t_at) = (cpu(), Instant::now());
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let t0 = Instant::now();
    monitor
        .run(
            Until::Stopped,
            async move {
                let _ = done_rx.wait_for(|d| *d).await;
            },
            |report| {
                changed += report.changed as u64;
                finished += report.finished as u64;
                if cycle.is_none() && changed >= total {
                    cycle = Some((t_at.elapsed(), cpu().saturating_sub(cpu_at)));
                    cycle_peak_rss_kib = crate::vm_hwm_kib();
                    fake.set_state(RemoteStatus::Succeeded);
                    (cpu_at, t_at) = (cpu(), Instant::now());
                    changed = 0;
                    finished = 0;
                } else if cycle.is_some() && finish.is_none() && finished >= total {
                    finish = Some((t_at.elapsed(), cpu().saturating_sub(cpu_at), changed));
                    let _ = done_tx.send(true);
                }
            },
        )
        .await?;
    let (cycle_time, cycle_cpu) =
        cycle.with_context(|| format!("not every unit ran after {:?}", t0.elapsed()))?;
    let (finish_time, finish_cpu, finish_changes) = finish.context("not every unit finished")?;
    let per = |cpu: Duration, n: u64| cpu.as_secs_f64() * 1e6 / n.max(1) as f64;
    Ok(Figures {
        units: total,
        jobs,
        submit_secs,
        submit_peak_rss_kib,
        peak_reset,
        cycle_secs: cycle_time.as_secs_f64(),
        cycle_changes: total,
        cycle_peak_rss_kib,
        cycle_cpu_us_per_change: per(cycle_cpu, total),
        finish_secs: finish_time.as_secs_f64(),
        finish_changes,
        finish_cpu_us_per_change: per(finish_cpu, finish_changes),
        polls: fake.polls.load(Ordering::Relaxed),
        outputs_collected: fake.collected.load(Ordering::Relaxed),
    })
}
