//! Answering one CBOR request with a trait call, and encoding the reply.

use ganga_core::{Backend, BackendError, BackendErrorKind, StoreError};
use ganga_protocol::{BackendReply, BackendRequest, StoreReply, StoreRequest};
use ganga_records::RecordStore;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a request could not be read: an unknown variant means the host is newer than this
/// plugin, anything else a broken message.
enum BadRequest {
    Unknown(String),
    Broken(String),
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BadRequest> {
    ciborium::from_reader(bytes).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("unknown variant") {
            BadRequest::Unknown(msg)
        } else {
            BadRequest::Broken(msg)
        }
    })
}

/// Encodes a reply. If the reply itself cannot be encoded, encodes the error saying so,
/// built by `fallback` (which always encodes: it is plain strings).
pub(crate) fn encode<T: Serialize, F: Serialize>(
    reply: &T,
    fallback: impl FnOnce(String) -> F,
) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = ciborium::into_writer(reply, &mut out) {
        out.clear();
        // Invariant: the fallback holds only strings and unit enums, which CBOR always encodes.
        let _ = ciborium::into_writer(&fallback(format!("cannot encode reply: {e}")), &mut out);
    }
    out
}

pub(crate) fn backend_error_reply(kind: BackendErrorKind, message: String) -> Vec<u8> {
    let reply: Result<BackendReply, BackendError> = Err(BackendError::new(kind, message));
    encode(&reply, protocol_error_backend)
}

fn protocol_error_backend(msg: String) -> Result<BackendReply, BackendError> {
    Err(BackendError::new(BackendErrorKind::Protocol, msg))
}

pub(crate) fn store_error_reply(error: StoreError) -> Vec<u8> {
    let reply: Result<StoreReply, StoreError> = Err(error);
    encode(&reply, protocol_error_store)
}

fn protocol_error_store(msg: String) -> Result<StoreReply, StoreError> {
    Err(StoreError::Protocol(msg))
}

pub(crate) async fn serve_backend<B: Backend + ?Sized>(backend: &B, request: &[u8]) -> Vec<u8> {
    let reply = match decode::<BackendRequest>(request) {
        Ok(req) => answer_backend(backend, req).await,
        Err(BadRequest::Unknown(m)) => Err(BackendError::new(
            BackendErrorKind::Unsupported,
            format!("this plugin is older than the request: {m}"),
        )),
        Err(BadRequest::Broken(m)) => Err(BackendError::new(
            BackendErrorKind::Protocol,
            format!("cannot read request: {m}"),
        )),
    };
    encode(&reply, protocol_error_backend)
}

async fn answer_backend<B: Backend + ?Sized>(
    b: &B,
    req: BackendRequest,
) -> Result<BackendReply, BackendError> {
    Ok(match req {
        BackendRequest::Describe => BackendReply::Described(b.describe().await?),
        BackendRequest::Submit(jobs) => BackendReply::Submitted(b.submit(&jobs).await?),
        BackendRequest::Poll(jobs) => BackendReply::Polled(b.poll(&jobs).await?),
        BackendRequest::PollAll(jobs) => BackendReply::Polled(b.poll_all(&jobs).await?),
        BackendRequest::Changes { wait_ms } => {
            BackendReply::Changed(b.changes(std::time::Duration::from_millis(wait_ms)).await?)
        }
        BackendRequest::Find(jobs) => BackendReply::Found(b.find(&jobs).await?),
        BackendRequest::Kill(jobs) => BackendReply::Killed(b.kill(&jobs).await?),
        BackendRequest::Peek {
            job,
            file,
            max_bytes,
        } => BackendReply::Peeked(b.peek(&job, &file, max_bytes).await?.into()),
        BackendRequest::Outputs(jobs) => BackendReply::Outputs(b.outputs(&jobs).await?),
        BackendRequest::Command { args, state } => {
            BackendReply::Command(b.command(&args, state).await?)
        }
    })
}

pub(crate) fn serve_store<S: RecordStore + ?Sized>(store: &S, request: &[u8]) -> Vec<u8> {
    let reply = match decode::<StoreRequest>(request) {
        Ok(req) => answer_store(store, req),
        Err(BadRequest::Unknown(m)) => Err(StoreError::Unsupported(format!(
            "this plugin is older than the request: {m}"
        ))),
        Err(BadRequest::Broken(m)) => {
            Err(StoreError::Protocol(format!("cannot read request: {m}")))
        }
    };
    encode(&reply, protocol_error_store)
}

fn answer_store<S: RecordStore + ?Sized>(
    s: &S,
    req: StoreRequest,
) -> Result<StoreReply, StoreError> {
    Ok(match req {
        StoreRequest::Describe => StoreReply::Described(s.describe()?),
        StoreRequest::ReserveIds(n) => StoreReply::Reserved(s.reserve_ids(n)?),
        StoreRequest::Commit(changes) => StoreReply::Committed(s.commit_records(&changes)?),
        StoreRequest::Job(id) => StoreReply::Job(s.job(id)?),
        StoreRequest::JobRecord(id) => StoreReply::JobRecord(s.job_record(id)?),
        StoreRequest::Subjobs { job, start, end } => {
            StoreReply::Subjobs(s.subjob_batch(job, start..end)?)
        }
        StoreRequest::Summaries { from, limit } => StoreReply::Summaries(s.summaries(from, limit)?),
        StoreRequest::Active => StoreReply::Active(s.active()?),
        StoreRequest::ActiveUnits { after, limit } => {
            StoreReply::ActiveUnits(s.active_units(after.as_ref(), limit)?)
        }
        StoreRequest::UpdateUnits(updates) => StoreReply::UnitsUpdated(s.update_units(&updates)?),
        StoreRequest::Backup(dest) => {
            s.backup(&dest)?;
            StoreReply::BackedUp
        }
        StoreRequest::Check => StoreReply::Checked(s.check()?),
        StoreRequest::Dump => StoreReply::Dumped(s.dump()?),
    })
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}
