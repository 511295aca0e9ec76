//! The C ABI between `ganga` and its plugins, and nothing else.
//!
//! A plugin is a dynamic library exporting one [`PluginDecl`] under the symbol
//! `ganga_plugin_decl_<crate name>` (see [`decl_symbol`]). Only `#[repr(C)]` scalars, byte
//! buffers and function pointers cross: requests and replies are CBOR bytes whose schema
//! lives in `ganga-core`'s `protocol` module. So a plugin built by another rustc, or
//! against another tokio, still works; what must match is [`ABI_MAJOR`], the version of
//! this file.
//!
//! Rules both sides keep:
//! - the [`PluginHeader`] at the start of the declaration never changes, so a host can read
//!   the name and ABI of any plugin, even one built for another ABI, and refuse it by name;
//! - fields are only ever appended to [`PluginDecl`], and `decl_size` says how many exist;
//! - memory is freed by the side that allocated it ([`FfiBuf::drop_fn`]);
//! - no panic crosses a function here: every entry point catches it.

use std::ffi::c_void;

pub use async_ffi::{ABI_VERSION as ASYNC_FFI_ABI_VERSION, FfiFuture};

/// The first field of every declaration: "GANGARS" and a format byte.
pub const MAGIC: u64 = u64::from_be_bytes(*b"GANGARS\x01");

/// The version of this ABI. A plugin declaring another value is refused.
pub const ABI_MAJOR: u32 = 1;

/// The prefix of the exported symbol; the rest is the plugin crate's name with `-` as `_`,
/// which is also the library's file stem without `lib`.
pub const DECL_SYMBOL_PREFIX: &str = "ganga_plugin_decl_";

/// The declaration symbol a library file should export, from its file stem
/// (`libganga_backend_local` -> `ganga_plugin_decl_ganga_backend_local`).
pub fn decl_symbol(file_stem: &str) -> String {
    let crate_name = file_stem.strip_prefix("lib").unwrap_or(file_stem);
    format!("{DECL_SYMBOL_PREFIX}{crate_name}")
}

/// [`PluginDecl::kind`] of a backend plugin.
pub const KIND_BACKEND: u32 = 1;
/// [`PluginDecl::kind`] of a store plugin.
pub const KIND_STORE: u32 = 2;

/// Bytes borrowed for the duration of one call, or pointing at static data.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FfiSlice {
    pub ptr: *const u8,
    pub len: usize,
}

// SAFETY: an FfiSlice is a read-only view; the data it points at is either static or
// outlives the call it is passed to, and is never written through it.
unsafe impl Send for FfiSlice {}
// SAFETY: as above, shared read-only access.
unsafe impl Sync for FfiSlice {}

impl FfiSlice {
    pub const fn from_static(s: &'static str) -> FfiSlice {
        FfiSlice {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    pub fn borrow(bytes: &[u8]) -> FfiSlice {
        FfiSlice {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// # Safety
    /// `ptr` must point at `len` readable bytes that stay valid and unchanged for `'a`.
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            return &[];
        }
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The bytes as text, with invalid UTF-8 replaced.
    ///
    /// # Safety
    /// As for [`FfiSlice::as_bytes`].
    pub unsafe fn to_string_lossy(&self) -> String {
        // SAFETY: guaranteed by the caller.
        String::from_utf8_lossy(unsafe { self.as_bytes() }).into_owned()
    }
}

/// Bytes owned by the side that made them; dropping an `FfiBuf` hands them back to that
/// side's allocator through `drop_fn`.
#[repr(C)]
pub struct FfiBuf {
    pub ptr: *mut u8,
    pub len: usize,
    pub cap: usize,
    pub drop_fn: unsafe extern "C" fn(ptr: *mut u8, len: usize, cap: usize),
}

// SAFETY: an FfiBuf uniquely owns its allocation, like the Vec it was made from.
unsafe impl Send for FfiBuf {}

unsafe extern "C" fn drop_vec(ptr: *mut u8, len: usize, cap: usize) {
    if !ptr.is_null() {
        // SAFETY: ptr/len/cap came from a Vec<u8> taken apart in `FfiBuf::from_vec` of this
        // same library, so this allocator made it.
        drop(unsafe { Vec::from_raw_parts(ptr, len, cap) });
    }
}

impl FfiBuf {
    pub fn from_vec(v: Vec<u8>) -> FfiBuf {
        let mut v = std::mem::ManuallyDrop::new(v);
        FfiBuf {
            ptr: v.as_mut_ptr(),
            len: v.len(),
            cap: v.capacity(),
            drop_fn: drop_vec,
        }
    }

    pub fn empty() -> FfiBuf {
        FfiBuf::from_vec(Vec::new())
    }

    pub fn as_slice(&self) -> &[u8] {
        if self.len == 0 || self.ptr.is_null() {
            return &[];
        }
        // SAFETY: the buffer owns len initialised bytes at ptr until it is dropped.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for FfiBuf {
    fn drop(&mut self) {
        // SAFETY: drop_fn belongs to the allocator that made ptr, and runs once.
        unsafe { (self.drop_fn)(self.ptr, self.len, self.cap) }
    }
}

/// What the host offers plugins. `size` lets fields be appended later.
#[repr(C)]
pub struct HostApi {
    pub size: u32,
    /// The most detailed level the host wants logged (same numbering as `log`'s `level`),
    /// so plugins do not format messages nobody reads.
    pub max_level: u8,
    /// Logs one message. `level`: 1 error, 2 warn, 3 info, 4 debug, 5 trace.
    pub log: extern "C" fn(level: u8, target: FfiSlice, message: FfiSlice),
}

/// The part of a declaration that is the same in every ABI version, so that a host can
/// name a plugin and its ABI before deciding whether it can read the rest.
#[repr(C)]
pub struct PluginHeader {
    pub magic: u64,
    pub abi_major: u32,
    /// `size_of::<PluginDecl>()` as the plugin was built.
    pub decl_size: u32,
    /// The plugin's name, as job files and the config refer to it (`local`, `lmdb`).
    pub name: FfiSlice,
    pub version: FfiSlice,
}

/// Creates an instance from a CBOR `PluginContext`. On success writes the instance to
/// `out` and returns an empty buffer; on failure returns the error message as UTF-8.
pub type CreateFn =
    unsafe extern "C" fn(host: *const HostApi, context: FfiSlice, out: *mut *mut c_void) -> FfiBuf;

/// How a backend answers one CBOR request: the future resolves to a CBOR reply, so the
/// host's executor never waits on the plugin's work.
pub type BackendCallFn =
    unsafe extern "C" fn(instance: *const c_void, request: FfiSlice) -> FfiFuture<FfiBuf>;

/// How a store answers one CBOR request: on the calling thread (store calls are short
/// disk operations, and the host makes them from a blocking thread).
pub type StoreCallFn = unsafe extern "C" fn(instance: *const c_void, request: FfiSlice) -> FfiBuf;

/// Shuts an instance down and frees it. The library itself stays loaded.
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// The declaration a plugin exports.
#[repr(C)]
pub struct PluginDecl {
    pub header: PluginHeader,
    /// `async_ffi::ABI_VERSION` the plugin was built with.
    pub async_ffi_abi: u32,
    /// 1 if the plugin unwinds on panic (so it can catch panics), 0 if it aborts.
    pub panic_unwind: u8,
    /// [`KIND_BACKEND`] or [`KIND_STORE`].
    pub kind: u32,
    /// The semver of the `ganga-core` protocol the plugin speaks.
    pub protocol: FfiSlice,
    /// The compiler that built the plugin; for diagnostics only.
    pub rustc: FfiSlice,
    pub create: CreateFn,
    /// A backend's requests; `None` in a store's declaration. (A null function pointer:
    /// the layout is the one ABI 1 always had, whose unused entry was never called.)
    pub backend_call: Option<BackendCallFn>,
    /// A store's requests; `None` in a backend's declaration.
    pub store_call: Option<StoreCallFn>,
    pub destroy: DestroyFn,
}

// SAFETY: a declaration is immutable static data: plain integers, pointers to static
// strings and function pointers.
unsafe impl Sync for PluginDecl {}

/// The size this ABI's declaration has, as a plugin must declare it.
pub const DECL_SIZE: u32 = std::mem::size_of::<PluginDecl>() as u32;
