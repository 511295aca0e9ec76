//! The store as the host meets it: requests through the plugin's own entry point (the
//! declaration `export_store!` makes, the SDK's code behind it), in this process. A job
//! put arrives as the records the host encoded; they are stored as they came.

#![allow(clippy::unwrap_used)] // a test that cannot set up is a failed test

use std::collections::BTreeMap;
use std::ffi::c_void;

use ganga_core::{
    Application, BackendConfig, Executable, Job, JobId, JobSpec, Splitter, StoreError, Timestamp,
};
use ganga_plugin_sdk::PluginContext;
use ganga_plugin_sdk::abi::{FfiSlice, PluginDecl};
use ganga_protocol::{StoreReply, StoreRequest};
use ganga_records::{JobRecord, restamp_state};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A store instance made and called through the plugin's declaration, as the host does.
struct Plugin {
    decl: &'static PluginDecl,
    instance: *mut c_void,
}

impl Plugin {
    fn create(home: &std::path::Path) -> Plugin {
        let decl = &ganga_store_lmdb::GANGA_PLUGIN_DECL;
        let mut context = Vec::new();
        ciborium::into_writer(
            &PluginContext {
                home: home.to_owned(),
                config: Default::default(),
                home_id: String::new(),
            },
            &mut context,
        )
        .unwrap();
        let mut instance = std::ptr::null_mut();
        // SAFETY: a null host API is allowed; `context` outlives the call and `instance`
        // is a valid place for the pointer.
        let error =
            unsafe { (decl.create)(std::ptr::null(), FfiSlice::borrow(&context), &mut instance) };
        assert!(
            error.is_empty(),
            "{}",
            String::from_utf8_lossy(error.as_slice())
        );
        Plugin { decl, instance }
    }

    /// Sends request bytes as they are; the decoded reply.
    fn send(&self, request: &[u8]) -> Result<StoreReply, StoreError> {
        let call = self.decl.store_call.unwrap();
        // SAFETY: the instance lives until drop; `request` outlives the call.
        let reply = unsafe { call(self.instance, FfiSlice::borrow(request)) };
        ciborium::from_reader(reply.as_slice()).unwrap()
    }

    fn call(&self, request: &StoreRequest) -> Result<StoreReply, StoreError> {
        let mut bytes = Vec::new();
        ciborium::into_writer(request, &mut bytes).unwrap();
        self.send(&bytes)
    }

    fn job_record(&self, id: JobId) -> Option<JobRecord> {
        match self.call(&StoreRequest::JobRecord(id)) {
            Ok(StoreReply::JobRecord(record)) => record,
            other => panic!("job record: {other:?}"),
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // SAFETY: made by this declaration's `create`, destroyed once.
        unsafe { (self.decl.destroy)(self.instance) }
    }
}

fn split_job(id: JobId) -> Job {
    let spec = JobSpec {
        auto_resubmit: None,
        name: "sent once".into(),
        comment: String::new(),
        application: Application::Executable(Executable {
            exe: "/bin/echo".into(),
            args: vec!["base".into()],
            env: BTreeMap::from([("A".into(), "1".into())]),
        }),
        backend: BackendConfig::named("local"),
        input_files: vec![],
        output_files: vec![],
        splitter: Some(Splitter::Args {
            args: (0..50).map(|i| vec![format!("arg{i}")]).collect(),
            append: false,
        }),
    };
    Job::new(id, spec, Timestamp(1_700_000_000_000))
}

/// A commit of one job put whose records are `record`, as the host's bytes.
fn commit_request(id: JobId, record: &JobRecord) -> Vec<u8> {
    use ciborium::Value as C;
    let bytes = |b: &[u8]| C::Bytes(b.to_vec());
    let put = C::Map(vec![(
        C::Text("put_job".into()),
        C::Array(vec![
            C::Integer(id.into()),
            bytes(&record.state),
            bytes(&record.spec),
            record.splitter.as_deref().map_or(C::Null, |b| bytes(b)),
        ]),
    )]);
    let request = C::Map(vec![(C::Text("commit".into()), C::Array(vec![put]))]);
    let mut out = Vec::new();
    ciborium::into_writer(&request, &mut out).unwrap();
    out
}

/// `record` with the array header of a record in its longer, non-minimal form (one byte
/// of length after the major type): the same record to every reader, other bytes than
/// this crate writes.
fn long_header(record: &[u8]) -> Vec<u8> {
    let (&first, rest) = record.split_first().unwrap();
    assert!((0x80..0x98).contains(&first), "a short array header");
    let mut out = vec![0x98, first - 0x80];
    out.extend_from_slice(rest);
    out
}

#[test]
fn a_job_put_is_stored_as_the_records_that_were_sent() -> TestResult {
    let home = tempfile::tempdir()?;
    let plugin = Plugin::create(home.path());
    let Ok(StoreReply::Reserved(id)) = plugin.call(&StoreRequest::ReserveIds(2)) else {
        panic!("no ids reserved");
    };
    let job = split_job(id);
    let ours = JobRecord::of(&job);
    // Records that decode to this job but that this crate would never write: a state
    // with a trailing field of a newer writer, a spec and a splitter with long headers.
    // Had the store encoded the job again, it would have written `ours`.
    let mut state = ours.state.to_vec();
    assert_eq!(state[0], 0x84, "a state of four items");
    state[0] = 0x85;
    state.extend_from_slice(&[0x66, b'n', b'e', b'w', b'e', b'r', b'!']);
    let sent = JobRecord {
        state: state.into(),
        spec: long_header(&ours.spec).into(),
        splitter: Some(long_header(ours.splitter.as_deref().unwrap()).into()),
    };
    assert_eq!(sent.decode(id)?, job);
    assert!(sent.state != ours.state && sent.spec != ours.spec && sent.splitter != ours.splitter);

    let reply = plugin.send(&commit_request(id, &sent))?;
    let StoreReply::Committed(committed) = reply else {
        panic!("not committed: {reply:?}");
    };
    assert_eq!(committed[0].revision, 1);

    let stored = plugin.job_record(id).unwrap();
    let mut bumped = Vec::new();
    assert_eq!(restamp_state(&sent.state, 1, &mut bumped)?, 0);
    assert_eq!(
        stored.state.as_slice(),
        bumped.as_slice(),
        "state, revision 1"
    );
    assert_eq!(stored.spec, sent.spec, "spec");
    assert_eq!(stored.splitter, sent.splitter, "splitter");
    let mut expected = job.clone();
    expected.revision = 1;
    assert_eq!(stored.decode(id)?, expected);

    // Put again at its revision: the spec and splitter are the same bytes, so stay; the
    // state is the one sent again, at revision 2.
    let mut again = sent.clone();
    again.state = bumped.into();
    let reply = plugin.send(&commit_request(id, &again))?;
    assert!(matches!(reply, StoreReply::Committed(_)), "{reply:?}");
    let stored = plugin.job_record(id).unwrap();
    let mut twice = Vec::new();
    restamp_state(&again.state, 2, &mut twice)?;
    assert_eq!(stored.state.as_slice(), twice.as_slice());
    assert_eq!((stored.spec, stored.splitter), (sent.spec, sent.splitter));
    Ok(())
}

#[test]
fn a_job_put_whose_records_do_not_decode_is_refused_naming_the_job() -> TestResult {
    let home = tempfile::tempdir()?;
    let plugin = Plugin::create(home.path());
    let Ok(StoreReply::Reserved(id)) = plugin.call(&StoreRequest::ReserveIds(1)) else {
        panic!("no ids reserved");
    };
    let good = JobRecord::of(&split_job(id));
    let mut cut_state = good.clone();
    cut_state.state.truncate(5);
    let mut cut_splitter = good.clone();
    cut_splitter.splitter.as_mut().unwrap().truncate(9);
    for (what, record) in [("state", cut_state), ("splitter", cut_splitter)] {
        match plugin.send(&commit_request(id, &record)) {
            Err(StoreError::Protocol(message)) => {
                assert!(message.contains(&format!("job {id}")), "{what}: {message}");
                assert!(
                    message.contains(&format!("its {what}")),
                    "{what}: {message}"
                );
            }
            other => panic!("{what}: expected a protocol error, got {other:?}"),
        }
        assert_eq!(plugin.job_record(id), None, "{what}: nothing written");
    }
    // The records as they should be go in.
    let reply = plugin.send(&commit_request(id, &good))?;
    assert!(matches!(reply, StoreReply::Committed(_)), "{reply:?}");
    Ok(())
}
