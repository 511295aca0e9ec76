//! Test support shared by the workspace's tests: building plugin libraries on demand so
//! that tests exercise the real dynamic boundary, and (for benchmarks at a scale no real
//! backend reaches here) a clearly named fake backend.
//!
//! It is not linked into anything users run.

mod plugins;

pub use crate::plugins::{built_plugin, target_dir};
