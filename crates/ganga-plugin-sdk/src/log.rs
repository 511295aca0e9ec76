//! Forwards the plugin's `tracing` events to the host, and its panic messages too.
//!
//! A dynamic library has its own copy of `tracing` with its own global dispatcher, which
//! the host's subscriber never sees; without this bridge a plugin would log into the void.

use std::fmt::Write as _;
use std::sync::OnceLock;

use ganga_plugin_abi::{FfiSlice, HostApi};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt as _};

type LogFn = extern "C" fn(level: u8, target: FfiSlice, message: FfiSlice);

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Installs the bridge the first time a plugin instance is created.
///
/// # Safety
/// `host` is null or points at a `HostApi` that lives as long as the process (the host's
/// static).
pub(crate) unsafe fn install(host: *const HostApi) {
    if host.is_null() {
        return;
    }
    // SAFETY: guaranteed by the caller.
    let host: &'static HostApi = unsafe { &*host };
    INSTALLED.get_or_init(|| {
        let filter = match host.max_level {
            0 => LevelFilter::OFF,
            1 => LevelFilter::ERROR,
            2 => LevelFilter::WARN,
            3 => LevelFilter::INFO,
            4 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        };
        let subscriber =
            tracing_subscriber::registry().with(HostLog { log: host.log }.with_filter(filter));
        // Another subscriber may have been set by the plugin author; theirs wins.
        let _ = tracing::subscriber::set_global_default(subscriber);
        std::panic::set_hook(Box::new(|info| {
            tracing::error!(target: "panic", "{info}");
        }));
    });
}

struct HostLog {
    log: LogFn,
}

impl<S: Subscriber> Layer<S> for HostLog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let level = match *event.metadata().level() {
            Level::ERROR => 1,
            Level::WARN => 2,
            Level::INFO => 3,
            Level::DEBUG => 4,
            Level::TRACE => 5,
        };
        let target = event.metadata().target();
        (self.log)(
            level,
            FfiSlice::borrow(target.as_bytes()),
            FfiSlice::borrow(message.0.as_bytes()),
        );
    }
}

/// The event's message, then its other fields as `key=value`.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}
