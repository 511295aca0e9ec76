//! The record decoders on bytes they were never meant to see: arbitrary bytes, and valid
//! records of every kind with bytes changed, cut off or inserted. A decoder must answer
//! (a record or an error), never panic, and never allocate much more than the record it
//! reads (every length it meets is checked against what is left). Checksums keep damaged
//! records from the decoders in a store; this is the line behind them.
//!
//! A few hundred cases run with `cargo test`; `GANGA_FUZZ_CASES=N` runs more.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use ganga_core::{
    Application, BackendConfig, BackendInfo, Executable, Job, JobSpec, JobSummary, Override,
    RunState, SplitAttribute, Splitter, Status, StatusTimes, Subjob, Timestamp, Value,
};
use ganga_records::{Dictionary, SubjobBatch};
use proptest::prelude::*;

/// Records the largest single allocation: what a decoder fooled by a length would make.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

fn spec() -> JobSpec {
    JobSpec {
        auto_resubmit: None,
        name: "fuzzed".to_owned(),
        comment: "a job whose records are damaged".to_owned(),
        application: Application::Executable(Executable {
            exe: "/bin/echo".to_owned(),
            args: vec!["a".to_owned(), "b".to_owned()],
            env: BTreeMap::from([("K".to_owned(), "V".to_owned())]),
        }),
        backend: BackendConfig {
            kind: "slurm".to_owned(),
            options: BTreeMap::from([("queue".to_owned(), Value::String("short".to_owned()))]),
        },
        input_files: vec!["/tmp/in".into()],
        output_files: vec!["hello-*.txt".to_owned()],
        splitter: Some(Splitter::Args {
            args: (0..20)
                .map(|k| vec![format!("arg{k}"), "x".to_owned()])
                .collect(),
            append: true,
        }),
    }
}

fn run() -> RunState {
    let mut times = StatusTimes::default();
    times.set(Status::Submitted, Timestamp(1_700_000_000_000));
    times.set(Status::Running, Timestamp(1_700_000_100_000));
    RunState {
        status: Status::Running,
        times,
        submit_count: 2,
        auto_resubmits: 1,
        backend: BackendInfo {
            id: Some("12345".to_owned()),
            native_state: Some("RUNNING".to_owned()),
            exit_code: Some(3),
            reason: Some("because".to_owned()),
            actual_ce: Some("wn01".to_owned()),
        },
        outputs: vec!["hello-1.txt".to_owned()],
    }
}

/// One valid record of each kind, with the dictionary the subjob records need.
fn records() -> (Vec<(&'static str, Vec<u8>)>, Dictionary) {
    let mut job = Job::new(7, spec(), Timestamp(1_700_000_000_000));
    job.run = run();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    ganga_records::encode_state(&job, &mut buf);
    out.push(("state", std::mem::take(&mut buf)));
    ganga_records::encode_spec(&job.spec, &mut buf);
    out.push(("spec", std::mem::take(&mut buf)));
    ganga_records::encode_splitter(job.spec.splitter.as_ref(), &mut buf);
    out.push(("splitter", std::mem::take(&mut buf)));
    let generic = Splitter::Generic {
        attributes: vec![SplitAttribute {
            path: "application.env.N".to_owned(),
            values: vec![Value::Integer(1), Value::Float(2.5), Value::Bool(true)],
        }],
    };
    ganga_records::encode_splitter(Some(&generic), &mut buf);
    out.push(("splitter", std::mem::take(&mut buf)));
    ganga_records::encode_summary(&JobSummary::of(&job), &mut buf);
    out.push(("summary", std::mem::take(&mut buf)));
    ganga_records::encode_job(&job, &mut buf);
    out.push(("job", std::mem::take(&mut buf)));
    let mut dict = Dictionary::new(Timestamp(1_700_000_000_000));
    let mut subjob = Subjob::new(
        3,
        vec![
            Override::AppendArgs(vec!["arg3".to_owned()]),
            Override::EnvVar("K".to_owned(), "W".to_owned()),
        ],
        Timestamp(1_700_000_000_000),
    );
    subjob.run = run();
    ganga_records::encode_subjob(&subjob, &mut dict, None, &mut buf);
    out.push(("subjob", std::mem::take(&mut buf)));
    let item = vec![Override::AppendArgs(vec!["arg3".to_owned()])];
    subjob.overrides = item.clone();
    ganga_records::encode_subjob(&subjob, &mut dict, Some(&item), &mut buf);
    out.push(("subjob", std::mem::take(&mut buf)));
    out.push(("dictionary", dict.encode_with_indices(&[(0, 9), (12, 30)])));
    ganga_records::encode_unit_entry(&run(), &mut buf);
    out.push(("unit", std::mem::take(&mut buf)));
    out.push((
        "batch",
        SubjobBatch::pack(std::slice::from_ref(&subjob)).encode(),
    ));
    (out, dict)
}

/// Every decoder on `bytes`; only whether they return matters.
fn decode_all(bytes: &[u8], dict: &Dictionary) {
    let item = [Override::AppendArgs(vec!["arg3".to_owned()])];
    let _ = ganga_records::decode_state(bytes);
    let _ = ganga_records::decode_spec_apart(bytes);
    let _ = ganga_records::decode_splitter(bytes);
    let _ = ganga_records::decode_summary(7, bytes);
    let _ = ganga_records::decode_job(7, bytes);
    let _ = Dictionary::decode(bytes);
    let _ = Dictionary::decode_with_indices(bytes);
    let _ = ganga_records::decode_subjob(3, bytes, dict, None);
    let _ = ganga_records::decode_subjob(3, bytes, dict, Some(&item));
    let _ = ganga_records::decode_subjob_run(bytes, dict);
    let _ = ganga_records::decode_unit_entry(bytes);
    let _ = ganga_records::packed_unit_updates::decode(bytes);
    let _ = ganga_records::split_items_of_encoded(bytes, &[0, 3, 19, 1000].into_iter().collect());
    if let Ok(batch) = SubjobBatch::decode(bytes) {
        let _ = batch.unpack();
        let _ = batch.statuses().count();
    }
    let record = ganga_records::JobRecord {
        state: bytes.to_vec().into(),
        spec: bytes.to_vec().into(),
        splitter: Some(bytes.to_vec().into()),
    };
    let _ = record.decode(7);
}

/// A valid record changed: bytes replaced, cut off, or inserted.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let (records, _) = records();
    let records: Vec<Vec<u8>> = records.into_iter().map(|(_, r)| r).collect();
    (
        0..records.len(),
        prop::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 1..6),
    )
        .prop_map(move |(k, edits)| {
            let mut bytes = records[k].clone();
            for (at, byte, how) in edits {
                if bytes.is_empty() {
                    break;
                }
                let at = at % bytes.len();
                match how {
                    0 => bytes[at] = byte,
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at, byte),
                }
            }
            bytes
        })
}

fn cases() -> u32 {
    std::env::var("GANGA_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

/// What decoding `bytes` may allocate at most at once: a few times the record (strings
/// are copied out of it), and the fixed buffers of the decoders.
fn allowed(bytes: &[u8]) -> usize {
    64 * 1024 + 16 * bytes.len()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn decoders_answer_damaged_records_without_panic_or_huge_allocation(
        arbitrary in prop::collection::vec(any::<u8>(), 0..600),
        changed in mutated(),
    ) {
        let (_, dict) = records();
        for bytes in [&arbitrary, &changed] {
            LARGEST.store(0, Ordering::Relaxed);
            decode_all(bytes, &dict);
            let largest = LARGEST.load(Ordering::Relaxed);
            prop_assert!(
                largest <= allowed(bytes),
                "decoding {} bytes allocated {largest} bytes at once: {bytes:02x?}",
                bytes.len()
            );
        }
    }
}

#[test]
fn the_valid_records_decode() {
    let (records, dict) = records();
    for (kind, bytes) in &records {
        let ok = match *kind {
            "state" => ganga_records::decode_state(bytes).is_ok(),
            "spec" => ganga_records::decode_spec_apart(bytes).is_ok_and(|(_, apart)| apart),
            "splitter" => ganga_records::decode_splitter(bytes).is_ok(),
            "summary" => ganga_records::decode_summary(7, bytes).is_ok(),
            "job" => ganga_records::decode_job(7, bytes).is_ok(),
            "subjob" => ganga_records::decode_subjob_run(bytes, &dict).is_ok(),
            "dictionary" => Dictionary::decode_with_indices(bytes).is_ok_and(|(_, r)| r.is_some()),
            "unit" => ganga_records::decode_unit_entry(bytes).is_ok(),
            "batch" => SubjobBatch::decode(bytes).is_ok_and(|b| b.unpack().is_ok()),
            "updates" => {
                ganga_records::packed_unit_updates::decode(bytes).is_ok_and(|u| u.len() == 2)
            }
            other => panic!("no check for {other}"),
        };
        assert!(ok, "the valid {kind} record does not decode");
    }
}
