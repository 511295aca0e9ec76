//! Test fixture: what a plugin built for the next plugin ABI looks like to this ganga. Only
//! the frozen header is the same; what follows it is unknown to us, so the loader must
//! refuse the plugin after reading the header and nothing else.

use ganga_plugin_abi::{ABI_MAJOR, FfiSlice, MAGIC, PluginHeader};

/// A declaration of the next ABI: the shared header, then fields this ganga cannot know.
#[repr(C)]
pub struct FutureDecl {
    pub header: PluginHeader,
    pub unknown: [u64; 4],
}

// SAFETY: immutable static data.
unsafe impl Sync for FutureDecl {}

#[unsafe(export_name = concat!("ganga_plugin_decl_", env!("CARGO_CRATE_NAME")))]
pub static GANGA_PLUGIN_DECL: FutureDecl = FutureDecl {
    header: PluginHeader {
        magic: MAGIC,
        abi_major: ABI_MAJOR + 1,
        decl_size: std::mem::size_of::<FutureDecl>() as u32,
        name: FfiSlice::from_static("wrong-abi"),
        version: FfiSlice::from_static("9.9.9"),
    },
    unknown: [0; 4],
};
