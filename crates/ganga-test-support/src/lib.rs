//! Test support shared by the workspace's tests, and by plugin authors in theirs:
//! building plugin libraries on demand so that tests exercise the real dynamic boundary
//! ([`built_plugin`], [`built_binary`]), the [`conformance`] suite every backend must pass
//! (the `ganga-conformance` crate, re-exported here so that tests name one crate),
//! inputs for property tests of readers ([`fuzz`]), [`FakeBackend`], which answers at
//! once, for benchmarks at a scale no real backend reaches here, and [`MemoryStore`], a
//! store in memory for tests of what is built on the Store trait.
//!
//! It is not linked into anything users run, and depends on no plugin.

mod fake;
pub mod fuzz;
mod memory;
mod plugins;

pub use {
    crate::fake::FakeBackend,
    crate::memory::MemoryStore,
    crate::plugins::{built_binary, built_example, built_plugin, target_dir},
    ganga_conformance as conformance,
};
