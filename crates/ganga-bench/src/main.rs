//! `ganga-bench`: the benchmark driver `cargo xtask bench` runs as a child process.
//!
//! Each subcommand opens the store the way the `ganga` binary does (the LMDB store loaded
//! from `libganga_store_lmdb.so` through the plugin host's catalog, or linked in with the
//! `static-plugins` feature), does one piece of work through the public `Store` and
//! `Cache` APIs, and prints one JSON object on stdout with what it did and how long the
//! work took (measured with `Instant`, after setup). It never measures memory: the parent
//! takes the peak RSS of this process from the operating system.
//!
//! It is not a library, and knows nothing of the store's format.

mod churn;
mod exits;
mod generate;
mod monitor;
mod poll;
mod populate;
mod touch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ganga_core::Options;
use ganga_monitor::Cache;
use ganga_plugin_host::{Catalog, PluginKind};
use ganga_protocol::PluginContext;
use ganga_records::RecordStore;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The `ganga` CLI's default cache budget (`[store] cache_budget_mib`).
const DEFAULT_BUDGET_MIB: u64 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "ganga-bench",
    about = "The benchmark driver of `cargo xtask bench`"
)]
struct Args {
    /// Also look for plugin libraries in DIR (before the binary's own directory)
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the jobs of a workload file's `[store]` table in a fresh home
    Populate {
        #[arg(long)]
        home: PathBuf,
        #[arg(long)]
        workload: PathBuf,
    },
    /// Read every job and every subjob's status through the cache
    TouchAll {
        #[arg(long)]
        home: PathBuf,
        #[arg(long, default_value_t = DEFAULT_BUDGET_MIB)]
        budget_mib: u64,
        /// Read only the statuses (`Cache::statuses`) or every subjob in full
        /// (`Cache::subjobs`)
        #[arg(long, value_enum, default_value = "statuses")]
        read: touch::Read,
    },
    /// Commit status changes of subjobs in batches
    Churn {
        #[arg(long)]
        home: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        changes: u64,
        #[arg(long, default_value_t = 1_000)]
        batch: u32,
        #[arg(long, default_value_t = 50)]
        jobs_per_batch: u32,
        /// How many subjobs that finish end `failed`, in percent
        #[arg(long, default_value_t = 5)]
        failed_percent: u32,
        #[arg(long, default_value_t = DEFAULT_BUDGET_MIB)]
        budget_mib: u64,
    },
    /// Drive many active units with the monitor and test-support's fake backend: one
    /// full cycle (submitted -> running), then every unit to the end
    MonitorCycle {
        #[arg(long)]
        home: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        units: u64,
        /// Subjobs per job
        #[arg(long, default_value_t = 1_000)]
        subjobs: u64,
        #[arg(long, default_value_t = DEFAULT_BUDGET_MIB)]
        budget_mib: u64,
    },
    /// How long after each subjob's exit record (Local backend) the store recorded it
    /// `completing` and `completed`
    Exits {
        #[arg(long)]
        home: PathBuf,
        #[arg(long)]
        job: u64,
        /// Whose exit records
        #[arg(long, value_enum, default_value = "local")]
        backend: exits::Records,
    },
    /// One `poll_all` of a real backend over every unit of it active in the home
    PollAll {
        #[arg(long)]
        home: PathBuf,
        #[arg(long)]
        backend: String,
        /// A ganga config file whose `[plugin.BACKEND]` table the backend gets
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Say where the store comes from and describe it
    Info {
        #[arg(long)]
        home: PathBuf,
    },
}

/// At most two malloc arenas, as the `ganga` binary sets (see its `cap_malloc_arenas`),
/// so that the memory measured is what `ganga` would use.
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of glibc's allocator; called before any thread
    // is started.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> anyhow::Result<()> {
    cap_malloc_arenas();
    let args = Args::parse();
    let setup = Instant::now();
    let report = match args.command {
        Command::Populate { home, workload } => {
            let shape = read_shape(&workload)?;
            let opened = open_store(&home, &args.plugin_dirs)?;
            let setup_secs = setup.elapsed().as_secs_f64();
            let done = populate::populate(opened.store.as_ref(), &shape)?;
            json!({"command": "populate", "store": opened.describe()?, "setup_secs": setup_secs, "result": done, "memory_at_end": memory_at_end()})
        }
        Command::TouchAll {
            home,
            budget_mib,
            read,
        } => {
            let opened = open_store(&home, &args.plugin_dirs)?;
            let cache = Cache::new(opened.store.clone(), budget_mib.saturating_mul(1 << 20));
            let setup_secs = setup.elapsed().as_secs_f64();
            let done = touch::touch_all(&cache, read)?;
            json!({"command": "touch-all", "store": opened.describe()?, "budget_mib": budget_mib, "read": read, "setup_secs": setup_secs, "result": done, "memory_at_end": memory_at_end()})
        }
        Command::Churn {
            home,
            changes,
            batch,
            jobs_per_batch,
            failed_percent,
            budget_mib,
        } => {
            let opened = open_store(&home, &args.plugin_dirs)?;
            let cache = Cache::new(opened.store.clone(), budget_mib.saturating_mul(1 << 20));
            let setup_secs = setup.elapsed().as_secs_f64();
            let plan = churn::Plan {
                changes,
                batch,
                jobs_per_batch,
                failed_percent,
            };
            let done = churn::churn(&cache, plan)?;
            json!({"command": "churn", "store": opened.describe()?, "budget_mib": budget_mib, "setup_secs": setup_secs, "result": done, "memory_at_end": memory_at_end()})
        }
        Command::MonitorCycle {
            home,
            units,
            subjobs,
            budget_mib,
        } => {
            let opened = open_store(&home, &args.plugin_dirs)?;
            let setup_secs = setup.elapsed().as_secs_f64();
            let done = monitor::monitor_cycle(
                opened.store.clone(),
                &home,
                units,
                subjobs,
                budget_mib.saturating_mul(1 << 20),
            )?;
            json!({"command": "monitor-cycle", "store": opened.describe()?, "budget_mib": budget_mib, "setup_secs": setup_secs, "result": done, "memory_at_end": memory_at_end()})
        }
        Command::Exits { home, job, backend } => {
            let opened = open_store(&home, &args.plugin_dirs)?;
            let cache = Cache::new(opened.store.clone(), DEFAULT_BUDGET_MIB << 20);
            let done = exits::exits(&cache, &home, job, backend)?;
            json!({"command": "exits", "result": done})
        }
        Command::PollAll {
            home,
            backend,
            config,
        } => {
            let opened = open_store(&home, &args.plugin_dirs)?;
            let options = match &config {
                Some(c) => poll::plugin_options(c, &backend)?,
                None => Options::new(),
            };
            let done = poll::poll_all(&opened.store, &opened.catalog, &home, &backend, options)?;
            json!({"command": "poll-all", "result": done})
        }
        Command::Info { home } => {
            let opened = open_store(&home, &args.plugin_dirs)?;
            json!({"command": "info", "store": opened.describe()?})
        }
    };
    println!("{report}");
    Ok(())
}

/// This process's peak resident memory so far (`VmHWM`), in KiB.
pub(crate) fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// This process's resident memory when the work is done, split as the kernel splits it
/// (`/proc/self/status`): anonymous memory (the heap: the cache, decoded records) and
/// file pages (the store's memory map). A diagnosis beside the peak RSS the parent takes
/// from `wait4`, not a replacement for it.
fn memory_at_end() -> serde_json::Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    json!({
        "vm_hwm_kib": field("VmHWM"),
        "vm_rss_kib": field("VmRSS"),
        "rss_anon_kib": field("RssAnon"),
        "rss_file_kib": field("RssFile"),
    })
}

#[derive(Deserialize)]
struct WorkloadFile {
    store: populate::Shape,
}

fn read_shape(path: &Path) -> anyhow::Result<populate::Shape> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read workload file {}", path.display()))?;
    let file: WorkloadFile =
        toml::from_str(&text).with_context(|| format!("workload file {}", path.display()))?;
    Ok(file.store)
}

/// The store, and the catalog it came from (kept alive beside it).
struct Opened {
    store: Arc<dyn RecordStore>,
    /// The library the store was loaded from; `None` when linked in.
    library: Option<PathBuf>,
    catalog: Catalog,
}

#[derive(Serialize)]
struct StoreFigures {
    /// `linked` or the library's path.
    plugin: String,
    name: String,
    version: String,
    format_version: u32,
    location: String,
}

impl Opened {
    fn describe(&self) -> anyhow::Result<StoreFigures> {
        let d = self.store.describe()?;
        Ok(StoreFigures {
            plugin: self
                .library
                .as_ref()
                .map_or_else(|| "linked".to_owned(), |p| p.display().to_string()),
            name: d.name,
            version: d.version,
            format_version: d.format_version,
            location: d.location,
        })
    }
}

/// Opens the `lmdb` store of `home` as the `ganga` binary does: plugins linked in first
/// (with the `static-plugins` feature), then libraries found in `plugin_dirs` and beside
/// this binary.
fn open_store(home: &Path, plugin_dirs: &[PathBuf]) -> anyhow::Result<Opened> {
    std::fs::create_dir_all(home)
        .with_context(|| format!("cannot create the home {}", home.display()))?;
    let home = std::path::absolute(home).unwrap_or_else(|_| home.to_owned());
    let mut catalog = Catalog::new();
    link_static_plugins(&mut catalog);
    for dir in plugin_dirs {
        catalog.scan_dir(dir);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::parent)
    {
        catalog.scan_dir(dir);
    }
    let context = PluginContext {
        home_id: String::new(),
        home,
        config: Options::new(),
    };
    let store = catalog.store("lmdb", &context)?;
    let library = catalog
        .plugins()
        .find(|p| p.kind == PluginKind::Store && p.name == "lmdb")
        .and_then(|p| p.file.clone());
    Ok(Opened {
        store,
        library,
        catalog,
    })
}

#[cfg(feature = "static-plugins")]
fn link_static_plugins(catalog: &mut Catalog) {
    use ganga_plugin_sdk::StorePlugin as _;
    catalog.link_store("lmdb", env!("CARGO_PKG_VERSION"), |context| {
        Ok(Arc::new(ganga_store_lmdb::LmdbStore::create(context)?) as Arc<dyn RecordStore>)
    });
}

#[cfg(not(feature = "static-plugins"))]
fn link_static_plugins(_catalog: &mut Catalog) {}

#[cfg(test)]
mod tests {
    //! The driver's work against a real store linked in, without the harness: the store
    //! must find nothing wrong after each step, and the figures must add up.

    use super::*;
    use ganga_core::Status;
    use ganga_store_lmdb::LmdbStore;

    fn shape() -> populate::Shape {
        toml::from_str(
            "masters = 3\nsubjobs_per_master = 50\nplain_jobs = 10\nbig_job_subjobs = 1100\n\
             plain_jobs_per_commit = 4",
        )
        .expect("a valid shape")
    }

    #[test]
    fn populate_touch_and_churn_leave_a_consistent_store() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store: Arc<dyn RecordStore> =
            Arc::new(LmdbStore::open(dir.path()).expect("a new store"));

        let done = populate::populate(store.as_ref(), &shape()).expect("populate");
        assert_eq!((done.jobs, done.subjobs), (14, 3 * 50 + 1100));
        assert_eq!(done.big_job, Some(13));
        // One commit per master (taking the plain jobs gathered before it along), one
        // when 4 plain jobs are gathered, one for the big job: 3 plain jobs after the
        // first master and 3 after the second go with the next master; the last 4 are
        // one commit.
        assert_eq!(done.commits, 3 + 1 + 1);
        let report = store.check().expect("check");
        assert!(report.problems.is_empty(), "{:#?}", report.problems);
        assert_eq!((report.jobs, report.subjobs), (14, 1250));

        let cache = Cache::new(store.clone(), 1 << 20);
        let touched = touch::touch_all(&cache, touch::Read::Subjobs).expect("touch-all");
        assert_eq!((touched.jobs, touched.subjobs), (14, 1250));
        assert_eq!(touched.unreadable, 0);
        let cold = Cache::new(store.clone(), 1 << 20);
        let statuses = touch::touch_all(&cold, touch::Read::Statuses).expect("touch-all");
        assert_eq!(statuses.subjob_statuses, touched.subjob_statuses);

        let plan = churn::Plan {
            changes: 120,
            batch: 40,
            jobs_per_batch: 4,
            failed_percent: 5,
        };
        let churned = churn::churn(&cache, plan).expect("churn");
        assert_eq!((churned.changes, churned.commits), (120, 3));
        // Each master got three visits of ten different subjobs, all completed or failed:
        // one step makes them submitting.
        assert_eq!(churned.to_statuses.get("submitting"), Some(&120));
        let report = store.check().expect("check");
        assert!(report.problems.is_empty(), "{:#?}", report.problems);
        let again = churn::churn(&cache, plan).expect("a second churn");
        assert_eq!(again.to_statuses.get("submitted"), Some(&120));
        let cold = Cache::new(store.clone(), 1 << 20);
        let touched = touch::touch_all(&cold, touch::Read::Statuses).expect("touch");
        assert_eq!(touched.subjob_statuses.get("submitted"), Some(&120));
        let masters_submitted = touched.job_statuses.get(Status::Submitted.as_str());
        assert_eq!(masters_submitted, Some(&4));
    }
}
