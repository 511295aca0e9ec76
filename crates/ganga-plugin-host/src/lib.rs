//! The plugin host: finds plugin libraries, checks each declaration before trusting it,
//! and wraps every plugin instance as an ordinary `Arc<dyn Backend>` or
//! `Arc<dyn RecordStore>` (a `Store` that also hands over its records as they are). The
//! rest of the program cannot tell a loaded plugin from one linked in.
//!
//! It is the only crate that touches `libloading` and raw plugin pointers. It does not
//! know where plugins are looked for (the CLI builds the search path), nor what a job is
//! beyond the core's types.

mod catalog;
mod library;
mod log;
mod remote;

pub use crate::catalog::{
    BackendFactory, Catalog, HostError, PluginInfo, PluginKind, Refusal, StoreFactory,
};
