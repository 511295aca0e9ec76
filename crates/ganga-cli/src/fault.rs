//! A crash inside the store's library is reported as what it is, not as a bare signal.
//!
//! LMDB reads its pages through a memory map without checking them; the store checks
//! what it can (checksums, page checks), but a damaged page that LMDB itself walks can
//! still make it read out of bounds (`SIGSEGV`), and a data file cut short under the map
//! faults on access (`SIGBUS`), and LMDB's own assertions abort (`SIGABRT`). No Rust code can recover from that. What `ganga` can do is
//! say it clearly: while a call into the store is in flight, a fault ends the command with
//! an error naming the store and what to do, and exit status 1, instead of "Segmentation
//! fault". Outside store calls the fault goes on to the handler that was there before
//! (Rust's own, which reports stack overflows) or the default action, unchanged.
//!
//! The handler does only what is safe in a signal handler: atomic loads, `write(2)` of
//! bytes prepared beforehand, `_exit(2)`.

use std::ffi::CString;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Calls into the store in flight, in every thread (a dynamically loaded store answers
/// on threads of its own while the caller waits).
static STORE_CALLS: AtomicUsize = AtomicUsize::new(0);
/// What the handler writes: the whole message, NUL-terminated, leaked (set once per
/// opened store, a few per process at most).
static MESSAGE: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

/// SIGABRT too: LMDB's own assertions abort on pages it finds inconsistent.
const SIGNALS: [libc::c_int; 3] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGABRT];
/// The handlers that were installed before ours, by signal (index as in `SIGNALS`).
static PREVIOUS: [AtomicPtr<libc::sigaction>; 3] = [
    AtomicPtr::new(std::ptr::null_mut()),
    AtomicPtr::new(std::ptr::null_mut()),
    AtomicPtr::new(std::ptr::null_mut()),
];

/// Installs the handler for SIGSEGV, SIGBUS and SIGABRT, keeping the ones before it to pass other
/// faults on to. Called once, at the start of `main`.
pub(crate) fn install() {
    for (i, &signal) in SIGNALS.iter().enumerate() {
        // SAFETY: sigaction with a zeroed struct whose handler is a valid `extern "C"`
        // function of the right signature (SA_SIGINFO); the previous action is written
        // into memory we own and then leak, so the handler can read it for the life of
        // the process.
        unsafe {
            let mut action: libc::sigaction = MaybeUninit::zeroed().assume_init();
            action.sa_sigaction = on_fault as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let previous: &'static mut libc::sigaction =
                Box::leak(Box::new(MaybeUninit::zeroed().assume_init()));
            if libc::sigaction(signal, &action, previous) == 0 {
                PREVIOUS[i].store(previous, Ordering::Release);
            }
        }
    }
}

/// Names the store a fault during a store call is reported against.
pub(crate) fn name_store(what: &str) {
    let text = format!(
        "error: {what} crashed while being read (a fault inside the store's library): it is \
         probably damaged. Nothing was changed by this command. `ganga store check` says \
         where the damage is; restore the store from a backup (`ganga store backup` makes one) \
         or move it aside to start afresh.\n"
    );
    // A NUL inside a path cannot happen (paths cross to plugins as text); drop any.
    let message = CString::new(text.replace('\0', "")).unwrap_or_default();
    MESSAGE.store(message.into_raw(), Ordering::Release);
}

/// Marks a call into the store as in flight until dropped.
pub(crate) struct StoreCall(());

impl StoreCall {
    pub(crate) fn enter() -> StoreCall {
        STORE_CALLS.fetch_add(1, Ordering::AcqRel);
        StoreCall(())
    }
}

impl Drop for StoreCall {
    fn drop(&mut self) {
        STORE_CALLS.fetch_sub(1, Ordering::AcqRel);
    }
}

extern "C" fn on_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let message = MESSAGE.load(Ordering::Acquire);
    if STORE_CALLS.load(Ordering::Acquire) > 0 && !message.is_null() {
        // SAFETY: `message` is a NUL-terminated string leaked by `name_store` and never
        // freed; write(2) and _exit(2) are async-signal-safe.
        unsafe {
            let len = libc::strlen(message);
            libc::write(2, message.cast(), len);
            libc::_exit(1);
        }
    }
    let index = SIGNALS.iter().position(|&s| s == signal);
    let previous = index.map_or(std::ptr::null_mut(), |i| {
        PREVIOUS[i].load(Ordering::Acquire)
    });
    // SAFETY: `previous` is null or the action saved by `install`, leaked and never
    // changed since; calling the handler it names with our own arguments is what the
    // kernel would have done had ours not been installed.
    unsafe {
        if !previous.is_null() {
            let p = &*previous;
            let handler = p.sa_sigaction;
            if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
                if p.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(handler);
                    f(signal, info, context);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                    f(signal);
                }
                return;
            }
        }
        // The default action: returning re-runs the faulting access, which now ends the
        // process as it would have without us.
        let mut action: libc::sigaction = MaybeUninit::zeroed().assume_init();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, std::ptr::null_mut());
    }
}
