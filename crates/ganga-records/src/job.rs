use std::collections::BTreeMap;

use ganga_core::{Job, JobId, JobSpec, RunState, Splitter, StatusCounts};

use crate::cbor::{CodecError, Fields, In, Out, Result};
use crate::run::{get_run, put_run};
use crate::spec::{get_spec, get_splitter, put_spec, put_splitter};
use crate::times::{get_counts, put_counts};

/// `[revision, spec, run, subjob counts, metadata]`; the run's times are deltas from its
/// first time; strings are inline (a job is one record).
pub fn encode_job(job: &Job, buf: &mut Vec<u8>) {
    let mut out = Out::new(buf);
    out.array(5);
    out.uint(job.revision);
    put_spec(&mut out, &job.spec, job.spec.splitter.as_ref());
    put_run(&mut out, &job.run);
    put_counts(&mut out, &job.subjobs);
    out.pairs(job.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

pub fn decode_job(id: JobId, bytes: &[u8]) -> Result<Job> {
    let mut input = In::new(bytes);
    let mut f = Fields::open(&mut input, "job")?;
    let revision = f
        .next()
        .ok_or_else(|| CodecError::new("job: no revision"))?
        .uint("revision")?;
    let (spec, _) = get_spec(f.next().ok_or_else(|| CodecError::new("job: no spec"))?)?;
    let run = get_run(
        f.next()
            .ok_or_else(|| CodecError::new("job: no run state"))?,
    )?;
    let (subjobs, metadata) = counts_and_metadata(&mut f)?;
    f.close()?;
    input.end("job")?;
    Ok(Job {
        id,
        revision,
        spec: std::sync::Arc::new(spec),
        run,
        subjobs,
        metadata,
    })
}

/// A job's state, the part of its record that changes as it runs: `[revision, run,
/// subjob counts, metadata]`. A store may keep it apart from the spec, so that a change
/// of status rewrites a few dozen bytes, not a master's thousands of split arguments.
pub fn encode_state(job: &Job, buf: &mut Vec<u8>) {
    encode_state_parts(job.revision, &job.run, &job.subjobs, &job.metadata, buf);
}

/// A job's state ([`encode_state`]) from its parts, for a store that updates a job's run
/// without its spec.
pub fn encode_state_parts(
    revision: u64,
    run: &RunState,
    counts: &StatusCounts,
    metadata: &BTreeMap<String, String>,
    buf: &mut Vec<u8>,
) {
    let mut out = Out::new(buf);
    out.array(4);
    out.uint(revision);
    put_run(&mut out, run);
    put_counts(&mut out, counts);
    out.pairs(metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

/// A job's state record ([`encode_state`]) with its revision replaced by `revision`,
/// appended to `buf`; returns the revision it replaced. Only the array's header and the
/// revision are rewritten: the run, counters and metadata are copied as they are, after
/// their framing is checked (every item whole, nothing after them), so that a store that
/// was sent a job's records bumps its revision without encoding its state again. Fails,
/// writing nothing, on a record that is not a state.
pub fn restamp_state(state: &[u8], revision: u64, buf: &mut Vec<u8>) -> Result<u64> {
    let mut input = In::new(state);
    let items = input.array("job state")?;
    if items == 0 {
        return Err(CodecError::new("job state: no revision"));
    }
    let old = input.uint("revision")?;
    let rest = input.dec.offset();
    for _ in 1..items {
        input.skip(0)?;
    }
    input.end("job state")?;
    {
        let mut out = Out::new(buf);
        out.array(items);
        out.uint(revision);
    }
    buf.extend_from_slice(&state[rest..]);
    Ok(old)
}

/// A job's state as stored by [`encode_state`].
#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    pub revision: u64,
    pub run: RunState,
    pub subjobs: StatusCounts,
    pub metadata: BTreeMap<String, String>,
}

/// A job's subjob counters and metadata, the last fields of its record and of its state
/// (each left out when empty).
pub(crate) fn counts_and_metadata(
    f: &mut Fields<'_, '_>,
) -> Result<(StatusCounts, BTreeMap<String, String>)> {
    let subjobs = match f.next() {
        Some(i) => get_counts(i)?,
        None => StatusCounts::default(),
    };
    let metadata = match f.next() {
        Some(i) => i.pairs("metadata")?,
        None => BTreeMap::new(),
    };
    Ok((subjobs, metadata))
}

pub fn decode_state(bytes: &[u8]) -> Result<JobState> {
    let mut input = In::new(bytes);
    let mut f = Fields::open(&mut input, "job state")?;
    let revision = f.need("revision")?.uint("revision")?;
    let run = get_run(f.need("run state")?)?;
    let (subjobs, metadata) = counts_and_metadata(&mut f)?;
    f.close()?;
    input.end("job state")?;
    Ok(JobState {
        revision,
        run,
        subjobs,
        metadata,
    })
}

/// A job's spec without its splitter (the splitter is [`encode_splitter`]'s). In the
/// splitter's place it says whether the job has one (`true`, kept apart) or not (`null`),
/// so that a splitter record that went missing is noticed ([`decode_spec_apart`]).
pub fn encode_spec(spec: &JobSpec, buf: &mut Vec<u8>) {
    let mut out = Out::new(buf);
    put_spec(&mut out, spec, None);
}

pub fn decode_spec(bytes: &[u8]) -> Result<JobSpec> {
    decode_spec_apart(bytes).map(|(spec, _)| spec)
}

/// A spec as [`decode_spec`], and whether it says its job has a splitter kept apart
/// (records written before it said so say `false`).
pub fn decode_spec_apart(bytes: &[u8]) -> Result<(JobSpec, bool)> {
    let mut input = In::new(bytes);
    let spec = get_spec(&mut input)?;
    input.end("spec")?;
    Ok(spec)
}

/// A splitter alone (null for none).
pub fn encode_splitter(splitter: Option<&Splitter>, buf: &mut Vec<u8>) {
    let mut out = Out::new(buf);
    put_splitter(&mut out, splitter);
}

pub fn decode_splitter(bytes: &[u8]) -> Result<Option<Splitter>> {
    let mut input = In::new(bytes);
    let splitter = get_splitter(&mut input)?;
    input.end("splitter")?;
    Ok(splitter)
}

/// A job from its parts as [`encode_state`], [`encode_spec`] and [`encode_splitter`] wrote
/// them.
pub fn job_from_parts(
    id: JobId,
    state: JobState,
    mut spec: JobSpec,
    splitter: Option<Splitter>,
) -> Job {
    spec.splitter = splitter;
    Job {
        id,
        revision: state.revision,
        spec: std::sync::Arc::new(spec),
        run: state.run,
        subjobs: state.subjobs,
        metadata: state.metadata,
    }
}

/// A job as a store keeps it: its state ([`encode_state`]), its spec without its
/// splitter ([`encode_spec`]) and its splitter ([`encode_splitter`], absent for a job
/// without one). A store that keeps these records hands them over as they are
/// ([`crate::Store::job_record`]), so that across the plugin boundary a job is decoded
/// once, by the caller, and never decoded and encoded again by the plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobRecord {
    pub state: serde_bytes::ByteBuf,
    pub spec: serde_bytes::ByteBuf,
    pub splitter: Option<serde_bytes::ByteBuf>,
}

impl JobRecord {
    /// The records of `job`.
    pub fn of(job: &Job) -> JobRecord {
        let mut state = Vec::new();
        encode_state(job, &mut state);
        let mut spec = Vec::new();
        encode_spec(&job.spec, &mut spec);
        let splitter = job.spec.splitter.as_ref().map(|s| {
            let mut bytes = Vec::new();
            encode_splitter(Some(s), &mut bytes);
            serde_bytes::ByteBuf::from(bytes)
        });
        JobRecord {
            state: state.into(),
            spec: spec.into(),
            splitter,
        }
    }

    /// The job `id` these records make, or why they do not: the part that does not decode.
    pub fn decode(&self, id: JobId) -> Result<Job> {
        fn named(part: &'static str) -> impl Fn(CodecError) -> CodecError {
            move |e| CodecError::new(format!("its {part}: {e}"))
        }
        let state = decode_state(&self.state).map_err(named("state"))?;
        let (spec, apart) = decode_spec_apart(&self.spec).map_err(named("spec"))?;
        let splitter = match &self.splitter {
            Some(bytes) => decode_splitter(bytes).map_err(named("splitter"))?,
            None if apart => {
                return Err(CodecError::new(
                    "its spec says it has a splitter, but no splitter record came with it",
                ));
            }
            None => None,
        };
        Ok(job_from_parts(id, state, spec, splitter))
    }
}

pub(crate) fn put_opt_text(out: &mut Out<'_>, s: &Option<String>) {
    match s {
        Some(s) => out.text(s),
        None => out.null(),
    }
}

pub(crate) fn get_opt_text(input: &mut In<'_>, what: &str) -> Result<Option<String>> {
    if input.is_null()? {
        Ok(None)
    } else {
        input.text(what).map(Some)
    }
}
