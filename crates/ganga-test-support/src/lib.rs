//! Test support shared by the workspace's tests, and by plugin authors in theirs:
//! building plugin libraries on demand so that tests exercise the real dynamic boundary
//! ([`built_plugin`], [`built_binary`]), the [`conformance`] suite every backend must pass
//! (the `ganga-conformance` crate, re-exported here so that tests name one crate),
//! inputs for property tests of readers ([`fuzz`]), and [`FakeBackend`], which answers
//! at once, for benchmarks at a scale no real backend reaches here.
//!
//! It is not linked into anything users run, and depends on no plugin.

mod fake;
pub mod fuzz;
mod plugins;

pub use {
    crate::fake::FakeBackend,
    crate::plugins::{built_binary, built_example, built_plugin, target_dir},
    ganga_conformance as conformance,
};
