//! The compact record encoding: every field survives, damage is reported, records are small.

#![allow(clippy::unwrap_used)] // a test that cannot set up is a failed test

use std::collections::BTreeMap;

use ganga_core::{
    Application, BackendConfig, BackendInfo, Executable, Job, JobSpec, JobSummary, Override,
    RunState, SplitAttribute, Splitter, Status, StatusTimes, Subjob, Timestamp, Value,
};
use ganga_records::{
    Dictionary, JobRecord, RecordChanges, SubjobBatch, UnitEntry, decode_job, decode_state,
    decode_subjob, decode_summary, decode_unit_entry, encode_job, encode_splitter, encode_state,
    encode_subjob, encode_summary, encode_unit_entry, restamp_state, split_items_of_encoded,
    summary_differences,
};

const T0: i64 = 1_700_000_000_000;

fn full_job() -> Job {
    let spec = JobSpec {
        auto_resubmit: None,
        name: "ünïcode \"job\"".into(),
        comment: "line one\nline two".into(),
        application: Application::Executable(Executable {
            exe: "/usr/bin/analysis".into(),
            args: vec!["--in".into(), "".into(), "a b".into()],
            env: BTreeMap::from([("A".into(), "1".into()), ("EMPTY".into(), String::new())]),
        }),
        backend: BackendConfig {
            kind: "slurm".into(),
            options: BTreeMap::from([
                ("queue".into(), Value::from("long")),
                ("nodes".into(), Value::Integer(-3)),
                ("mem".into(), Value::Float(1.5)),
                ("exclusive".into(), Value::Bool(true)),
                (
                    "extra".into(),
                    Value::Table(BTreeMap::from([(
                        "x".into(),
                        Value::List(vec![Value::Integer(1), "y".into()]),
                    )])),
                ),
            ]),
        },
        input_files: vec!["/data/in.txt".into(), "/data/ü b".into()],
        output_files: vec!["*.root".into(), "log.txt".into()],
        splitter: Some(Splitter::Generic {
            attributes: vec![
                SplitAttribute {
                    path: "application.args".into(),
                    values: vec![Value::List(vec!["x".into(), Value::Integer(1)]), "y".into()],
                },
                SplitAttribute {
                    path: "backend.queue".into(),
                    values: vec!["long".into(), Value::Float(0.5)],
                },
            ],
        }),
    };
    Job {
        id: 42,
        revision: 7,
        spec: std::sync::Arc::new(spec),
        run: RunState {
            auto_resubmits: 0,
            status: Status::Running,
            times: [
                (Status::New, Timestamp(T0)),
                (Status::Submitting, Timestamp(T0 + 5)),
                (Status::Running, Timestamp(T0 - 9)),
            ]
            .into_iter()
            .collect(),
            submit_count: 3,
            backend: BackendInfo {
                id: Some("abc-12".into()),
                native_state: Some("RUNNING".into()),
                exit_code: Some(-9),
                reason: Some("node lost".into()),
                actual_ce: Some("node17".into()),
            },
            outputs: vec!["stdout".into()],
        },
        subjobs: [Status::Running, Status::Completed, Status::Completed]
            .into_iter()
            .collect(),
        metadata: BTreeMap::from([("ganga.uuid".into(), "0b4e".into())]),
    }
}

fn every_override() -> Vec<Override> {
    vec![
        Override::Name("n".into()),
        Override::Comment("c".into()),
        Override::Exe("/bin/x".into()),
        Override::Args(vec!["a".into(), "".into()]),
        Override::AppendArgs(vec!["b".into()]),
        Override::Env(BTreeMap::from([("K".into(), "V".into())])),
        Override::EnvVar("SEED".into(), "7".into()),
        Override::BackendOption("queue".into(), Value::List(vec![Value::Bool(false)])),
    ]
}

fn completed_subjob(index: u32) -> Subjob {
    let mut sj = Subjob::new(
        index,
        vec![Override::AppendArgs(vec![format!("arg{index}")])],
        Timestamp(T0),
    );
    sj.run.status = Status::Completed;
    for (s, d) in [
        (Status::Submitting, 10),
        (Status::Submitted, 20),
        (Status::Running, 1_000 + i64::from(index)),
        (Status::Completing, 600_000),
        (Status::Completed, 600_100),
    ] {
        sj.run.times.set(s, Timestamp(T0 + d));
    }
    sj.run.submit_count = 1;
    sj.run.backend = BackendInfo {
        id: Some(format!("{}", 1_234_567 + index)),
        native_state: Some("exited 0".into()),
        exit_code: Some(0),
        reason: None,
        actual_ce: Some("node01.example.org".into()),
    };
    sj.run.outputs = vec!["out.root".into(), "stderr".into(), "stdout".into()];
    sj
}

#[test]
fn every_field_of_a_job_survives() {
    let job = full_job();
    let mut buf = Vec::new();
    encode_job(&job, &mut buf);
    assert_eq!(decode_job(42, &buf).unwrap(), job);
    let empty = Job::new(
        1,
        JobSpec {
            splitter: None,
            ..JobSpec::clone(&full_job().spec)
        },
        Timestamp(5),
    );
    let mut buf = Vec::new();
    encode_job(&empty, &mut buf);
    assert_eq!(decode_job(1, &buf).unwrap(), empty);
}

#[test]
fn every_field_of_a_subjob_survives_with_its_dictionary() {
    let mut dict = Dictionary::new(Timestamp(T0));
    let mut sj = completed_subjob(3);
    sj.overrides = every_override();
    sj.run.backend.reason = Some("why".into());
    sj.run.backend.id = Some("007".into()); // not a canonical number: kept as text
    let mut buf = Vec::new();
    encode_subjob(&sj, &mut dict, None, &mut buf);
    // The dictionary travels separately: through its own encoding.
    let dict = Dictionary::decode(&dict.encode()).unwrap();
    assert_eq!(decode_subjob(3, &buf, &dict, None).unwrap(), sj);

    // A new subjob: only status, count, times.
    let fresh = Subjob::new(9, Vec::new(), Timestamp(T0 - 100));
    let mut buf = Vec::new();
    let mut dict = Dictionary::new(Timestamp(T0));
    encode_subjob(&fresh, &mut dict, None, &mut buf);
    assert_eq!(decode_subjob(9, &buf, &dict, None).unwrap(), fresh);
    assert!(buf.len() <= 8, "a new subjob is tiny: {} bytes", buf.len());
}

#[test]
fn a_typical_finished_subjob_is_a_few_dozen_bytes() {
    let mut dict = Dictionary::new(Timestamp(T0));
    let mut total = 0;
    for i in 0..1000 {
        let mut buf = Vec::new();
        encode_subjob(&completed_subjob(i), &mut dict, None, &mut buf);
        total += buf.len();
    }
    let per = total / 1000;
    // 41 bytes: status, count, six times, a 7-digit backend id, exit code, three interned
    // strings and an override carrying its own argument.
    assert!(per <= 42, "{per} bytes per subjob");
    assert_eq!(
        dict.len(),
        3,
        "native state, host and the outputs list are shared"
    );
}

#[test]
fn summaries_survive() {
    let job = full_job();
    let s = JobSummary::of(&job);
    let mut buf = Vec::new();
    encode_summary(&s, &mut buf);
    assert_eq!(decode_summary(42, &buf).unwrap(), s);
    let mut bare = s.clone();
    bare.created = None;
    bare.exit_code = None;
    let mut buf = Vec::new();
    encode_summary(&bare, &mut buf);
    assert_eq!(decode_summary(42, &buf).unwrap(), bare);
    assert_eq!(summary_differences(&s, &s), Vec::<&str>::new());
    assert_eq!(summary_differences(&bare, &s), vec!["exit_code", "created"]);
}

#[test]
fn a_dictionary_keeps_its_ranges_of_indices_and_plain_readers_skip_them() {
    let mut dict = Dictionary::new(Timestamp(T0));
    dict.intern("Running");
    dict.intern("node-1");
    let ranges = [(0, 4), (6, 6), (9, 20)];
    let (back, read) = Dictionary::decode_with_indices(&dict.encode_with_indices(&ranges)).unwrap();
    assert_eq!(back, dict);
    assert_eq!(read, Some(ranges.to_vec()));
    assert_eq!(back.get(1), Some("node-1"));
    assert_eq!(
        Dictionary::decode(&dict.encode_with_indices(&ranges)).unwrap(),
        dict
    );
    let (plain, none) = Dictionary::decode_with_indices(&dict.encode()).unwrap();
    assert_eq!((plain, none), (dict.clone(), None));
    assert_eq!(dict.encode_with_indices(&[]).len(), dict.encode().len() + 1);
    for bad in [[(0, 4), (5, 6)], [(3, 4), (0, 1)]] {
        let err = Dictionary::decode_with_indices(&dict.encode_with_indices(&bad)).unwrap_err();
        assert!(
            err.to_string().contains("out of order or touching"),
            "{err}"
        );
    }
}

#[test]
fn a_unit_entry_leaves_out_only_its_trailing_empty_items() {
    let mut run = completed_subjob(3).run;
    let mut sizes = Vec::new();
    for step in 0..4 {
        match step {
            0 => {}
            1 => run.times = StatusTimes::default(),
            2 => run.backend.native_state = None,
            _ => run.backend.id = None,
        }
        let mut buf = Vec::new();
        encode_unit_entry(&run, &mut buf);
        assert_eq!(decode_unit_entry(&buf).unwrap(), UnitEntry::of(&run));
        sizes.push(buf[0]);
    }
    // CBOR array headers of 5, 4, 3 and 2 items.
    assert_eq!(sizes, [0x85, 0x84, 0x83, 0x82]);
}

#[test]
fn a_batch_carries_subjobs_and_its_dictionary() {
    let subjobs: Vec<Subjob> = (0..300).map(completed_subjob).collect();
    let batch = SubjobBatch::pack(&subjobs);
    let back = SubjobBatch::decode(&batch.encode()).unwrap();
    assert_eq!(back.unpack().unwrap(), subjobs);
    assert_eq!(
        SubjobBatch::pack(&[]).unpack().unwrap(),
        Vec::<Subjob>::new()
    );
}

#[test]
fn a_batch_packs_subjobs_in_index_order_and_the_later_of_two_wins() {
    // As the monitor or a user's resubmit may hand them over: out of order, one twice.
    let mut again = completed_subjob(7);
    again.run.backend.exit_code = Some(99);
    let given = vec![
        completed_subjob(7),
        completed_subjob(2),
        completed_subjob(40),
        again.clone(),
    ];
    let back = SubjobBatch::decode(&SubjobBatch::pack(&given).encode())
        .unwrap()
        .unpack()
        .unwrap();
    assert_eq!(back, vec![completed_subjob(2), again, completed_subjob(40)]);
}

#[test]
fn damaged_records_are_errors_never_panics() {
    let mut dict = Dictionary::new(Timestamp(T0));
    let mut sj = completed_subjob(1);
    sj.overrides = every_override();
    let mut sub = Vec::new();
    encode_subjob(&sj, &mut dict, None, &mut sub);
    let mut job = Vec::new();
    encode_job(&full_job(), &mut job);
    let mut summary = Vec::new();
    encode_summary(&JobSummary::of(&full_job()), &mut summary);
    let batch = SubjobBatch::pack(&[sj.clone(), completed_subjob(2)]).encode();

    for (name, bytes) in [
        ("subjob", &sub),
        ("job", &job),
        ("summary", &summary),
        ("batch", &batch),
    ] {
        // Every truncation.
        for cut in 0..bytes.len() {
            let b = &bytes[..cut];
            let ok = match name {
                "subjob" => decode_subjob(1, b, &dict, None).is_ok(),
                "job" => decode_job(1, b).is_ok(),
                "summary" => decode_summary(1, b).is_ok(),
                _ => SubjobBatch::decode(b).is_ok(),
            };
            assert!(!ok, "{name} cut at {cut} of {} decoded", bytes.len());
        }
        // Every single-byte corruption: an error or some value, never a panic.
        for pos in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[pos] ^= flip;
                let _ = match name {
                    "subjob" => decode_subjob(1, &b, &dict, None).map(|_| ()),
                    "job" => decode_job(1, &b).map(|_| ()),
                    "summary" => decode_summary(1, &b).map(|_| ()),
                    _ => SubjobBatch::decode(&b).map(|_| ()),
                };
            }
        }
    }
    // A reference to a string the dictionary does not have.
    let err = decode_subjob(1, &sub, &Dictionary::new(Timestamp(T0)), None).unwrap_err();
    assert!(
        err.to_string().contains("not in the job's dictionary"),
        "{err}"
    );
    // A huge length claimed by a tiny record.
    assert!(
        decode_subjob(
            1,
            &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &dict,
            None
        )
        .is_err()
    );
    assert!(
        decode_job(
            1,
            &[
                0x85, 0x01, 0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ]
        )
        .is_err()
    );
}

#[test]
fn records_from_a_newer_writer_with_more_fields_still_read() {
    let mut dict = Dictionary::new(Timestamp(T0));
    let sj = completed_subjob(0);
    let mut buf = Vec::new();
    encode_subjob(&sj, &mut dict, None, &mut buf);
    // Append two fields: bump the array length (0x8a = array of 10 -> 0x8c) and add the
    // 11th this reader knows (automatic resubmissions, 0) and a 12th it does not.
    assert_eq!(buf[0], 0x8a);
    buf[0] = 0x8c;
    buf.extend_from_slice(&[0x00, 0x82, 0x01, 0x62, b'h', b'i']);
    assert_eq!(decode_subjob(0, &buf, &dict, None).unwrap(), sj);
}

#[test]
fn times_are_kept_exactly_whatever_their_order() {
    let times: StatusTimes = [
        (Status::New, Timestamp(i64::MIN / 2)),
        (Status::Failed, Timestamp(3)),
        (Status::Submitting, Timestamp(i64::MAX / 2)),
    ]
    .into_iter()
    .collect();
    let mut sj = Subjob::new(0, Vec::new(), Timestamp(0));
    sj.run.times = times;
    let mut dict = Dictionary::new(Timestamp(T0));
    let mut buf = Vec::new();
    encode_subjob(&sj, &mut dict, None, &mut buf);
    assert_eq!(decode_subjob(0, &buf, &dict, None).unwrap(), sj);
}

#[test]
fn overrides_equal_to_the_masters_split_item_are_not_repeated() {
    let splitter = Splitter::Args {
        args: (0..10)
            .map(|i| {
                vec![
                    "medium".into(),
                    "sub".into(),
                    i.to_string(),
                    format!("r{i}"),
                ]
            })
            .collect(),
        append: false,
    };
    let mut dict = Dictionary::new(Timestamp(T0));
    let mut sj = completed_subjob(4);
    sj.overrides = splitter.item(4).unwrap().unwrap();
    let item = splitter.item(4).unwrap().unwrap();
    let (mut with, mut without) = (Vec::new(), Vec::new());
    encode_subjob(&sj, &mut dict, Some(&item), &mut with);
    encode_subjob(&sj, &mut dict, None, &mut without);
    assert!(
        with.len() + 15 <= without.len(),
        "{} vs {}",
        with.len(),
        without.len()
    );
    assert_eq!(decode_subjob(4, &with, &dict, Some(&item)).unwrap(), sj);
    assert_eq!(decode_subjob(4, &without, &dict, None).unwrap(), sj);
    // Without the split item the record cannot be read, and says why.
    let err = decode_subjob(4, &with, &dict, None).unwrap_err();
    assert!(err.to_string().contains("master's splitter"), "{err}");
    // A subjob whose overrides differ from the item keeps its own.
    let mut own = sj.clone();
    own.overrides = vec![Override::Args(vec!["mine".into()])];
    let mut buf = Vec::new();
    encode_subjob(&own, &mut dict, Some(&item), &mut buf);
    assert_eq!(decode_subjob(4, &buf, &dict, Some(&item)).unwrap(), own);

    // A batch carries the items its records need.
    let mut batch = SubjobBatch::with_dictionary(dict.clone());
    batch.push_record(4, &with);
    batch.set_splitter(Some(&splitter));
    let back = SubjobBatch::decode(&batch.encode()).unwrap();
    assert_eq!(back.unpack().unwrap(), vec![sj.clone()]);
    assert_eq!(back.get(4).unwrap().unwrap(), sj);
    assert_eq!(back.status(4).unwrap().unwrap(), Status::Completed);
    assert!(back.get(5).is_none());
}

#[test]
fn statuses_are_read_without_decoding_the_rest() {
    let mut subjobs: Vec<Subjob> = (0..50).map(completed_subjob).collect();
    subjobs[7].run.status = Status::Failed;
    let batch = SubjobBatch::decode(&SubjobBatch::pack(&subjobs).encode()).unwrap();
    let statuses: Vec<_> = batch.statuses().map(|(i, s)| (i, s.unwrap())).collect();
    assert_eq!(statuses.len(), 50);
    assert_eq!(statuses[7], (7, Status::Failed));
    assert!(
        statuses
            .iter()
            .filter(|(_, s)| *s == Status::Completed)
            .count()
            == 49
    );
}

#[test]
fn arg_splitter_words_are_shared_in_a_master_record() {
    let words = |i: usize| {
        vec![
            "medium".to_owned(),
            "sub".to_owned(),
            i.to_string(),
            format!("r{i}"),
            "007".into(),
            "-1".into(),
            String::new(),
        ]
    };
    let mut job = full_job();
    std::sync::Arc::make_mut(&mut job.spec).splitter = Some(Splitter::Args {
        args: (0..1000).map(words).collect(),
        append: true,
    });
    let mut buf = Vec::new();
    encode_job(&job, &mut buf);
    assert_eq!(decode_job(42, &buf).unwrap(), job);
    // 1,000 lists of seven words: the shared ones once, numbers as numbers.
    assert!(buf.len() < 1000 * 16, "{} bytes", buf.len());
}

#[test]
fn a_job_in_parts_is_the_job() {
    use ganga_records::{
        decode_spec, decode_splitter, decode_state, encode_spec, encode_splitter, encode_state,
        job_from_parts,
    };
    let job = full_job();
    let (mut state, mut spec, mut splitter) = (Vec::new(), Vec::new(), Vec::new());
    encode_state(&job, &mut state);
    encode_spec(&job.spec, &mut spec);
    encode_splitter(job.spec.splitter.as_ref(), &mut splitter);
    let back = job_from_parts(
        job.id,
        decode_state(&state).unwrap(),
        decode_spec(&spec).unwrap(),
        decode_splitter(&splitter).unwrap(),
    );
    assert_eq!(back, job);
    assert!(
        state.len() < 150,
        "the state of a job is small: {} bytes",
        state.len()
    );
}

#[test]
fn a_run_update_travels_compactly() {
    use ganga_core::{Change, RunUpdate};
    let job = full_job();
    let commit = RecordChanges::new(vec![Change::PutRun(RunUpdate::of(&job))]);
    let mut bytes = Vec::new();
    ciborium::into_writer(&commit, &mut bytes).unwrap();
    assert!(bytes.len() < 120, "{} bytes", bytes.len());
    assert_eq!(
        ciborium::from_reader::<RecordChanges, _>(&bytes[..]).unwrap(),
        commit
    );
}

#[test]
fn every_kind_of_change_survives_the_wire_with_the_records_of_its_jobs() {
    use ganga_core::{Change, RunUpdate};
    let job = full_job();
    let mut plain = full_job();
    plain.id = 8;
    std::sync::Arc::make_mut(&mut plain.spec).splitter = None;
    let commit = RecordChanges::new(vec![
        Change::PutJob(job.clone()),
        Change::PutRun(RunUpdate::of(&job)),
        Change::PutSubjobs {
            job: job.id,
            subjobs: vec![completed_subjob(0), completed_subjob(3)],
        },
        Change::RemoveJob {
            job: 9,
            revision: 4,
        },
        Change::PutJob(plain.clone()),
    ]);
    let mut bytes = Vec::new();
    ciborium::into_writer(&commit, &mut bytes).unwrap();
    let back = ciborium::from_reader::<RecordChanges, _>(&bytes[..]).unwrap();
    assert_eq!(back, commit);
    // The records that came are the job's, byte for byte, and only puts have them.
    assert_eq!(back.job_record(0), Some(&JobRecord::of(&job)));
    assert_eq!(back.job_record(4), Some(&JobRecord::of(&plain)));
    assert_eq!(back.job_record(4).unwrap().splitter, None);
    for i in 1..4 {
        assert_eq!(back.job_record(i), None, "change {i}");
    }
    assert_eq!(back.job_record(5), None);
    assert_eq!(back.into_changes(), commit.changes());
}

/// The CBOR of a commit of one job put whose records are `record`.
fn sent_put(id: u64, record: &JobRecord) -> Vec<u8> {
    use ciborium::Value as C;
    let splitter = match &record.splitter {
        Some(b) => C::Bytes(b.to_vec()),
        None => C::Null,
    };
    let put = C::Map(vec![(
        C::Text("put_job".into()),
        C::Array(vec![
            C::Integer(id.into()),
            C::Bytes(record.state.to_vec()),
            C::Bytes(record.spec.to_vec()),
            splitter,
        ]),
    )]);
    let mut bytes = Vec::new();
    ciborium::into_writer(&C::Array(vec![put]), &mut bytes).unwrap();
    bytes
}

#[test]
fn a_put_whose_records_do_not_decode_is_refused_naming_its_job() {
    let job = full_job();
    let good = JobRecord::of(&job);
    let back: RecordChanges = ciborium::from_reader(&sent_put(job.id, &good)[..]).unwrap();
    assert_eq!(back.changes(), [ganga_core::Change::PutJob(job.clone())]);

    let mut cut_state = good.clone();
    let cut = cut_state.state.len() - 1;
    cut_state.state.truncate(cut);
    let mut cut_spec = good.clone();
    cut_spec.spec.truncate(4);
    let mut garbage_splitter = good.clone();
    garbage_splitter.splitter = Some(vec![0xff, 0x00].into());
    let mut no_splitter = good.clone();
    no_splitter.splitter = None;
    let mut null_splitter = good.clone();
    null_splitter.splitter = Some({
        let mut b = Vec::new();
        encode_splitter(None, &mut b);
        b.into()
    });
    for (what, record, expected) in [
        ("a state cut short", cut_state, "its state"),
        ("a spec cut short", cut_spec, "its spec"),
        ("a splitter of garbage", garbage_splitter, "its splitter"),
        ("a splitter missing", no_splitter, "no splitter record"),
        (
            "a splitter that says none",
            null_splitter,
            "says it has none",
        ),
    ] {
        let error = ciborium::from_reader::<RecordChanges, _>(&sent_put(42, &record)[..])
            .expect_err(what)
            .to_string();
        assert!(error.contains("job 42"), "{what}: {error}");
        assert!(error.contains(expected), "{what}: {error}");
    }
}

#[test]
fn a_state_is_restamped_with_a_new_revision_and_nothing_else_changes() {
    let mut job = full_job();
    for (old, new) in [
        (0, 1),
        (7, 8),
        (23, 24),
        (255, 256),
        (65_535, 65_536),
        (u64::MAX - 1, u64::MAX),
    ] {
        job.revision = old;
        let mut state = Vec::new();
        encode_state(&job, &mut state);
        let mut restamped = b"kept".to_vec();
        assert_eq!(restamp_state(&state, new, &mut restamped).unwrap(), old);
        assert_eq!(&restamped[..4], b"kept", "appended, not overwritten");
        let mut bumped = job.clone();
        bumped.revision = new;
        let mut expected = b"kept".to_vec();
        encode_state(&bumped, &mut expected);
        assert_eq!(restamped, expected, "revision {old} -> {new}");
        assert_eq!(decode_state(&restamped[4..]).unwrap().revision, new);
    }
}

#[test]
fn a_damaged_state_is_not_restamped() {
    let job = full_job();
    let mut state = Vec::new();
    encode_state(&job, &mut state);
    let mut with_trailing = state.clone();
    with_trailing.push(0);
    let mut not_a_number = state.clone();
    not_a_number[1] = 0x60; // an empty text where the revision is
    let cases: Vec<(&str, Vec<u8>)> = (0..state.len())
        .map(|n| ("truncated", state[..n].to_vec()))
        .chain([
            ("trailing bytes", with_trailing),
            ("a revision that is no number", not_a_number),
            ("an empty array", vec![0x80]),
            ("not an array", vec![0x01]),
        ])
        .collect();
    for (what, bytes) in cases {
        let mut buf = Vec::new();
        assert!(
            restamp_state(&bytes, 1, &mut buf).is_err(),
            "{what} ({} bytes)",
            bytes.len()
        );
        assert!(buf.is_empty(), "{what}: nothing written");
    }
}

#[test]
fn a_job_record_is_the_job_and_names_the_part_that_is_damaged() {
    let job = full_job();
    let record = JobRecord::of(&job);
    assert!(job.spec.splitter.is_some() && record.splitter.is_some());
    assert_eq!(record.decode(job.id).unwrap(), job);

    let mut plain = full_job();
    std::sync::Arc::make_mut(&mut plain.spec).splitter = None;
    let record = JobRecord::of(&plain);
    assert_eq!(record.splitter, None);
    assert_eq!(record.decode(plain.id).unwrap(), plain);

    for (part, damage) in [
        (
            "state",
            (|r: &mut JobRecord| r.state.truncate(3)) as fn(&mut JobRecord),
        ),
        ("spec", |r| r.spec.truncate(3)),
        ("splitter", |r| {
            if let Some(s) = &mut r.splitter {
                s.truncate(3);
            }
        }),
    ] {
        let mut record = JobRecord::of(&job);
        damage(&mut record);
        let error = record.decode(job.id).unwrap_err().to_string();
        assert!(error.starts_with(&format!("its {part}: ")), "{error}");
    }
}

#[test]
fn split_items_read_from_an_encoded_splitter_are_the_splitters_own() {
    let args = Splitter::Args {
        // Repeated words (in the word table), numbers, unique words, an empty list.
        args: (0..500)
            .map(|k| {
                if k == 7 {
                    vec![]
                } else {
                    vec![
                        "medium".into(),
                        k.to_string(),
                        format!("r{}", k * 7919 % 1000),
                    ]
                }
            })
            .collect(),
        append: true,
    };
    let generic = Splitter::Generic {
        attributes: vec![SplitAttribute {
            path: "application.args".into(),
            values: (0..20)
                .map(|k| Value::List(vec![Value::String(format!("x{k}"))]))
                .collect(),
        }],
    };
    let wanted: std::collections::BTreeSet<u32> = [0, 7, 8, 19, 250, 499, 500, 10_000].into();
    for splitter in [&args, &generic] {
        let mut bytes = Vec::new();
        encode_splitter(Some(splitter), &mut bytes);
        let items = split_items_of_encoded(&bytes, &wanted).unwrap();
        for &i in &wanted {
            assert_eq!(
                items.get(&i),
                splitter.item(i as usize).unwrap().as_ref(),
                "item {i}"
            );
        }
        bytes.truncate(bytes.len() - 2);
        assert!(split_items_of_encoded(&bytes, &wanted).is_err());
    }
    let mut none = Vec::new();
    encode_splitter(None, &mut none);
    assert!(split_items_of_encoded(&none, &wanted).unwrap().is_empty());
}

#[test]
fn unit_updates_cross_the_boundary_as_one_compact_record() {
    use ganga_core::{JobRef, Status, Timestamp, UnitChange, UnitUpdate};
    use ganga_records::packed_unit_updates;
    let updates = vec![
        UnitUpdate {
            unit: JobRef::subjob(7, 3),
            seen: Status::Submitted,
            run: 2,
            change: UnitChange {
                native_state: Some("RUNNING".to_owned()),
                ..UnitChange::to(Status::Running, Timestamp(1_700_000_000_123))
            },
        },
        UnitUpdate {
            unit: JobRef::job(8),
            seen: Status::Failed,
            run: 1,
            change: UnitChange {
                new_run: true,
                id: Some("x-1".to_owned()),
                exit_code: Some(-3),
                reason: Some("why".to_owned()),
                actual_ce: Some("ce".to_owned()),
                outputs: Some(vec!["a".to_owned(), String::new()]),
                ..UnitChange::to(Status::Submitting, Timestamp(-5))
            },
        },
        UnitUpdate {
            unit: JobRef::job(9),
            seen: Status::Running,
            run: 0,
            change: UnitChange::default(),
        },
    ];
    let bytes = packed_unit_updates::encode(&updates);
    assert_eq!(packed_unit_updates::decode(&bytes), Ok(updates.clone()));
    for cut in 0..bytes.len() {
        assert!(
            packed_unit_updates::decode(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}
