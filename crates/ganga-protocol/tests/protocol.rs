//! The messages that cross the plugin boundary survive CBOR, packed records included.

#![allow(clippy::unwrap_used)] // a test that cannot set up is a failed test

use std::collections::BTreeMap;

use ganga_core::{
    Application, BackendConfig, Change, Executable, Job, JobSpec, Splitter, Subjob, Timestamp,
};
use ganga_protocol::{StoreReply, StoreRequest};
use ganga_records::RecordChanges;

fn split_job(n: usize) -> (Job, Vec<Subjob>) {
    let args = (0..n).map(|i| vec![i.to_string()]).collect();
    let spec = JobSpec {
        auto_resubmit: None,
        name: "j".into(),
        comment: String::new(),
        application: Application::Executable(Executable {
            exe: "/bin/echo".into(),
            args: vec!["base".into()],
            env: BTreeMap::from([("A".into(), "1".into())]),
        }),
        backend: BackendConfig::named("local"),
        input_files: vec![],
        output_files: vec!["*.txt".into()],
        splitter: Some(Splitter::Args {
            args,
            append: false,
        }),
    };
    let mut job = Job::new(3, spec, Timestamp(1));
    let subjobs = job.split(Timestamp(2)).unwrap();
    (job, subjobs)
}

#[test]
fn protocol_messages_survive_cbor() {
    let (job, sjs) = split_job(2);
    let msgs = vec![
        StoreRequest::Commit(RecordChanges::new(vec![
            Change::PutJob(job.clone()),
            Change::PutSubjobs {
                job: job.id,
                subjobs: sjs.clone(),
            },
        ])),
        StoreRequest::Subjobs {
            job: 3,
            start: 0,
            end: 10,
        },
    ];
    for m in msgs {
        let mut bytes = Vec::new();
        ciborium::into_writer(&m, &mut bytes).unwrap();
        let back: StoreRequest = ciborium::from_reader(&bytes[..]).unwrap();
        assert_eq!(back, m);
    }
    let reply = StoreReply::Job(Some(job));
    let mut bytes = Vec::new();
    ciborium::into_writer(&reply, &mut bytes).unwrap();
    assert_eq!(
        ciborium::from_reader::<StoreReply, _>(&bytes[..]).unwrap(),
        reply
    );
}
