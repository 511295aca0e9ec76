//! A session: the home, the config, the plugins and the store, resolved once, and what
//! is made from them (operations, a monitor, job definitions checked against the
//! backends). Callers get what they need from a [`Session`] and never resolve paths or
//! read config files themselves.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ganga_core::{
    ActiveJob, ActiveUnit, Backend, Change, CheckReport, Committed, Job, JobId, Store,
    StoreDescription, StoreError, Subjob, SubjobIndex, SummaryEntry, UnitCursor, UnitUpdate,
    UnitsUpdated, Workspaces,
};
use ganga_monitor::{
    Backends, Context, Monitor, MonitorSettings, Operations, StoreHandle, SubmitReport,
};
use ganga_plugin_host::{Catalog, PluginKind};
use ganga_protocol::PluginContext;
use ganga_records::{JobRecord, RecordChanges, RecordStore, SubjobBatch};

use crate::config::{Config, Umask};
use crate::validate::JobDefinition;
use crate::{SessionError, jobfile};

/// What a session is opened with; everything left out is found as the `ganga` command
/// finds it (environment, config file, defaults).
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// The home [default: `$GANGA_HOME`, else `<XDG data dir>/ganga`].
    pub home: Option<PathBuf>,
    /// The config file, which must exist [default: `$GANGA_CONFIG`, else
    /// `<home>/config.toml`, else `<XDG config dir>/ganga/config.toml`, else none].
    pub config: Option<PathBuf>,
    /// Directories searched for plugins before every other place.
    pub plugin_dirs: Vec<PathBuf>,
    /// Plugin libraries loaded before any found by searching; a refused one is an error.
    pub plugin_files: Vec<PathBuf>,
    /// The cache budget in MiB, instead of the config's.
    pub cache_mib: Option<u64>,
    /// The directories of the program hosting the session, searched last: for each,
    /// `<dir>/plugins`, then `<dir>` itself. The `ganga` binary passes its own directory
    /// ([`exe_dir`]); the Python module its package's directory and that of the `ganga`
    /// found on `PATH` ([`ganga_on_path`]).
    pub host_dirs: Vec<PathBuf>,
}

/// The directory of the running program (for a `ganga` binary: where its plugins are
/// installed beside it, or the cargo build directory).
pub fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_owned)
}

/// The directory of the `ganga` command found on `PATH`, links resolved: where a process
/// that is not `ganga` itself (a Python interpreter) finds the plugins installed with it.
pub fn ganga_on_path() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join("ganga"))
        .find(|f| {
            f.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .and_then(|f| f.canonicalize().ok())
        .and_then(|f| f.parent().map(Path::to_owned))
}

/// The home, config, plugins and store of one `ganga` process (or one Python session).
pub struct Session {
    home: PathBuf,
    config: Config,
    config_file: Option<PathBuf>,
    catalog: Arc<Catalog>,
    /// Where plugins were looked for, in order.
    search_path: Vec<PathBuf>,
    context: OnceLock<Context>,
    /// Held while the context is made, so that two threads never open the store twice.
    making_context: Mutex<()>,
    home_id: OnceLock<String>,
    options: SessionOptions,
}

/// How [`Session::wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Every job has ended.
    Ended,
    /// The timeout passed first.
    TimedOut,
    /// The caller's stop future completed first.
    Stopped,
}

/// What [`Session::wait`] tells its caller on the way.
#[derive(Debug)]
pub enum WaitEvent<'a> {
    /// A job as read now (each job each round, whether or not it changed).
    Progress(&'a Job),
    /// Another process monitors the home (its pid, if known): this one only watches the
    /// store. Said once.
    Watching { holder: Option<u32> },
}

impl Session {
    pub fn open(options: &SessionOptions) -> Result<Session, SessionError> {
        let home = match &options.home {
            Some(h) => h.clone(),
            None => match std::env::var_os("GANGA_HOME").filter(|h| !h.is_empty()) {
                Some(h) => PathBuf::from(h),
                None => dirs::data_dir()
                    .map(|d| d.join("ganga"))
                    .ok_or(SessionError::NoHome)?,
            },
        };
        let home = std::path::absolute(&home).unwrap_or(home);
        let explicit_config = options.config.clone().or_else(|| {
            std::env::var_os("GANGA_CONFIG")
                .filter(|c| !c.is_empty())
                .map(PathBuf::from)
        });
        let (mut config, config_file) = Config::load(explicit_config.as_deref(), &home)?;
        // Before anything is created: the home, the store, workspaces, and every file a
        // job writes (jobs inherit it) are made with it.
        set_umask(config.home.umask);
        if let Some(mib) = options.cache_mib {
            config.store.cache_budget_mib = mib;
        }

        let mut catalog = Catalog::new();
        link_static_plugins(&mut catalog);
        for file in &options.plugin_files {
            catalog
                .load_file(file)
                .map_err(|refusal| SessionError::PluginRefused(refusal.to_string()))?;
        }
        let search_path = search_path(options, &config);
        for dir in &search_path {
            catalog.scan_dir(dir);
        }
        Ok(Session {
            home,
            config,
            config_file,
            catalog: Arc::new(catalog),
            search_path,
            context: OnceLock::new(),
            making_context: Mutex::new(()),
            home_id: OnceLock::new(),
            options: options.clone(),
        })
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The config file read, if any.
    pub fn config_file(&self) -> Option<&Path> {
        self.config_file.as_deref()
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Where plugins were looked for, in order.
    pub fn search_path(&self) -> &[PathBuf] {
        &self.search_path
    }

    /// A backend, made without opening the store (for its own commands).
    pub fn backend(&self, name: &str) -> Result<Arc<dyn Backend>, String> {
        std::fs::create_dir_all(&self.home)
            .map_err(|e| format!("cannot create the ganga home {}: {e}", self.home.display()))?;
        self.catalog
            .backend(name, &self.plugin_context(name))
            .map_err(|e| e.to_string())
    }

    fn plugin_context(&self, name: &str) -> PluginContext {
        PluginContext {
            home: self.home.clone(),
            config: self.config.plugin_options(name),
            home_id: self.home_id(),
        }
    }

    /// The home's id (see [`home_id`]), read once.
    fn home_id(&self) -> String {
        self.home_id
            .get_or_init(|| home_id(&self.home).unwrap_or_default())
            .clone()
    }

    pub fn workspaces(&self) -> Workspaces {
        Workspaces::new(self.home.join("workspace"))
    }

    /// The store, cache and backends, made on first use (so `ganga plugins` opens no store).
    pub fn context(&self) -> Result<&Context, SessionError> {
        if let Some(c) = self.context.get() {
            return Ok(c);
        }
        let _making = self
            .making_context
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = self.context.get() {
            return Ok(c);
        }
        if self.home.to_str().is_none() {
            return Err(SessionError::HomeNotUtf8(self.home.clone()));
        }
        std::fs::create_dir_all(&self.home).map_err(|cause| SessionError::CreateHome {
            path: self.home.clone(),
            cause,
        })?;
        let name = &self.config.store.plugin;
        crate::fault::name_store(&format!("the `{name}` store of {}", self.home.display()));
        let store = {
            let _opening = crate::fault::StoreCall::enter();
            self.catalog.store(name, &self.plugin_context(name))?
        };
        let store: Arc<dyn RecordStore> = Arc::new(LocatedStore::new(store, name, &self.home));
        let budget = self
            .config
            .store
            .cache_budget_mib
            .saturating_mul(1024 * 1024);
        let backends = Arc::new(CatalogBackends {
            catalog: self.catalog.clone(),
            home: self.home.clone(),
            home_id: self.home_id(),
            config: self
                .config
                .plugin
                .keys()
                .map(|k| (k.clone(), self.config.plugin_options(k)))
                .collect(),
        });
        let context = Context::new(
            StoreHandle::new(store, budget),
            backends,
            self.workspaces(),
            self.home.join("locks"),
        )
        .with_call_timeout(secs(self.config.monitor.call_timeout_secs, 1.0));
        Ok(self.context.get_or_init(|| context))
    }

    pub fn operations(&self) -> Result<Operations, SessionError> {
        Ok(Operations::new(self.context()?.clone()))
    }

    /// A monitor as the config says, with `interval` (seconds) for every backend if given.
    pub fn monitor(&self, interval: Option<f64>) -> Result<Monitor, SessionError> {
        let m = &self.config.monitor;
        if m.submit_grace_secs.is_some() {
            tracing::warn!(
                "monitor.submit_grace_secs is no longer used: interrupted submissions are asked about"
            );
        }
        let settings = MonitorSettings {
            interval: interval.or(m.interval_secs).map(|s| secs(s, 0.05)),
            intervals: m
                .backend
                .iter()
                .filter_map(|(name, pace)| Some((name.clone(), secs(pace.interval_secs?, 0.05))))
                .collect(),
            quiet_factor: m.quiet_factor.max(1),
            error_cap: secs(m.error_backoff_max_secs, 1.0),
            lost_grace: secs(m.lost_grace_secs, 0.0),
            poll_concurrency: m.poll_concurrency.max(1),
            finalise_concurrency: m.finalise_concurrency.max(1),
            auto_resubmit: m.auto_resubmit.as_ref().and_then(|a| a.policy()),
            idle_exit: None,
            control_socket: Some(self.control_socket()),
            watch_wait: Duration::from_secs(5),
        };
        Ok(Monitor::new(self.context()?.clone(), settings))
    }

    /// How long a background monitor goes on with nothing to do, as the config says
    /// (`None`: until stopped).
    pub fn idle_exit(&self) -> Option<Duration> {
        let idle = self.config.monitor.idle_exit_secs;
        (idle.is_finite() && idle >= 0.0).then(|| Duration::from_secs_f64(idle))
    }

    /// Where the running monitor listens for other processes.
    pub fn control_socket(&self) -> PathBuf {
        self.home.join("monitor.sock")
    }

    /// Where a background monitor writes its log.
    pub fn monitor_log(&self) -> PathBuf {
        self.home.join("monitor.log")
    }

    /// How this session was opened, as `ganga` arguments, for starting a `ganga` with
    /// the same home, config and plugins (a background monitor, a checker).
    pub fn setup_args(&self) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["--home".into(), self.home.clone().into()];
        if let Some(config) = &self.config_file {
            args.extend(["--config".into(), config.clone().into()]);
        }
        for dir in &self.options.plugin_dirs {
            args.extend(["--plugin-dir".into(), dir.clone().into()]);
        }
        for file in &self.options.plugin_files {
            args.extend(["--plugin".into(), file.clone().into()]);
        }
        if let Some(mib) = self.options.cache_mib {
            args.extend(["--cache-mib".into(), mib.to_string().into()]);
        }
        args
    }

    pub fn monitor_lease_path(&self) -> PathBuf {
        self.home.join("monitor.lock")
    }

    pub fn backend_names(&self) -> Vec<String> {
        self.catalog.names(PluginKind::Backend)
    }

    /// Reads a job file; a file without `[backend]` gets the config's default backend.
    pub fn read_job_file(&self, path: &Path) -> Result<JobDefinition, SessionError> {
        Ok(jobfile::read(path, &self.config.defaults.backend)?)
    }

    /// The backend a definition names must be loaded, and must know every option the
    /// definition gives it (when it says which it knows): errors say where each was named.
    pub async fn check_backend(&self, definition: &JobDefinition) -> Result<(), SessionError> {
        let kind = &definition.spec.backend.kind;
        let at = |message: String| SessionError::Definition {
            at: definition.backend_at.clone(),
            message,
        };
        if !self.backend_names().contains(kind) {
            // Say what there is instead.
            let detail = self
                .context()?
                .backends
                .backend(kind)
                .err()
                .unwrap_or_else(|| format!("unknown backend `{kind}`"));
            return Err(at(detail));
        }
        let backend = self.context()?.backends.backend(kind).map_err(at)?;
        let description = backend
            .describe()
            .await
            .map_err(|e| at(format!("backend `{kind}` cannot describe itself: {e}")))?;
        if let Some(known) = &description.options {
            definition.check_backend_options(known)?;
        }
        Ok(())
    }

    /// Stores a definition as a new job and submits it, once its backend has accepted
    /// its options ([`Session::check_backend`]).
    pub async fn submit(&self, definition: JobDefinition) -> Result<SubmitReport, SessionError> {
        self.check_backend(&definition).await?;
        Ok(self.operations()?.submit_spec(definition.spec).await?)
    }

    /// A job as stored now (what the cache held of it is forgotten first).
    pub async fn fresh_job(&self, id: JobId) -> Result<Arc<Job>, SessionError> {
        self.context()?
            .store
            .fresh_job(id)
            .await?
            .ok_or(SessionError::Removed(id))
    }

    /// Waits until every job in `ids` has ended, the timeout has passed, or `stop`
    /// completes. While a monitor runs it drives them and this only watches the store;
    /// whenever none runs (it never did, or it exited), this process takes the monitor
    /// lease and monitors until they have ended, as `ganga wait` does.
    pub async fn wait(
        &self,
        ids: &[JobId],
        timeout: Option<Duration>,
        stop: impl Future<Output = ()>,
        mut on_event: impl FnMut(WaitEvent<'_>),
    ) -> Result<WaitOutcome, SessionError> {
        use ganga_monitor::{ControlRequest, MonitorLease, Until};
        /// How long the running monitor is given to answer a request to poll.
        const ASK_TIMEOUT: Duration = Duration::from_secs(5);
        /// How often the store is read while another process monitors.
        const WATCH: Duration = Duration::from_millis(250);

        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let lease_path = self.monitor_lease_path();
        let mut asked = false;
        tokio::pin!(stop);
        let mut stopped = false;
        loop {
            let mut all_ended = true;
            for &id in ids {
                let job = self.fresh_job(id).await?;
                on_event(WaitEvent::Progress(&job));
                all_ended &= !job.status().is_active();
            }
            if all_ended {
                return Ok(WaitOutcome::Ended);
            }
            if stopped {
                return Ok(WaitOutcome::Stopped);
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Ok(WaitOutcome::TimedOut);
            }
            let lease = MonitorLease::try_acquire(&lease_path).map_err(|cause| {
                SessionError::MonitorLock {
                    path: lease_path.clone(),
                    cause,
                }
            })?;
            if let Some(_lease) = lease {
                // Nobody drives them: this process does, until they have ended.
                let monitor = self.monitor(None)?;
                let until = Until::Finished(ids.to_vec());
                let limit = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                let halt = async {
                    tokio::select! {
                        () = &mut stop => stopped = true,
                        () = limit => {}
                    }
                };
                monitor.run(until, halt, |_| {}).await?;
                continue;
            }
            if !asked {
                asked = true;
                on_event(WaitEvent::Watching {
                    holder: MonitorLease::holder(&lease_path),
                });
                let poll = ControlRequest::Poll { jobs: ids.to_vec() };
                let _ = ganga_monitor::ask(&self.control_socket(), &poll, ASK_TIMEOUT).await;
            }
            tokio::select! {
                () = &mut stop => stopped = true,
                () = tokio::time::sleep(WATCH) => {}
            }
        }
    }
}

/// Backends from the catalog, each created on first use with its config table.
struct CatalogBackends {
    catalog: Arc<Catalog>,
    home: PathBuf,
    home_id: String,
    config: std::collections::BTreeMap<String, ganga_core::Options>,
}

impl Backends for CatalogBackends {
    fn backend(&self, name: &str) -> Result<Arc<dyn Backend>, String> {
        let context = PluginContext {
            home: self.home.clone(),
            config: self.config.get(name).cloned().unwrap_or_default(),
            home_id: self.home_id.clone(),
        };
        self.catalog
            .backend(name, &context)
            .map_err(|e| e.to_string())
    }
}

/// A store whose storage errors say where the store is: "No space left on device" alone
/// names no file. The location is the store's own description of itself, asked once.
struct LocatedStore {
    inner: Arc<dyn RecordStore>,
    location: String,
}

impl LocatedStore {
    fn new(inner: Arc<dyn RecordStore>, plugin: &str, home: &Path) -> LocatedStore {
        let described = {
            let _call = crate::fault::StoreCall::enter();
            inner.describe()
        };
        let location = match described {
            Ok(d) if !d.location.is_empty() => format!("the store at {}", d.location),
            _ => format!("the `{plugin}` store of {}", home.display()),
        };
        crate::fault::name_store(&location);
        LocatedStore { inner, location }
    }

    /// One call into the store: a fault inside it is reported against this store, and
    /// its storage errors name it.
    fn call<T>(
        &self,
        f: impl FnOnce(&dyn RecordStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _call = crate::fault::StoreCall::enter();
        f(&*self.inner).map_err(|e| self.locate(e))
    }

    fn locate(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Io(m) => StoreError::Io(format!("{}: {m}", self.location)),
            StoreError::Protocol(m) => StoreError::Protocol(format!("{}: {m}", self.location)),
            StoreError::Panicked(m) => StoreError::Panicked(format!("{}: {m}", self.location)),
            other => other,
        }
    }
}

// Every method is forwarded, those with a default too: a default here would bypass the
// plugin's own (and its indexes).
impl Store for LocatedStore {
    fn describe(&self) -> Result<StoreDescription, StoreError> {
        self.call(|s| s.describe())
    }
    fn reserve_ids(&self, n: u64) -> Result<JobId, StoreError> {
        self.call(|s| s.reserve_ids(n))
    }
    fn commit(&self, changes: &[Change]) -> Result<Vec<Committed>, StoreError> {
        self.call(|s| s.commit(changes))
    }
    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.call(|s| s.job(id))
    }
    fn subjobs(
        &self,
        job: JobId,
        range: std::ops::Range<SubjobIndex>,
    ) -> Result<Vec<Subjob>, StoreError> {
        self.call(|s| s.subjobs(job, range))
    }
    fn summaries(&self, from: JobId, limit: u32) -> Result<Vec<SummaryEntry>, StoreError> {
        self.call(|s| s.summaries(from, limit))
    }
    fn active(&self) -> Result<Vec<ActiveJob>, StoreError> {
        self.call(|s| s.active())
    }
    fn active_units(
        &self,
        after: Option<&UnitCursor>,
        limit: u32,
    ) -> Result<Vec<ActiveUnit>, StoreError> {
        self.call(|s| s.active_units(after, limit))
    }
    fn update_units(&self, updates: &[UnitUpdate]) -> Result<UnitsUpdated, StoreError> {
        self.call(|s| s.update_units(updates))
    }
    fn backup(&self, dest: &Path) -> Result<(), StoreError> {
        self.call(|s| s.backup(dest))
    }
    fn check(&self) -> Result<CheckReport, StoreError> {
        self.call(|s| s.check())
    }
    fn dump(&self) -> Result<String, StoreError> {
        self.call(|s| s.dump())
    }
}

impl RecordStore for LocatedStore {
    fn commit_records(&self, changes: &RecordChanges) -> Result<Vec<Committed>, StoreError> {
        self.call(|s| s.commit_records(changes))
    }
    fn job_record(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.call(|s| s.job_record(id))
    }
    fn subjob_batch(
        &self,
        job: JobId,
        range: std::ops::Range<SubjobIndex>,
    ) -> Result<SubjobBatch, StoreError> {
        self.call(|s| s.subjob_batch(job, range))
    }
}

fn set_umask(mask: Umask) {
    // SAFETY: umask(2) only sets the process's file mode creation mask; it cannot fail
    // and touches no memory of ours.
    unsafe {
        libc::umask(mask.0 as libc::mode_t);
    }
}

/// A number of seconds from the config as a duration, at least `min`.
fn secs(s: f64, min: f64) -> Duration {
    if s.is_finite() {
        Duration::from_secs_f64(s.clamp(min, 1e9))
    } else {
        Duration::from_secs_f64(min)
    }
}

/// A short id of the home, stable for its life: `<home>/home-id`, made (at random) the
/// first time it is needed. Backends tag the jobs of this home with it. `None` if the
/// home cannot be written, when no backend can run jobs anyway.
fn home_id(home: &Path) -> Option<String> {
    use std::hash::{BuildHasher as _, Hasher as _};
    let path = home.join("home-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && let id = id.trim()
        && !id.is_empty()
    {
        return Some(id.to_owned());
    }
    // The standard library's hasher keys are random per process: enough for a tag.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    let id = format!("{:08x}", h.finish() as u32);
    std::fs::create_dir_all(home).ok()?;
    // Another process may be making it at the same moment: the first one wins.
    let tmp = home.join(format!("home-id.{}", std::process::id()));
    std::fs::write(&tmp, format!("{id}\n")).ok()?;
    let won = std::fs::hard_link(&tmp, &path).is_ok();
    let _ = std::fs::remove_file(&tmp);
    if won {
        Some(id)
    } else {
        std::fs::read_to_string(&path)
            .ok()
            .map(|s| s.trim().to_owned())
    }
}

/// Where plugins are looked for: the options' `plugin_dirs`, `$GANGA_PLUGIN_PATH`, the
/// config's `plugin_dirs`, `<XDG config dir>/ganga/plugins`, then beside the host program
/// (`<dir>/plugins` and `<dir>` itself for each of its `host_dirs`, so a cargo build
/// directory just works). A directory named twice is searched once, where first named.
fn search_path(options: &SessionOptions, config: &Config) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = options.plugin_dirs.clone();
    if let Some(path) = std::env::var_os("GANGA_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|p| !p.as_os_str().is_empty()));
    }
    dirs.extend(config.plugin_dirs.iter().cloned());
    if let Some(d) = dirs::config_dir() {
        dirs.push(d.join("ganga").join("plugins"));
    }
    for host in &options.host_dirs {
        dirs.push(host.join("plugins"));
        dirs.push(host.clone());
    }
    let mut seen = Vec::new();
    dirs.retain(|d| {
        let fresh = !seen.contains(d);
        seen.push(d.clone());
        fresh
    });
    dirs
}

#[cfg(feature = "static-plugins")]
fn link_static_plugins(catalog: &mut Catalog) {
    catalog.link_backend("local", env!("CARGO_PKG_VERSION"), linked::local);
    catalog.link_store("lmdb", env!("CARGO_PKG_VERSION"), linked::lmdb);
}

#[cfg(not(feature = "static-plugins"))]
fn link_static_plugins(_catalog: &mut Catalog) {}

#[cfg(feature = "static-plugins")]
mod linked {
    //! The plugins linked into this binary, made through the same `create` the SDK calls
    //! when they are loaded as libraries.
    use std::sync::Arc;

    use ganga_core::Backend;
    use ganga_plugin_sdk::{BackendPlugin as _, StorePlugin as _};
    use ganga_protocol::PluginContext;
    use ganga_records::RecordStore;

    pub(super) fn local(context: PluginContext) -> Result<Arc<dyn Backend>, String> {
        Ok(Arc::new(ganga_backend_local::LocalBackend::create(
            context,
        )?))
    }

    pub(super) fn lmdb(context: PluginContext) -> Result<Arc<dyn RecordStore>, String> {
        Ok(Arc::new(ganga_store_lmdb::LmdbStore::create(context)?))
    }
}
