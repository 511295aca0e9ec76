//! The host side of plugin logging: plugins call [`host_api`]'s `log`, which re-emits the
//! message as a `tracing` event of the host.

use std::sync::OnceLock;

use ganga_plugin_abi::{FfiSlice, HostApi};
use tracing::level_filters::LevelFilter;

static HOST_API: OnceLock<HostApi> = OnceLock::new();

/// The services offered to plugins. Built once, when the first plugin instance is created,
/// with the log level in force then; it lives for the rest of the process.
pub(crate) fn host_api() -> &'static HostApi {
    HOST_API.get_or_init(|| HostApi {
        size: std::mem::size_of::<HostApi>() as u32,
        max_level: match LevelFilter::current() {
            LevelFilter::OFF => 0,
            LevelFilter::ERROR => 1,
            LevelFilter::WARN => 2,
            LevelFilter::INFO => 3,
            LevelFilter::DEBUG => 4,
            _ => 5,
        },
        log: plugin_log,
    })
}

extern "C" fn plugin_log(level: u8, target: FfiSlice, message: FfiSlice) {
    // Never unwind into the plugin.
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: the plugin keeps both slices valid for the duration of this call.
        let (target, message) = unsafe { (target.to_string_lossy(), message.to_string_lossy()) };
        match level {
            1 => tracing::error!(target: "ganga::plugin", plugin_target = %target, "{message}"),
            2 => tracing::warn!(target: "ganga::plugin", plugin_target = %target, "{message}"),
            3 => tracing::info!(target: "ganga::plugin", plugin_target = %target, "{message}"),
            4 => tracing::debug!(target: "ganga::plugin", plugin_target = %target, "{message}"),
            _ => tracing::trace!(target: "ganga::plugin", plugin_target = %target, "{message}"),
        }
    });
}
