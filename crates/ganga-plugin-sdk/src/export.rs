//! The C entry points behind `export_backend!` and `export_store!`. Every one catches
//! panics: one that unwound out of an `extern "C"` function would abort the host.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use async_ffi::FutureExt as _;
use futures_util::FutureExt as _;
use ganga_core::{BackendErrorKind, StoreError};
use ganga_plugin_abi::{
    ABI_MAJOR, ASYNC_FFI_ABI_VERSION, DECL_SIZE, FfiBuf, FfiFuture, FfiSlice, HostApi,
    KIND_BACKEND, KIND_STORE, MAGIC, PluginDecl, PluginHeader,
};
use ganga_protocol::{PROTOCOL_VERSION, PluginContext};

use crate::serve::{
    backend_error_reply, panic_message, serve_backend, serve_store, store_error_reply,
};
use crate::{BackendPlugin, StorePlugin};

const RUSTC: &str = env!("GANGA_SDK_RUSTC");

/// How long a backend's runtime may take to finish its tasks when the host lets it go.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

const fn header(name: &'static str, version: &'static str) -> PluginHeader {
    PluginHeader {
        magic: MAGIC,
        abi_major: ABI_MAJOR,
        decl_size: DECL_SIZE,
        name: FfiSlice::from_static(name),
        version: FfiSlice::from_static(version),
    }
}

/// The declaration of a backend plugin.
pub const fn backend_decl<T: BackendPlugin>(
    name: &'static str,
    version: &'static str,
) -> PluginDecl {
    PluginDecl {
        header: header(name, version),
        async_ffi_abi: ASYNC_FFI_ABI_VERSION,
        panic_unwind: cfg!(panic = "unwind") as u8,
        kind: KIND_BACKEND,
        protocol: FfiSlice::from_static(PROTOCOL_VERSION),
        rustc: FfiSlice::from_static(RUSTC),
        create: create_backend::<T>,
        backend_call: Some(call_backend::<T>),
        store_call: None,
        destroy: destroy_backend::<T>,
    }
}

/// The declaration of a store plugin.
pub const fn store_decl<T: StorePlugin>(name: &'static str, version: &'static str) -> PluginDecl {
    PluginDecl {
        header: header(name, version),
        async_ffi_abi: ASYNC_FFI_ABI_VERSION,
        panic_unwind: cfg!(panic = "unwind") as u8,
        kind: KIND_STORE,
        protocol: FfiSlice::from_static(PROTOCOL_VERSION),
        rustc: FfiSlice::from_static(RUSTC),
        create: create_store::<T>,
        backend_call: None,
        store_call: Some(call_store::<T>),
        destroy: destroy_store::<T>,
    }
}

/// A backend and the runtime its calls run on.
struct BackendInstance<T> {
    backend: Arc<T>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl<T> BackendInstance<T> {
    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref().map(|rt| rt.handle())
    }
}

fn read_context(bytes: &[u8]) -> Result<PluginContext, String> {
    ciborium::from_reader(bytes).map_err(|e| format!("cannot read the plugin context: {e}"))
}

/// Runs `make` with panics caught; writes the instance to `out` or returns the error text.
///
/// # Safety
/// `out` must be valid for writing one pointer.
unsafe fn create_with(
    host: *const HostApi,
    out: *mut *mut c_void,
    make: impl FnOnce() -> Result<*mut c_void, String>,
) -> FfiBuf {
    // SAFETY: the host passes a pointer to its static HostApi, or null.
    unsafe { crate::log::install(host) };
    match catch_unwind(AssertUnwindSafe(make)) {
        Ok(Ok(instance)) => {
            // SAFETY: the caller guarantees `out` is writable.
            unsafe { *out = instance };
            FfiBuf::empty()
        }
        Ok(Err(msg)) => FfiBuf::from_vec(msg.into_bytes()),
        Err(payload) => FfiBuf::from_vec(
            format!(
                "the plugin panicked while starting: {}",
                panic_message(&*payload)
            )
            .into_bytes(),
        ),
    }
}

unsafe extern "C" fn create_backend<T: BackendPlugin>(
    host: *const HostApi,
    context: FfiSlice,
    out: *mut *mut c_void,
) -> FfiBuf {
    // SAFETY: the host keeps `context` valid for this call; `out` is writable (caller contract).
    unsafe {
        let bytes = context.as_bytes();
        create_with(host, out, || {
            let context = read_context(bytes)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .max_blocking_threads(8)
                .thread_name("ganga-plugin")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the plugin's runtime: {e}"))?;
            let backend = {
                let _entered = runtime.enter();
                T::create(context)?
            };
            let instance = Box::new(BackendInstance {
                backend: Arc::new(backend),
                runtime: Some(runtime),
            });
            Ok(Box::into_raw(instance).cast())
        })
    }
}

unsafe extern "C" fn call_backend<T: BackendPlugin>(
    instance: *const c_void,
    request: FfiSlice,
) -> FfiFuture<FfiBuf> {
    // The request bytes are only valid during this call: copy them before returning.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `instance` came from create_backend::<T> and lives until destroy; the host
        // keeps `request` valid for this call.
        let (inst, bytes) = unsafe {
            (
                &*instance.cast::<BackendInstance<T>>(),
                request.as_bytes().to_vec(),
            )
        };
        let backend = Arc::clone(&inst.backend);
        let handle = inst.handle().cloned();
        (backend, handle, bytes)
    }));
    let (backend, handle, bytes) = match outcome {
        Ok((b, Some(h), bytes)) => (b, h, bytes),
        Ok((_, None, _)) => {
            return ready(backend_error_reply(
                BackendErrorKind::Failed,
                "the plugin was shut down".into(),
            ));
        }
        Err(payload) => {
            return ready(backend_error_reply(
                BackendErrorKind::Panicked,
                panic_message(&*payload),
            ));
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
    handle.spawn(async move {
        let work = AssertUnwindSafe(serve_backend(&*backend, &bytes)).catch_unwind();
        let mut tx = tx;
        tokio::select! {
            reply = work => {
                let reply = reply.unwrap_or_else(|payload| {
                    backend_error_reply(BackendErrorKind::Panicked, panic_message(&*payload))
                });
                let _ = tx.send(reply);
            }
            // The host dropped the call: stop working on it.
            () = tx.closed() => {}
        }
    });
    // Only this runtime-agnostic receiver is polled by the host's runtime.
    async move {
        let reply = rx.await.unwrap_or_else(|_| {
            backend_error_reply(
                BackendErrorKind::Panicked,
                "the call's task ended without replying".into(),
            )
        });
        FfiBuf::from_vec(reply)
    }
    .into_ffi()
}

unsafe extern "C" fn destroy_backend<T: BackendPlugin>(instance: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if instance.is_null() {
            return;
        }
        // SAFETY: `instance` came from create_backend::<T> and the host destroys it once.
        let mut inst = unsafe { Box::from_raw(instance.cast::<BackendInstance<T>>()) };
        if let Some(rt) = inst.runtime.take() {
            rt.shutdown_timeout(SHUTDOWN_GRACE);
        }
    }));
}

unsafe extern "C" fn create_store<T: StorePlugin>(
    host: *const HostApi,
    context: FfiSlice,
    out: *mut *mut c_void,
) -> FfiBuf {
    // SAFETY: as in create_backend.
    unsafe {
        let bytes = context.as_bytes();
        create_with(host, out, || {
            let store = T::create(read_context(bytes)?)?;
            Ok(Box::into_raw(Box::new(store)).cast())
        })
    }
}

unsafe extern "C" fn call_store<T: StorePlugin>(
    instance: *const c_void,
    request: FfiSlice,
) -> FfiBuf {
    let reply = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `instance` came from create_store::<T>; the host keeps `request` valid.
        let (store, bytes) = unsafe { (&*instance.cast::<T>(), request.as_bytes()) };
        serve_store(store, bytes)
    }))
    .unwrap_or_else(|payload| store_error_reply(StoreError::Panicked(panic_message(&*payload))));
    FfiBuf::from_vec(reply)
}

unsafe extern "C" fn destroy_store<T: StorePlugin>(instance: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !instance.is_null() {
            // SAFETY: `instance` came from create_store::<T> and the host destroys it once.
            drop(unsafe { Box::from_raw(instance.cast::<T>()) });
        }
    }));
}

fn ready(reply: Vec<u8>) -> FfiFuture<FfiBuf> {
    async move { FfiBuf::from_vec(reply) }.into_ffi()
}
