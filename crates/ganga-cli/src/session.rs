//! Resolving the command line against the environment: the home, the config, the plugins,
//! the store. Commands get what they need from a [`Session`] and never look at raw flags.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use ganga_core::{
    ActiveJob, ActiveUnit, Backend, Change, CheckReport, Committed, Job, JobId, Store,
    StoreDescription, StoreError, Subjob, SubjobIndex, SummaryEntry, UnitCursor, UnitUpdate,
    UnitsUpdated, Workspaces,
};
use ganga_monitor::{Backends, Context, Monitor, MonitorSettings, Operations, StoreHandle};
use ganga_plugin_host::{Catalog, PluginKind};
use ganga_protocol::PluginContext;

use crate::args::Global;
use crate::config::Config;

pub(crate) struct Session {
    pub(crate) home: PathBuf,
    pub(crate) config: Config,
    pub(crate) config_file: Option<PathBuf>,
    pub(crate) catalog: Arc<Catalog>,
    /// Where plugins were looked for, in order.
    pub(crate) search_path: Vec<PathBuf>,
    context: OnceLock<Context>,
    home_id: OnceLock<String>,
    /// The plugin flags given, for a background monitor started from here.
    plugin_dirs: Vec<PathBuf>,
    plugin_files: Vec<PathBuf>,
    cache_mib: Option<u64>,
}

impl Session {
    pub(crate) fn open(global: &Global) -> anyhow::Result<Session> {
        let home = match &global.home {
            Some(h) => h.clone(),
            None => dirs::data_dir()
                .map(|d| d.join("ganga"))
                .context("no home directory: set GANGA_HOME or pass --home")?,
        };
        let home = std::path::absolute(&home).unwrap_or(home);
        let (mut config, config_file) = Config::load(global.config.as_deref(), &home)?;
        // Before anything is created: the home, the store, workspaces, and every file a
        // job writes (jobs inherit it) are made with it.
        set_umask(config.home.umask);
        if let Some(mib) = global.cache_mib {
            config.store.cache_budget_mib = mib;
        }

        let mut catalog = Catalog::new();
        link_static_plugins(&mut catalog);
        for file in &global.plugins {
            catalog
                .load_file(file)
                .map_err(|refusal| anyhow::anyhow!("{refusal}"))?;
        }
        let search_path = search_path(global, &config);
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
            home_id: OnceLock::new(),
            plugin_dirs: global.plugin_dirs.clone(),
            plugin_files: global.plugins.clone(),
            cache_mib: global.cache_mib,
        })
    }

    /// A backend, made without opening the store (for its own commands).
    pub(crate) fn backend(&self, name: &str) -> Result<Arc<dyn Backend>, String> {
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

    pub(crate) fn workspaces(&self) -> Workspaces {
        Workspaces::new(self.home.join("workspace"))
    }

    /// The store, cache and backends, made on first use (so `ganga plugins` opens no store).
    pub(crate) fn context(&self) -> anyhow::Result<&Context> {
        if let Some(c) = self.context.get() {
            return Ok(c);
        }
        if self.home.to_str().is_none() {
            bail!(
                "the ganga home {} is not valid UTF-8: paths cross to plugins as text; choose another with --home or GANGA_HOME",
                self.home.display()
            );
        }
        std::fs::create_dir_all(&self.home)
            .with_context(|| format!("cannot create the ganga home {}", self.home.display()))?;
        let name = &self.config.store.plugin;
        let store = self.catalog.store(name, &self.plugin_context(name))?;
        let store: Arc<dyn ganga_records::RecordStore> =
            Arc::new(LocatedStore::new(store, name, &self.home));
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

    pub(crate) fn operations(&self) -> anyhow::Result<Operations> {
        Ok(Operations::new(self.context()?.clone()))
    }

    /// A monitor as the config says, with `interval` (seconds) for every backend if given.
    pub(crate) fn monitor(&self, interval: Option<f64>) -> anyhow::Result<Monitor> {
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

    /// Where the running monitor listens for other processes.
    pub(crate) fn control_socket(&self) -> PathBuf {
        self.home.join("monitor.sock")
    }

    /// Where a background monitor writes its log.
    pub(crate) fn monitor_log(&self) -> PathBuf {
        self.home.join("monitor.log")
    }

    /// How this `ganga` was started, for starting another with the same plugins and
    /// config (a background monitor).
    pub(crate) fn same_setup_args(&self) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["--home".into(), self.home.clone().into()];
        if let Some(config) = &self.config_file {
            args.extend(["--config".into(), config.clone().into()]);
        }
        for dir in &self.plugin_dirs {
            args.extend(["--plugin-dir".into(), dir.clone().into()]);
        }
        for file in &self.plugin_files {
            args.extend(["--plugin".into(), file.clone().into()]);
        }
        if let Some(mib) = self.cache_mib {
            args.extend(["--cache-mib".into(), mib.to_string().into()]);
        }
        args
    }

    pub(crate) fn monitor_lease_path(&self) -> PathBuf {
        self.home.join("monitor.lock")
    }

    pub(crate) fn backend_names(&self) -> Vec<String> {
        self.catalog.names(PluginKind::Backend)
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
    inner: Arc<dyn ganga_records::RecordStore>,
    location: String,
}

impl LocatedStore {
    fn new(inner: Arc<dyn ganga_records::RecordStore>, plugin: &str, home: &Path) -> LocatedStore {
        let location = match inner.describe() {
            Ok(d) if !d.location.is_empty() => format!("the store at {}", d.location),
            _ => format!("the `{plugin}` store of {}", home.display()),
        };
        LocatedStore { inner, location }
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
        self.inner.describe().map_err(|e| self.locate(e))
    }
    fn reserve_ids(&self, n: u64) -> Result<JobId, StoreError> {
        self.inner.reserve_ids(n).map_err(|e| self.locate(e))
    }
    fn commit(&self, changes: &[Change]) -> Result<Vec<Committed>, StoreError> {
        self.inner.commit(changes).map_err(|e| self.locate(e))
    }
    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.inner.job(id).map_err(|e| self.locate(e))
    }
    fn subjobs(
        &self,
        job: JobId,
        range: std::ops::Range<SubjobIndex>,
    ) -> Result<Vec<Subjob>, StoreError> {
        self.inner.subjobs(job, range).map_err(|e| self.locate(e))
    }
    fn summaries(&self, from: JobId, limit: u32) -> Result<Vec<SummaryEntry>, StoreError> {
        self.inner
            .summaries(from, limit)
            .map_err(|e| self.locate(e))
    }
    fn active(&self) -> Result<Vec<ActiveJob>, StoreError> {
        self.inner.active().map_err(|e| self.locate(e))
    }
    fn active_units(
        &self,
        after: Option<&UnitCursor>,
        limit: u32,
    ) -> Result<Vec<ActiveUnit>, StoreError> {
        self.inner
            .active_units(after, limit)
            .map_err(|e| self.locate(e))
    }
    fn update_units(&self, updates: &[UnitUpdate]) -> Result<UnitsUpdated, StoreError> {
        self.inner.update_units(updates).map_err(|e| self.locate(e))
    }
    fn backup(&self, dest: &Path) -> Result<(), StoreError> {
        self.inner.backup(dest).map_err(|e| self.locate(e))
    }
    fn check(&self) -> Result<CheckReport, StoreError> {
        self.inner.check().map_err(|e| self.locate(e))
    }
    fn dump(&self) -> Result<String, StoreError> {
        self.inner.dump().map_err(|e| self.locate(e))
    }
}

impl ganga_records::RecordStore for LocatedStore {
    fn job_record(&self, id: JobId) -> Result<Option<ganga_records::JobRecord>, StoreError> {
        self.inner.job_record(id).map_err(|e| self.locate(e))
    }
    fn subjob_batch(
        &self,
        job: JobId,
        range: std::ops::Range<SubjobIndex>,
    ) -> Result<ganga_records::SubjobBatch, StoreError> {
        self.inner
            .subjob_batch(job, range)
            .map_err(|e| self.locate(e))
    }
}

fn set_umask(mask: crate::config::Umask) {
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

/// Where plugins are looked for: `--plugin-dir`s, `$GANGA_PLUGIN_PATH`, the config's
/// `plugin_dirs`, `<XDG config dir>/ganga/plugins`, then beside the binary
/// (`<dir>/plugins` and `<dir>` itself, so a cargo build directory just works).
fn search_path(global: &Global, config: &Config) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = global.plugin_dirs.clone();
    if let Some(path) = std::env::var_os("GANGA_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|p| !p.as_os_str().is_empty()));
    }
    dirs.extend(config.plugin_dirs.iter().cloned());
    if let Some(d) = dirs::config_dir() {
        dirs.push(d.join("ganga").join("plugins"));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::parent)
    {
        dirs.push(exe_dir.join("plugins"));
        dirs.push(exe_dir.to_owned());
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
