//! The versions a plugin must match to load into this `ganga`: shown by `ganga --version`
//! and `ganga plugins`, so that a plugin author knows what to build against.

use std::sync::LazyLock;

use ganga_plugin_abi::ABI_MAJOR;
use ganga_protocol::PROTOCOL_VERSION;
use serde_json::json;

const GANGA: &str = env!("CARGO_PKG_VERSION");

/// What `ganga --version` prints after `ganga `: `0.1.0 (plugin ABI 1, protocol 4.0.0)`.
pub(crate) fn version_line() -> &'static str {
    static LINE: LazyLock<String> =
        LazyLock::new(|| format!("{GANGA} (plugin ABI {ABI_MAJOR}, protocol {PROTOCOL_VERSION})"));
    &LINE
}

/// The last line of `ganga plugins`.
pub(crate) fn plugins_must_match() -> String {
    format!(
        "this ganga: {GANGA}; plugins load if built for plugin ABI {ABI_MAJOR} and protocol {} (ganga-plugin-sdk {GANGA} builds them so)",
        compatible_protocols()
    )
}

/// The protocol versions a plugin may declare: the caret rule the host applies.
fn compatible_protocols() -> String {
    match PROTOCOL_VERSION.split('.').collect::<Vec<_>>()[..] {
        ["0", minor, ..] => format!("0.{minor}.x"),
        [major, ..] => format!("{major}.x"),
        _ => PROTOCOL_VERSION.to_owned(),
    }
}

/// `ganga plugins --json`'s `ganga` member.
pub(crate) fn json() -> serde_json::Value {
    json!({
        "version": GANGA,
        "plugin_abi": ABI_MAJOR,
        "protocol": PROTOCOL_VERSION,
    })
}
