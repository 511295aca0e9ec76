//! Instances living in a plugin library, wrapped as ordinary `Backend` and `Store` trait
//! objects: each call is encoded to CBOR, handed over, and the reply decoded.

use std::ffi::c_void;
use std::ops::Range;
use std::panic::AssertUnwindSafe;

use async_trait::async_trait;
use futures_util::FutureExt as _;
use ganga_core::compact::{JobRecord, SubjobBatch};
use ganga_core::protocol::{BackendReply, BackendRequest, PluginContext, StoreReply, StoreRequest};
use ganga_core::{
    ActiveJob, Backend, BackendDescription, BackendError, BackendErrorKind, BackendRef, Change,
    CheckReport, Committed, Job, JobId, JobRef, OutputsReport, OutputsRequest, PeekFile, PerJob,
    PollReport, Store, StoreDescription, StoreError, SubjobIndex, SubmitSpec, Submitted,
    SummaryEntry,
};
use ganga_plugin_abi::{FfiSlice, PluginDecl};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An instance created by a plugin's `create`, destroyed once when dropped.
struct Instance {
    decl: &'static PluginDecl,
    ptr: *mut c_void,
}

// SAFETY: the SDK only exports types that are Send + Sync (the Backend and Store traits
// require it), and all access goes through the declaration's thread-safe entry points.
unsafe impl Send for Instance {}
// SAFETY: as above.
unsafe impl Sync for Instance {}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: ptr came from this declaration's `create` and is destroyed exactly once.
        unsafe { (self.decl.destroy)(self.ptr) }
    }
}

/// Calls the plugin's `create` with the CBOR context.
fn create(decl: &'static PluginDecl, context: &PluginContext) -> Result<Instance, String> {
    let bytes = encode(context).map_err(|e| format!("cannot encode the plugin context: {e}"))?;
    let mut ptr: *mut c_void = std::ptr::null_mut();
    let host = crate::log::host_api();
    // SAFETY: the declaration was checked at load; `bytes` outlives the call; `ptr` is a
    // valid place for the instance pointer.
    let error = unsafe { (decl.create)(host, FfiSlice::borrow(&bytes), &mut ptr) };
    if !error.is_empty() {
        return Err(String::from_utf8_lossy(error.as_slice()).into_owned());
    }
    if ptr.is_null() {
        return Err("the plugin created no instance".into());
    }
    Ok(Instance { decl, ptr })
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    ciborium::from_reader(bytes).map_err(|e| e.to_string())
}

/// A backend plugin loaded from a library.
pub(crate) struct DylibBackend {
    name: String,
    instance: Instance,
}

impl DylibBackend {
    pub(crate) fn create(
        name: &str,
        decl: &'static PluginDecl,
        context: &PluginContext,
    ) -> Result<DylibBackend, String> {
        Ok(DylibBackend {
            name: name.to_owned(),
            instance: create(decl, context)?,
        })
    }

    async fn call(&self, request: BackendRequest) -> Result<BackendReply, BackendError> {
        let protocol = |m: String| BackendError::new(BackendErrorKind::Protocol, m);
        let bytes =
            encode(&request).map_err(|e| protocol(format!("cannot encode request: {e}")))?;
        // SAFETY: the instance is alive while self is; the plugin copies `bytes` before
        // `call` returns, so borrowing them for the call alone is enough.
        let future =
            unsafe { (self.instance.decl.call)(self.instance.ptr, FfiSlice::borrow(&bytes)) };
        // async-ffi turns a panic while polling into a panic here; make it this call's error.
        let reply = AssertUnwindSafe(future).catch_unwind().await.map_err(|_| {
            BackendError::new(
                BackendErrorKind::Panicked,
                format!("backend plugin `{}` panicked", self.name),
            )
        })?;
        decode::<Result<BackendReply, BackendError>>(reply.as_slice()).map_err(|e| {
            protocol(format!(
                "backend plugin `{}` sent an unreadable reply: {e}",
                self.name
            ))
        })?
    }

    fn unexpected(&self, reply: &BackendReply) -> BackendError {
        BackendError::new(
            BackendErrorKind::Protocol,
            format!(
                "backend plugin `{}` answered with the wrong reply: {reply:?}",
                self.name
            ),
        )
    }
}

#[async_trait]
impl Backend for DylibBackend {
    async fn describe(&self) -> Result<BackendDescription, BackendError> {
        match self.call(BackendRequest::Describe).await? {
            BackendReply::Described(d) => Ok(d),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Vec<PerJob<Submitted>>, BackendError> {
        match self.call(BackendRequest::Submit(jobs.to_vec())).await? {
            BackendReply::Submitted(v) => Ok(v),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn poll(&self, jobs: &[BackendRef]) -> Result<Vec<PollReport>, BackendError> {
        match self.call(BackendRequest::Poll(jobs.to_vec())).await? {
            BackendReply::Polled(v) => Ok(v),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Vec<PerJob<()>>, BackendError> {
        match self.call(BackendRequest::Kill(jobs.to_vec())).await? {
            BackendReply::Killed(v) => Ok(v),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn peek(
        &self,
        job: &BackendRef,
        file: &PeekFile,
        max_bytes: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let request = BackendRequest::Peek {
            job: job.clone(),
            file: file.clone(),
            max_bytes,
        };
        match self.call(request).await? {
            BackendReply::Peeked(bytes) => Ok(bytes.into_vec()),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Vec<PerJob<OutputsReport>>, BackendError> {
        match self.call(BackendRequest::Outputs(jobs.to_vec())).await? {
            BackendReply::Outputs(v) => Ok(v),
            other => Err(self.unexpected(&other)),
        }
    }
}

/// A store plugin loaded from a library.
pub(crate) struct DylibStore {
    name: String,
    instance: Instance,
    /// Whether the plugin answers `JobRecord` (protocol 2.1); set false on its first
    /// `Unsupported`, after which jobs are asked for whole.
    job_records: std::sync::atomic::AtomicBool,
}

impl DylibStore {
    pub(crate) fn create(
        name: &str,
        decl: &'static PluginDecl,
        context: &PluginContext,
    ) -> Result<DylibStore, String> {
        Ok(DylibStore {
            name: name.to_owned(),
            instance: create(decl, context)?,
            job_records: std::sync::atomic::AtomicBool::new(true),
        })
    }

    fn call(&self, request: StoreRequest) -> Result<StoreReply, StoreError> {
        let bytes = encode(&request)
            .map_err(|e| StoreError::Protocol(format!("cannot encode request: {e}")))?;
        // SAFETY: the instance is alive while self is and `bytes` outlives the call. The
        // SDK catches panics inside, so nothing unwinds through this frame.
        let reply = unsafe {
            (self.instance.decl.call_blocking)(self.instance.ptr, FfiSlice::borrow(&bytes))
        };
        decode::<Result<StoreReply, StoreError>>(reply.as_slice()).map_err(|e| {
            StoreError::Protocol(format!(
                "store plugin `{}` sent an unreadable reply: {e}",
                self.name
            ))
        })?
    }

    fn unexpected(&self, reply: &StoreReply) -> StoreError {
        let what = format!("{reply:?}");
        StoreError::Protocol(format!(
            "store plugin `{}` answered with the wrong reply: {}",
            self.name,
            what.chars().take(200).collect::<String>()
        ))
    }
}

impl Store for DylibStore {
    fn describe(&self) -> Result<StoreDescription, StoreError> {
        match self.call(StoreRequest::Describe)? {
            StoreReply::Described(d) => Ok(d),
            other => Err(self.unexpected(&other)),
        }
    }

    fn reserve_ids(&self, n: u64) -> Result<JobId, StoreError> {
        match self.call(StoreRequest::ReserveIds(n))? {
            StoreReply::Reserved(id) => Ok(id),
            other => Err(self.unexpected(&other)),
        }
    }

    fn commit(&self, changes: &[Change]) -> Result<Vec<Committed>, StoreError> {
        match self.call(StoreRequest::Commit(changes.to_vec()))? {
            StoreReply::Committed(c) => Ok(c),
            other => Err(self.unexpected(&other)),
        }
    }

    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        use std::sync::atomic::Ordering;
        // The job's records, decoded here: the plugin neither decodes nor encodes it.
        if self.job_records.load(Ordering::Relaxed) {
            match self.call(StoreRequest::JobRecord(id)) {
                Ok(StoreReply::JobRecord(record)) => {
                    return record
                        .map(|r| {
                            r.decode(id).map_err(|e| StoreError::Corrupt {
                                job: JobRef::job(id),
                                detail: e.to_string(),
                            })
                        })
                        .transpose();
                }
                Ok(other) => return Err(self.unexpected(&other)),
                // A plugin older than protocol 2.1.
                Err(StoreError::Unsupported(_)) => {
                    self.job_records.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        match self.call(StoreRequest::Job(id))? {
            StoreReply::Job(j) => Ok(j),
            other => Err(self.unexpected(&other)),
        }
    }

    fn job_record(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        match self.call(StoreRequest::JobRecord(id))? {
            StoreReply::JobRecord(r) => Ok(r),
            other => Err(self.unexpected(&other)),
        }
    }

    fn subjob_batch(
        &self,
        job: JobId,
        range: Range<SubjobIndex>,
    ) -> Result<SubjobBatch, StoreError> {
        let request = StoreRequest::Subjobs {
            job,
            start: range.start,
            end: range.end,
        };
        match self.call(request)? {
            StoreReply::Subjobs(batch) => Ok(batch),
            other => Err(self.unexpected(&other)),
        }
    }

    fn summaries(&self, from: JobId, limit: u32) -> Result<Vec<SummaryEntry>, StoreError> {
        match self.call(StoreRequest::Summaries { from, limit })? {
            StoreReply::Summaries(s) => Ok(s),
            other => Err(self.unexpected(&other)),
        }
    }

    fn active(&self) -> Result<Vec<ActiveJob>, StoreError> {
        match self.call(StoreRequest::Active)? {
            StoreReply::Active(a) => Ok(a),
            other => Err(self.unexpected(&other)),
        }
    }

    fn check(&self) -> Result<CheckReport, StoreError> {
        match self.call(StoreRequest::Check)? {
            StoreReply::Checked(c) => Ok(c),
            other => Err(self.unexpected(&other)),
        }
    }

    fn dump(&self) -> Result<String, StoreError> {
        match self.call(StoreRequest::Dump)? {
            StoreReply::Dumped(d) => Ok(d),
            other => Err(self.unexpected(&other)),
        }
    }
}
