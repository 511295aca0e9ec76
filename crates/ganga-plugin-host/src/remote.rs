//! Instances living in a plugin library, wrapped as ordinary `Backend` and `Store` trait
//! objects: each call is encoded to CBOR, handed over, and the reply decoded.

use std::ffi::c_void;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt as _;
use ganga_core::{
    ActiveJob, ActiveUnit, Answers, Backend, BackendDescription, BackendError, BackendErrorKind,
    BackendRef, Change, CheckReport, CommandStep, Committed, Job, JobId, JobRef, OutputsReport,
    OutputsRequest, PeekFile, PollReport, Store, StoreDescription, StoreError, Subjob, SubjobIndex,
    SubmitSpec, Submitted, SummaryEntry, UnitCursor, UnitRun, UnitUpdate, UnitsUpdated, Value,
};
use ganga_plugin_abi::{FfiSlice, PluginDecl};
use ganga_protocol::{BackendReply, BackendRequest, PluginContext, StoreReply, StoreRequest};
use ganga_records::{JobRecord, RecordChanges, RecordStore, SubjobBatch};
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
        // The library was refused at load time if it had no entry point for backends.
        let Some(answer) = self.instance.decl.backend_call else {
            return Err(protocol(format!(
                "backend plugin `{}` declares no entry point for backend requests",
                self.name
            )));
        };
        // SAFETY: the instance is alive while self is; the plugin copies `bytes` before
        // the call returns, so borrowing them for the call alone is enough.
        let future = unsafe { answer(self.instance.ptr, FfiSlice::borrow(&bytes)) };
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

/// Calls the plugin and takes the reply of the expected kind.
macro_rules! ask {
    ($self:ident, $request:expr, $reply:pat => $value:expr) => {
        match $self.call($request).await? {
            $reply => Ok($value),
            other => Err($self.unexpected(&other)),
        }
    };
}

#[async_trait]
impl Backend for DylibBackend {
    async fn describe(&self) -> Result<BackendDescription, BackendError> {
        ask!(self, BackendRequest::Describe, BackendReply::Described(d) => d)
    }

    async fn submit(&self, jobs: &[SubmitSpec]) -> Result<Answers<Submitted>, BackendError> {
        ask!(self, BackendRequest::Submit(jobs.to_vec()), BackendReply::Submitted(v) => v)
    }

    async fn poll(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        ask!(self, BackendRequest::Poll(jobs.to_vec()), BackendReply::Polled(v) => v)
    }

    async fn poll_all(&self, jobs: &[BackendRef]) -> Result<Answers<PollReport>, BackendError> {
        ask!(self, BackendRequest::PollAll(jobs.to_vec()), BackendReply::Polled(v) => v)
    }

    async fn changes(&self, wait: Duration) -> Result<Vec<JobRef>, BackendError> {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        ask!(self, BackendRequest::Changes { wait_ms }, BackendReply::Changed(v) => v)
    }

    async fn find(&self, jobs: &[UnitRun]) -> Result<Answers<Option<Submitted>>, BackendError> {
        ask!(self, BackendRequest::Find(jobs.to_vec()), BackendReply::Found(v) => v)
    }

    async fn kill(&self, jobs: &[BackendRef]) -> Result<Answers<()>, BackendError> {
        ask!(self, BackendRequest::Kill(jobs.to_vec()), BackendReply::Killed(v) => v)
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
        ask!(self, request, BackendReply::Peeked(bytes) => bytes.into_vec())
    }

    async fn outputs(
        &self,
        jobs: &[OutputsRequest],
    ) -> Result<Answers<OutputsReport>, BackendError> {
        ask!(self, BackendRequest::Outputs(jobs.to_vec()), BackendReply::Outputs(v) => v)
    }

    async fn command(
        &self,
        args: &[String],
        state: Option<Value>,
    ) -> Result<CommandStep, BackendError> {
        let request = BackendRequest::Command {
            args: args.to_vec(),
            state,
        };
        ask!(self, request, BackendReply::Command(step) => step)
    }
}

/// A store plugin loaded from a library.
pub(crate) struct DylibStore {
    name: String,
    instance: Instance,
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
        })
    }

    fn call(&self, request: StoreRequest) -> Result<StoreReply, StoreError> {
        let bytes = encode(&request)
            .map_err(|e| StoreError::Protocol(format!("cannot encode request: {e}")))?;
        // The library was refused at load time if it had no entry point for stores.
        let Some(answer) = self.instance.decl.store_call else {
            return Err(StoreError::Protocol(format!(
                "store plugin `{}` declares no entry point for store requests",
                self.name
            )));
        };
        // SAFETY: the instance is alive while self is and `bytes` outlives the call. The
        // SDK catches panics inside, so nothing unwinds through this frame.
        let reply = unsafe { answer(self.instance.ptr, FfiSlice::borrow(&bytes)) };
        decode::<Result<StoreReply, StoreError>>(reply.as_slice()).map_err(|e| {
            StoreError::Protocol(format!(
                "store plugin `{}` sent an unreadable reply: {e}",
                self.name
            ))
        })?
    }

    fn send_commit(&self, changes: RecordChanges) -> Result<Vec<Committed>, StoreError> {
        match self.call(StoreRequest::Commit(changes))? {
            StoreReply::Committed(c) => Ok(c),
            other => Err(self.unexpected(&other)),
        }
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

    /// Every job put is encoded here, once, into the records the plugin's store keeps.
    fn commit(&self, changes: &[Change]) -> Result<Vec<Committed>, StoreError> {
        self.send_commit(RecordChanges::new(changes.to_vec()))
    }

    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        // The job's records, decoded here: the plugin neither decodes nor encodes it.
        self.job_record(id)?
            .map(|r| {
                r.decode(id).map_err(|e| StoreError::Corrupt {
                    job: JobRef::job(id),
                    detail: e.to_string(),
                })
            })
            .transpose()
    }

    fn subjobs(&self, job: JobId, range: Range<SubjobIndex>) -> Result<Vec<Subjob>, StoreError> {
        self.subjob_batch(job, range)?.subjobs_of(job)
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

    fn active_units(
        &self,
        after: Option<&UnitCursor>,
        limit: u32,
    ) -> Result<Vec<ActiveUnit>, StoreError> {
        let request = StoreRequest::ActiveUnits {
            after: after.cloned(),
            limit,
        };
        match self.call(request)? {
            StoreReply::ActiveUnits(units) => Ok(units),
            other => Err(self.unexpected(&other)),
        }
    }

    fn update_units(&self, updates: &[UnitUpdate]) -> Result<UnitsUpdated, StoreError> {
        match self.call(StoreRequest::UpdateUnits(updates.to_vec()))? {
            StoreReply::UnitsUpdated(u) => Ok(u),
            other => Err(self.unexpected(&other)),
        }
    }

    fn backup(&self, dest: &Path) -> Result<(), StoreError> {
        match self.call(StoreRequest::Backup(dest.to_path_buf()))? {
            StoreReply::BackedUp => Ok(()),
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

/// Records cross the boundary as the plugin's store keeps them, decoded only here.
impl RecordStore for DylibStore {
    fn commit_records(&self, changes: &RecordChanges) -> Result<Vec<Committed>, StoreError> {
        self.send_commit(changes.clone())
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
}

#[cfg(test)]
mod tests {
    //! A store that hands over a damaged record: a declaration made here, called through
    //! `DylibStore` as a loaded library would be.
    #![allow(clippy::unwrap_used)] // a test that cannot set up is a failed test

    use ganga_core::{Application, BackendConfig, Executable, JobSpec, Timestamp};
    use ganga_plugin_abi::{FfiBuf, FfiSlice, PluginDecl, PluginHeader};

    use super::*;

    fn job(id: JobId) -> Job {
        let spec = JobSpec {
            name: format!("job {id}"),
            comment: String::new(),
            application: Application::Executable(Executable {
                exe: "/bin/true".into(),
                args: vec![],
                env: Default::default(),
            }),
            backend: BackendConfig::named("local"),
            input_files: vec![],
            output_files: vec![],
            splitter: None,
            auto_resubmit: None,
        };
        Job::new(id, spec, Timestamp(1_000))
    }

    fn reply(r: Result<StoreReply, StoreError>) -> FfiBuf {
        FfiBuf::from_vec(encode(&r).unwrap())
    }

    unsafe extern "C" fn create(
        _host: *const ganga_plugin_abi::HostApi,
        _context: FfiSlice,
        out: *mut *mut c_void,
    ) -> FfiBuf {
        // SAFETY: the host passes a valid place for the instance; any non-null pointer
        // will do, as these calls never dereference it.
        unsafe { *out = std::ptr::NonNull::<u8>::dangling().as_ptr().cast() };
        FfiBuf::empty()
    }

    unsafe extern "C" fn destroy(_instance: *mut c_void) {}

    /// A store whose records of job 7 are damaged (its state cut short).
    unsafe extern "C" fn damaged(_instance: *const c_void, request: FfiSlice) -> FfiBuf {
        // SAFETY: the host's request bytes are alive for the call.
        let request = unsafe { request.as_bytes() };
        reply(match decode::<StoreRequest>(request).unwrap() {
            StoreRequest::JobRecord(id) => {
                let mut record = JobRecord::of(&job(id));
                if id == 7 {
                    record.state.truncate(2);
                }
                Ok(StoreReply::JobRecord(Some(record)))
            }
            other => Err(StoreError::Unsupported(format!("{other:?}"))),
        })
    }

    const fn decl(store_call: ganga_plugin_abi::StoreCallFn) -> PluginDecl {
        PluginDecl {
            header: PluginHeader {
                magic: 0,
                abi_major: ganga_plugin_abi::ABI_MAJOR,
                decl_size: ganga_plugin_abi::DECL_SIZE,
                name: FfiSlice::from_static("test"),
                version: FfiSlice::from_static("0"),
            },
            async_ffi_abi: ganga_plugin_abi::ASYNC_FFI_ABI_VERSION,
            panic_unwind: 1,
            kind: ganga_plugin_abi::KIND_STORE,
            protocol: FfiSlice::from_static(ganga_protocol::PROTOCOL_VERSION),
            rustc: FfiSlice::from_static(""),
            create,
            backend_call: None,
            store_call: Some(store_call),
            destroy,
        }
    }

    static DAMAGED: PluginDecl = decl(damaged);

    fn context() -> PluginContext {
        PluginContext {
            home: std::env::temp_dir(),
            config: Default::default(),
            home_id: String::new(),
        }
    }

    #[test]
    fn a_damaged_record_is_corrupt_for_its_job_alone() {
        let store = DylibStore::create("damaged", &DAMAGED, &context()).unwrap();
        assert_eq!(store.job(6).unwrap(), Some(job(6)));
        match store.job(7) {
            Err(StoreError::Corrupt { job, detail }) => {
                assert_eq!(job, JobRef::job(7));
                assert!(detail.starts_with("its state: "), "{detail}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
