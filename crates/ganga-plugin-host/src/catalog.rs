//! The catalog: every plugin found (in libraries or linked in), the ones refused and why,
//! and the instances created from them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ganga_core::Backend;
use ganga_plugin_abi::PluginDecl;
use ganga_protocol::PluginContext;
use ganga_records::RecordStore;

use crate::library::{self, LoadedLibrary};
use crate::remote::{DylibBackend, DylibStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PluginKind {
    Backend,
    Store,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            PluginKind::Backend => "backend",
            PluginKind::Store => "store",
        })
    }
}

/// What is known of a plugin before it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    /// The library it was loaded from; `None` for a plugin linked into the binary.
    pub file: Option<PathBuf>,
    pub abi: u32,
    pub protocol: String,
    pub rustc: String,
}

/// A library that was not accepted as a plugin, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Refusal {
    pub path: PathBuf,
    /// The plugin's name, when its declaration could be read that far.
    pub plugin: Option<String>,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.plugin {
            Some(name) => write!(
                f,
                "plugin `{name}` ({}) refused: {}",
                self.path.display(),
                self.reason
            ),
            None => write!(f, "{} refused: {}", self.path.display(), self.reason),
        }
    }
}

/// Makes a linked-in backend.
pub type BackendFactory = fn(PluginContext) -> Result<Arc<dyn Backend>, String>;
/// Makes a linked-in store.
pub type StoreFactory = fn(PluginContext) -> Result<Arc<dyn RecordStore>, String>;

enum Source {
    Library(&'static PluginDecl),
    LinkedBackend(BackendFactory),
    LinkedStore(StoreFactory),
}

struct Entry {
    info: PluginInfo,
    source: Source,
}

/// Why a plugin could not be provided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("unknown {kind} `{name}`; loaded {kind}s: {}{}{}", list_or_none(.loaded), searched_note(.searched), refused_note(.refused))]
    Unknown {
        kind: PluginKind,
        name: String,
        loaded: Vec<String>,
        /// The directories plugins were looked for in, as [`Catalog::searched`] says.
        searched: Vec<String>,
        refused: Vec<String>,
    },
    #[error("{kind} plugin `{name}` could not start: {message}")]
    CreateFailed {
        kind: PluginKind,
        name: String,
        message: String,
    },
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn searched_note(searched: &[String]) -> String {
    if searched.is_empty() {
        String::new()
    } else {
        format!("\n  looked for plugins in: {}", searched.join(", "))
    }
}

fn refused_note(refused: &[String]) -> String {
    refused.iter().map(|r| format!("\n  {r}")).collect()
}

/// Every plugin known to this process. Plugins are found first and created on first use,
/// so a command that needs only the store never starts a backend.
#[derive(Default)]
pub struct Catalog {
    entries: Vec<Entry>,
    /// The directories scanned, in order, and whether each could be read.
    searched: Vec<(PathBuf, Result<(), String>)>,
    shadowed: Vec<PluginInfo>,
    refusals: Vec<Refusal>,
    backends: Mutex<BTreeMap<String, Arc<dyn Backend>>>,
    stores: Mutex<BTreeMap<String, Arc<dyn RecordStore>>>,
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Loads every plugin library in `dir`, in file-name order. A missing directory is
    /// not an error: search paths list places that may not exist.
    pub fn scan_dir(&mut self, dir: &Path) {
        let read = match std::fs::read_dir(dir) {
            Ok(read) => read,
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    "not there".to_owned()
                } else {
                    e.to_string()
                };
                self.searched.push((dir.to_owned(), Err(why)));
                return;
            }
        };
        self.searched.push((dir.to_owned(), Ok(())));
        let mut files: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| library::is_plugin_file(p))
            .collect();
        files.sort();
        for file in files {
            let _ = self.load_file(&file);
        }
    }

    /// Loads one plugin library. A refusal is also kept for [`Catalog::refusals`].
    pub fn load_file(&mut self, path: &Path) -> Result<PluginInfo, Refusal> {
        if self
            .entries
            .iter()
            .any(|e| e.info.file.as_deref() == Some(path))
        {
            return Err(Refusal {
                path: path.to_owned(),
                plugin: None,
                reason: "already loaded".into(),
            });
        }
        match library::load(path) {
            Ok(LoadedLibrary { decl, info }) => {
                self.add(info.clone(), Source::Library(decl));
                Ok(info)
            }
            Err(refusal) => {
                tracing::info!("{refusal}");
                self.refusals.push(refusal.clone());
                Err(refusal)
            }
        }
    }

    /// Adds a backend linked into the binary (the `static-plugins` build, tests).
    pub fn link_backend(&mut self, name: &str, version: &str, factory: BackendFactory) {
        self.add(
            linked_info(name, version, PluginKind::Backend),
            Source::LinkedBackend(factory),
        );
    }

    /// Adds a store linked into the binary.
    pub fn link_store(&mut self, name: &str, version: &str, factory: StoreFactory) {
        self.add(
            linked_info(name, version, PluginKind::Store),
            Source::LinkedStore(factory),
        );
    }

    /// The first plugin of a kind and name wins; later ones are listed as shadowed.
    fn add(&mut self, info: PluginInfo, source: Source) {
        if self.find(info.kind, &info.name).is_some() {
            self.shadowed.push(info);
        } else {
            self.entries.push(Entry { info, source });
        }
    }

    fn find(&self, kind: PluginKind, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.info.kind == kind && e.info.name == name)
    }

    /// The plugins that will be used, in the order they were found.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginInfo> {
        self.entries.iter().map(|e| &e.info)
    }

    /// Plugins found after another of the same kind and name, and so not used.
    pub fn shadowed(&self) -> &[PluginInfo] {
        &self.shadowed
    }

    pub fn refusals(&self) -> &[Refusal] {
        &self.refusals
    }

    /// The directories scanned for plugins, in order, each with `(not there)` or why it
    /// could not be read when it could not.
    pub fn searched(&self) -> Vec<String> {
        self.searched
            .iter()
            .map(|(dir, read)| match read {
                Ok(()) => dir.display().to_string(),
                Err(why) => format!("{} ({why})", dir.display()),
            })
            .collect()
    }

    pub fn names(&self, kind: PluginKind) -> Vec<String> {
        self.plugins()
            .filter(|p| p.kind == kind)
            .map(|p| p.name.clone())
            .collect()
    }

    fn unknown(&self, kind: PluginKind, name: &str) -> HostError {
        HostError::Unknown {
            kind,
            name: name.to_owned(),
            loaded: self.names(kind),
            searched: self.searched(),
            refused: self.refusals.iter().map(ToString::to_string).collect(),
        }
    }

    /// The backend called `name`, created with `context` on first use.
    pub fn backend(
        &self,
        name: &str,
        context: &PluginContext,
    ) -> Result<Arc<dyn Backend>, HostError> {
        self.instance(&self.backends, PluginKind::Backend, name, |source| {
            Some(match source {
                Source::Library(decl) => DylibBackend::create(name, decl, context)
                    .map(|b| Arc::new(b) as Arc<dyn Backend>),
                Source::LinkedBackend(factory) => factory(context.clone()),
                Source::LinkedStore(_) => return None,
            })
        })
    }

    /// The store called `name`, created with `context` on first use.
    pub fn store(
        &self,
        name: &str,
        context: &PluginContext,
    ) -> Result<Arc<dyn RecordStore>, HostError> {
        self.instance(&self.stores, PluginKind::Store, name, |source| {
            Some(match source {
                Source::Library(decl) => DylibStore::create(name, decl, context)
                    .map(|s| Arc::new(s) as Arc<dyn RecordStore>),
                Source::LinkedStore(factory) => factory(context.clone()),
                Source::LinkedBackend(_) => return None,
            })
        })
    }

    /// The instance of plugin `name` of `kind` made so far, or one `create` makes from
    /// where the plugin comes from (`None`: that source holds another kind of plugin).
    fn instance<T: ?Sized>(
        &self,
        made: &Mutex<BTreeMap<String, Arc<T>>>,
        kind: PluginKind,
        name: &str,
        create: impl FnOnce(&Source) -> Option<Result<Arc<T>, String>>,
    ) -> Result<Arc<T>, HostError> {
        let mut made = made.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(instance) = made.get(name) {
            return Ok(instance.clone());
        }
        let entry = self
            .find(kind, name)
            .ok_or_else(|| self.unknown(kind, name))?;
        let instance = create(&entry.source)
            .ok_or_else(|| self.unknown(kind, name))?
            .map_err(|message| HostError::CreateFailed {
                kind,
                name: name.to_owned(),
                message,
            })?;
        made.insert(name.to_owned(), instance.clone());
        Ok(instance)
    }
}

fn linked_info(name: &str, version: &str, kind: PluginKind) -> PluginInfo {
    PluginInfo {
        name: name.to_owned(),
        version: version.to_owned(),
        kind,
        file: None,
        abi: ganga_plugin_abi::ABI_MAJOR,
        protocol: ganga_protocol::PROTOCOL_VERSION.to_owned(),
        rustc: "linked into this binary".to_owned(),
    }
}
