//! Test support shared by the workspace's tests, and by plugin authors in theirs:
//! building plugin libraries on demand so that tests exercise the real dynamic boundary
//! ([`built_plugin`], [`built_binary`]), and the [`conformance`] suite every backend must pass.
//!
//! It is not linked into anything users run, and depends on no plugin.

pub mod conformance;
mod plugins;

pub use crate::plugins::{built_binary, built_example, built_plugin, target_dir};
