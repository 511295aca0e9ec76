//! For plugin authors: turn a [`Backend`] or a [`Store`] into a ganga plugin.
//!
//! ```ignore
//! struct MySite { /* ... */ }
//! #[async_trait::async_trait]
//! impl ganga_core::Backend for MySite { /* describe, submit, poll, kill, peek, outputs */ }
//! impl ganga_plugin_sdk::BackendPlugin for MySite {
//!     fn create(context: ganga_plugin_sdk::PluginContext) -> Result<Self, String> { /* ... */ }
//! }
//! ganga_plugin_sdk::export_backend!(MySite, "mysite");
//! ```
//!
//! Build the crate as `crate-type = ["cdylib", "rlib"]` and name it `ganga-backend-<x>` (or
//! `ganga-store-<x>`), so that `ganga` finds `libganga_backend_<x>.so` beside itself or on
//! its plugin path. See `docs/plugin-guide.md`.
//!
//! What the SDK does for you, and why:
//! - Each backend instance gets a **tokio runtime of its own**. A dynamic library links its
//!   own copy of tokio, which cannot see the host's runtime; so every call is spawned on
//!   the plugin's runtime and the host only awaits a channel. Inside your backend you can use
//!   `tokio::process`, timers and HTTP clients freely.
//! - Requests and replies are CBOR bytes (the `ganga-protocol` types), so nothing
//!   Rust-specific crosses the boundary. A request your plugin is too old to know is
//!   answered `Unsupported`.
//! - A **panic** in your code becomes an error for that call; the host goes on.
//! - `tracing` events from your plugin are forwarded to the host's log.
//!
//! [`blocking`] runs a call's file and process work on the runtime's blocking pool, so
//! that no async thread waits on the disk. And for backends whose jobs leave their files
//! in a directory on this machine,
//! [`files`]: output collection and `peek` that never follow a link out of the working
//! directory, never open a FIFO, and read only the end of a file; and [`records`], for
//! the `key=value` files a job's wrapper leaves beside it (written whole through a rename,
//! each naming its run).
//!
//! It is not: a place for backend logic, or a way to share Rust types with the host.

mod blocking;
mod export;
pub mod files;
mod log;
pub mod records;
mod serve;

use ganga_core::Backend;

pub use {
    crate::blocking::blocking, ganga_core, ganga_plugin_abi as abi, ganga_protocol::PluginContext,
    ganga_records::RecordStore,
};

/// A backend that can be exported as a plugin.
pub trait BackendPlugin: Backend + Sized + 'static {
    /// Makes the backend. Runs inside the plugin's tokio runtime.
    fn create(context: PluginContext) -> Result<Self, String>;
}

/// A store that can be exported as a plugin. It answers with compact records
/// ([`RecordStore`]) and is given a commit's job puts as the records the host encoded
/// (`RecordStore::commit_records`): a store that keeps them hands them over and writes
/// them as they are, any other takes the trait's defaults, which encode what it answers
/// and commit the decoded changes.
pub trait StorePlugin: RecordStore + Sized + 'static {
    fn create(context: PluginContext) -> Result<Self, String>;
}

/// Exports a [`BackendPlugin`] under the given name (the `type` job files use).
#[macro_export]
macro_rules! export_backend {
    ($ty:ty, $name:literal) => {
        /// This library's plugin declaration, read by ganga's loader.
        #[unsafe(export_name = concat!("ganga_plugin_decl_", env!("CARGO_CRATE_NAME")))]
        pub static GANGA_PLUGIN_DECL: $crate::abi::PluginDecl =
            $crate::__private::backend_decl::<$ty>($name, env!("CARGO_PKG_VERSION"));
    };
}

/// Exports a [`StorePlugin`] under the given name.
#[macro_export]
macro_rules! export_store {
    ($ty:ty, $name:literal) => {
        /// This library's plugin declaration, read by ganga's loader.
        #[unsafe(export_name = concat!("ganga_plugin_decl_", env!("CARGO_CRATE_NAME")))]
        pub static GANGA_PLUGIN_DECL: $crate::abi::PluginDecl =
            $crate::__private::store_decl::<$ty>($name, env!("CARGO_PKG_VERSION"));
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::export::{backend_decl, store_decl};
}
