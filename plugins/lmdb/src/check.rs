//! `Store::check`: does every job have its state and its spec (and a splitter only if it
//! has one), do the summaries, the active index, the dictionaries and the subjob counters
//! agree with the job and subjob records, and does every record (each subjob's against
//! its dictionary and its master's split item) decode? Reads everything in one read
//! transaction and reports every disagreement it finds as a sentence.

use std::collections::{BTreeMap, BTreeSet};

use ganga_core::{
    CheckReport, JobId, JobRef, JobSummary, Splitter, Status, StatusCounts, SubjobIndex,
};
use ganga_records::{
    Dictionary, UnitEntry, decode_unit_entry, job_from_parts, summary_differences,
};
use heed::RoTxn;

use crate::codec::{
    FORMAT_VERSION, decode_active, decode_dict_record, decode_spec, decode_splitter, decode_state,
    decode_subjob, decode_summary, split_item,
};
use crate::dump::{active_value_text, counts_text, hex};
use crate::env::Tables;
use crate::error::Failure;
use crate::group::{self, first_index, last_index};
use crate::indices::Indices;
use crate::{keys, trim};

pub(crate) fn check(tables: &Tables, txn: &RoTxn) -> Result<CheckReport, Failure> {
    let mut report = CheckReport::default();
    let next_id = check_meta(tables, txn, &mut report.problems)?;
    let Expected {
        jobs,
        active,
        backends,
        units,
    } = check_jobs(tables, txn, next_id, &mut report)?;
    check_owned_by_jobs(tables, txn, &jobs, &mut report.problems)?;
    check_active(tables, txn, &jobs, active, &mut report.problems)?;
    check_subjobs_and_units(tables, txn, &jobs, &backends, units, &mut report)?;
    Ok(report)
}

/// What the job records say the other tables must hold, gathered as they are read.
struct Expected {
    /// Id -> the subjob counters of a readable job, None for an unreadable one.
    jobs: BTreeMap<JobId, Option<StatusCounts>>,
    /// Active key -> the job, its status and revision, for each readable active job.
    active: BTreeMap<Vec<u8>, (JobId, Status, u64)>,
    backends: BTreeMap<JobId, String>,
    /// Units key -> what the index must hold, for each active job without subjobs (the
    /// subjobs' entries are added as their records are read).
    units: BTreeMap<Vec<u8>, UnitEntry>,
}

/// The format version and the next id to reserve (`None` if it cannot be read).
fn check_meta(
    tables: &Tables,
    txn: &RoTxn,
    problems: &mut Vec<String>,
) -> Result<Option<JobId>, Failure> {
    match refusal_as_problem(tables.format_version(txn))? {
        Ok(Some(FORMAT_VERSION)) => {}
        Ok(Some(v)) => problems.push(format!(
            "meta: format version is {v}, expected {FORMAT_VERSION}"
        )),
        Ok(None) => problems.push("meta: no format version".to_owned()),
        Err(problem) => problems.push(problem),
    }
    let next_id = match refusal_as_problem(tables.next_job_id(txn))? {
        Ok(next) => Some(next),
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    Ok(next_id)
}

/// Jobs: each has a state and a spec that decode (and a splitter that does, if it has
/// one), a summary that agrees, and an id below the next to reserve.
fn check_jobs(
    tables: &Tables,
    txn: &RoTxn,
    next_id: Option<JobId>,
    report: &mut CheckReport,
) -> Result<Expected, Failure> {
    let problems = &mut report.problems;
    // Id -> the subjob counters of a readable job, None for an unreadable one.
    let mut jobs: BTreeMap<JobId, Option<StatusCounts>> = BTreeMap::new();
    // Active key -> the job, its status and revision, for each readable active job.
    let mut expected_active: BTreeMap<Vec<u8>, (JobId, Status, u64)> = BTreeMap::new();
    let mut backends: BTreeMap<JobId, String> = BTreeMap::new();
    // Units key -> what the index must hold, for each active unit.
    let mut expected_units: BTreeMap<Vec<u8>, UnitEntry> = BTreeMap::new();
    for entry in tables.jobs.iter(txn)? {
        let Some((key, bytes)) = damage(problems, entry)? else {
            continue;
        };
        trim::scanned(bytes);
        report.jobs += 1;
        let Some(id) = keys::parse_job(key) else {
            problems.push(format!("jobs: key {} is not a job id", hex(key)));
            continue;
        };
        if let Some(next) = next_id
            && id >= next
        {
            problems.push(format!(
                "job {id}: id is not below the next id to reserve ({next}), so it could be \
                 handed out again"
            ));
        }
        let spec = damage(problems, tables.specs.get(txn, key))?.flatten();
        let splitter = damage(problems, tables.splitters.get(txn, key))?.flatten();
        trim::scanned(spec.unwrap_or_default());
        trim::scanned(splitter.unwrap_or_default());
        let state = decode_state(bytes);
        let spec = spec.map(decode_spec);
        let splitter = splitter.map(decode_splitter);
        // Each part that does not decode is named. A job whose state does not decode is
        // not expected to have the others (an upgrade carries such a record over alone).
        let mut unreadable = Vec::new();
        if let Err(e) = &state {
            unreadable.push(format!("table jobs: {e}"));
        }
        match &spec {
            None if state.is_ok() => unreadable.push(format!("table specs: job {id} has no spec")),
            Some(Err(e)) => unreadable.push(format!("table specs: {e}")),
            _ => {}
        }
        match &splitter {
            Some(Err(e)) => unreadable.push(format!("table splitters: {e}")),
            Some(Ok(None)) => problems.push(format!(
                "job {id}: table splitters holds an empty splitter (null) for it; a job \
                 without a splitter has no entry there"
            )),
            _ => {}
        }
        let (Ok(state), Some(Ok(spec)), Ok(splitter)) =
            (state, spec, splitter.transpose().map(Option::flatten))
        else {
            for u in unreadable {
                problems.push(format!("job {id}: record unreadable: {u}"));
            }
            jobs.insert(id, None);
            continue;
        };
        let job = job_from_parts(id, state, spec, splitter);
        backends.insert(id, job.spec.backend.kind.clone());
        if !job.is_split() && job.status().is_active() {
            expected_units.insert(
                keys::unit(&job.spec.backend.kind, JobRef::job(id)),
                UnitEntry::of(&job.run),
            );
        }
        let expected = JobSummary::of(&job);
        match damage(problems, tables.summaries.get(txn, key))?.flatten() {
            None => problems.push(format!("job {id}: no summary")),
            Some(bytes) => match decode_summary(id, bytes) {
                Err(detail) => problems.push(format!("job {id}: summary unreadable: {detail}")),
                Ok(summary) if summary != expected => problems.push(format!(
                    "job {id}: summary differs from the job in {}",
                    summary_differences(&summary, &expected).join(", ")
                )),
                Ok(_) => {}
            },
        }
        if job.status().is_active() {
            expected_active.insert(
                keys::active(&job.spec.backend.kind, id),
                (id, job.status(), job.revision),
            );
        }
        jobs.insert(id, Some(job.subjobs));
    }
    Ok(Expected {
        jobs,
        active: expected_active,
        backends,
        units: expected_units,
    })
}

/// Specs, splitters and summaries: each belongs to a job.
fn check_owned_by_jobs(
    tables: &Tables,
    txn: &RoTxn,
    jobs: &BTreeMap<JobId, Option<StatusCounts>>,
    problems: &mut Vec<String>,
) -> Result<(), Failure> {
    for (name, what, table) in [
        ("specs", "spec", tables.specs),
        ("splitters", "splitter", tables.splitters),
    ] {
        for entry in table.iter(txn)? {
            let Some((key, _)) = damage(problems, entry)? else {
                continue;
            };
            match keys::parse_job(key) {
                None => problems.push(format!("{name}: key {} is not a job id", hex(key))),
                Some(id) if !jobs.contains_key(&id) => {
                    problems.push(format!("{what} {id}: there is no job {id}"));
                }
                Some(_) => {}
            }
        }
    }

    for entry in tables.summaries.iter(txn)? {
        let Some((key, _)) = damage(problems, entry)? else {
            continue;
        };
        match keys::parse_job(key) {
            None => problems.push(format!("summaries: key {} is not a job id", hex(key))),
            Some(id) if !jobs.contains_key(&id) => {
                problems.push(format!("summary {id}: there is no job {id}"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The index of active jobs: an entry for each active job, holding its status and
/// revision, and none for any other.
fn check_active(
    tables: &Tables,
    txn: &RoTxn,
    jobs: &BTreeMap<JobId, Option<StatusCounts>>,
    mut expected_active: BTreeMap<Vec<u8>, (JobId, Status, u64)>,
    problems: &mut Vec<String>,
) -> Result<(), Failure> {
    for entry in tables.active.iter(txn)? {
        let Some((key, value)) = damage(problems, entry)? else {
            continue;
        };
        let Some((backend, id)) = keys::parse_active(key) else {
            problems.push(format!(
                "active: key {} is not a backend name and job id",
                hex(key)
            ));
            continue;
        };
        match expected_active.remove(key) {
            Some((_, status, revision)) => {
                if decode_active(value) != Some((status, revision)) {
                    problems.push(format!(
                        "active entry {backend} {id}: records {} but job {id} is {status} at \
                         revision {revision}",
                        active_value_text(value)
                    ));
                }
            }
            None => match jobs.get(&id) {
                None => problems.push(format!("active entry {backend} {id}: there is no job {id}")),
                Some(None) => problems.push(format!(
                    "active entry {backend} {id}: job {id} is unreadable"
                )),
                Some(Some(_)) => problems.push(format!(
                    "active entry {backend} {id}: job {id} is not active on backend {backend}"
                )),
            },
        }
    }
    for (id, status, _) in expected_active.values() {
        problems.push(format!(
            "job {id} is {status} but is missing from the active index"
        ));
    }
    Ok(())
}

/// Dictionaries, subjob records, the index of active units and the subjob counters: each
/// dictionary and subjob belongs to a job and decodes, each active unit has its entry,
/// and each master's counters count its subjobs.
fn check_subjobs_and_units(
    tables: &Tables,
    txn: &RoTxn,
    jobs: &BTreeMap<JobId, Option<StatusCounts>>,
    backends: &BTreeMap<JobId, String>,
    mut expected_units: BTreeMap<Vec<u8>, UnitEntry>,
    report: &mut CheckReport,
) -> Result<(), Failure> {
    let (dicts, said) = check_dictionaries(tables, txn, jobs, &mut report.problems)?;
    let mut scan = check_subjobs(
        tables,
        txn,
        jobs,
        backends,
        &dicts,
        &mut expected_units,
        report,
    )?;
    let problems = &mut report.problems;
    for (id, indices) in &said {
        let actual = scan.found.remove(id).unwrap_or_default();
        // A group that does not decode is reported already.
        if &actual != indices && !scan.undecodable.contains(id) {
            problems.push(format!(
                "job {id}: its dictionary says it has the subjob records {:?} but table \
                 subjobs holds {:?}",
                indices.ranges(),
                actual.ranges()
            ));
        }
    }
    check_unit_index(
        tables,
        txn,
        jobs,
        &scan.undecodable,
        expected_units,
        problems,
    )?;
    check_counters(jobs, scan, problems);
    Ok(())
}

/// What reading the subjob records found.
#[derive(Default)]
struct SubjobScan {
    /// Per master, its subjobs' statuses as their records say.
    counted: BTreeMap<JobId, StatusCounts>,
    /// Jobs whose subjobs cannot all be decoded (dictionary missing or unreadable, a
    /// group that does not decode): their counters cannot be checked.
    undecodable: BTreeSet<JobId>,
    /// Per job, the subjob records table subjobs holds.
    found: BTreeMap<JobId, Indices>,
}

/// Each dictionary belongs to a job and decodes. Returns, per job, its dictionary
/// (`None` for an unreadable one, reported here once) and the subjob records it says
/// there are.
#[allow(clippy::type_complexity)]
fn check_dictionaries(
    tables: &Tables,
    txn: &RoTxn,
    jobs: &BTreeMap<JobId, Option<StatusCounts>>,
    problems: &mut Vec<String>,
) -> Result<
    (
        BTreeMap<JobId, Option<Dictionary>>,
        BTreeMap<JobId, Indices>,
    ),
    Failure,
> {
    let mut dicts: BTreeMap<JobId, Option<Dictionary>> = BTreeMap::new();
    let mut said: BTreeMap<JobId, Indices> = BTreeMap::new();
    for entry in tables.dicts.iter(txn)? {
        let Some((key, bytes)) = damage(problems, entry)? else {
            continue;
        };
        let Some(id) = keys::parse_job(key) else {
            problems.push(format!("dicts: key {} is not a job id", hex(key)));
            continue;
        };
        if !jobs.contains_key(&id) {
            problems.push(format!("dictionary {id}: there is no job {id}"));
        }
        let dict = match decode_dict_record(bytes) {
            Ok((dict, indices)) => {
                match indices {
                    Some(indices) => {
                        said.insert(id, indices);
                    }
                    None => problems.push(format!(
                        "job {id}: its dictionary does not say which subjob records it has"
                    )),
                }
                Some(dict)
            }
            Err(detail) => {
                problems.push(format!("job {id}: dictionary unreadable: {detail}"));
                None
            }
        };
        dicts.insert(id, dict);
    }

    Ok((dicts, said))
}

/// Each subjob has a master and decodes against its dictionary and its master's split
/// item; each active one is expected in the index of active units.
fn check_subjobs(
    tables: &Tables,
    txn: &RoTxn,
    jobs: &BTreeMap<JobId, Option<StatusCounts>>,
    backends: &BTreeMap<JobId, String>,
    dicts: &BTreeMap<JobId, Option<Dictionary>>,
    expected_units: &mut BTreeMap<Vec<u8>, UnitEntry>,
    report: &mut CheckReport,
) -> Result<SubjobScan, Failure> {
    let problems = &mut report.problems;
    let mut scan = SubjobScan::default();
    let SubjobScan {
        counted,
        undecodable,
        found,
    } = &mut scan;
    // Jobs with subjob records but no dictionary: the first record, and how many.
    let mut without_dictionary: BTreeMap<JobId, (SubjobIndex, u64)> = BTreeMap::new();
    // The splitter of the master whose groups are being read (groups come job by job);
    // `None` inside for a master without one, or unreadable.
    let mut splitter: Option<(JobId, Option<Splitter>)> = None;
    for entry in tables.subjobs.iter(txn)? {
        let Some((key, bytes)) = damage(problems, entry)? else {
            continue;
        };
        trim::scanned(bytes);
        let Some((job, g)) = keys::parse_group(key) else {
            problems.push(format!(
                "subjobs: key {} is not a job id and group number",
                hex(key)
            ));
            continue;
        };
        let (first, last) = (first_index(g), last_index(g));
        let has_master = jobs.contains_key(&job);
        if !has_master {
            problems.push(format!(
                "subjobs {job}.{first}–{job}.{last}: their master job {job} does not exist"
            ));
            // That is the problem with them; what they hold is not checked further.
            report.subjobs += group::parse(bytes).map_or(0, |s| s.iter().flatten().count()) as u64;
            continue;
        }
        let slots = match group::parse(bytes) {
            Ok(slots) => slots,
            Err(detail) => {
                problems.push(format!(
                    "subjob {job}.{first}: record unreadable: the group of subjobs \
                     {job}.{first}–{job}.{last} does not decode: {detail}"
                ));
                undecodable.insert(job);
                continue;
            }
        };
        let records = slots
            .iter()
            .enumerate()
            .filter_map(|(k, r)| r.map(|r| (first + k as u32, r)));
        for (index, _) in records.clone() {
            found.entry(job).or_default().insert(index);
        }
        let present = records.clone().count() as u64;
        report.subjobs += present;
        let dict = match dicts.get(&job) {
            Some(Some(dict)) => dict,
            // Reported once, above.
            Some(None) => {
                undecodable.insert(job);
                continue;
            }
            None => {
                undecodable.insert(job);
                if present > 0 {
                    let first_present = records.clone().next().map_or(first, |(i, _)| i);
                    without_dictionary
                        .entry(job)
                        .or_insert((first_present, 0))
                        .1 += present;
                }
                continue;
            }
        };
        let splitter = match &splitter {
            Some((j, s)) if *j == job => s.as_ref(),
            _ => {
                // Reported by `check_jobs` if it does not decode (or is damaged).
                let decoded = tables
                    .splitters
                    .get(txn, &keys::job(job))
                    .ok()
                    .flatten()
                    .and_then(|bytes| decode_splitter(bytes).ok().flatten());
                splitter.insert((job, decoded)).1.as_ref()
            }
        };
        for (index, record) in records {
            let item = split_item(splitter, index);
            match decode_subjob(index, record, dict, item.as_deref()) {
                Err(detail) => {
                    problems.push(format!("subjob {job}.{index}: record unreadable: {detail}"));
                }
                Ok(subjob) => {
                    if subjob.status().is_active()
                        && let Some(backend) = backends.get(&job)
                    {
                        expected_units.insert(
                            keys::unit(backend, JobRef::subjob(job, index)),
                            UnitEntry::of(&subjob.run),
                        );
                    }
                    counted.entry(job).or_default().add(subjob.status(), 1);
                }
            }
        }
    }
    for (job, (first, n)) in without_dictionary {
        problems.push(format!(
            "subjob {job}.{first}: record unreadable: job {job} has {n} subjob record{} but \
             no dictionary in table dicts, so none can be decoded",
            if n == 1 { "" } else { "s" }
        ));
    }
    Ok(scan)
}

/// The index of active units: an entry for each active unit, holding what it is.
fn check_unit_index(
    tables: &Tables,
    txn: &RoTxn,
    jobs: &BTreeMap<JobId, Option<StatusCounts>>,
    undecodable: &BTreeSet<JobId>,
    mut expected_units: BTreeMap<Vec<u8>, UnitEntry>,
    problems: &mut Vec<String>,
) -> Result<(), Failure> {
    for entry in tables.units.iter(txn)? {
        let Some((key, value)) = damage(problems, entry)? else {
            continue;
        };
        let Some((backend, unit)) = keys::parse_unit(key) else {
            problems.push(format!(
                "units: key {} is not a backend name and a unit",
                hex(key)
            ));
            continue;
        };
        let found = decode_unit_entry(value);
        match (expected_units.remove(key), found) {
            (_, Err(e)) => problems.push(format!("unit entry {backend} {unit}: unreadable: {e}")),
            (Some(expected), Ok(found)) if expected != found => problems.push(format!(
                "unit entry {backend} {unit}: records {found:?} but the unit is {expected:?}"
            )),
            (Some(_), Ok(_)) => {}
            (None, Ok(_)) => {
                // Units of unreadable jobs or records cannot be checked.
                if jobs.get(&unit.job).is_some_and(Option::is_some)
                    && !undecodable.contains(&unit.job)
                {
                    problems.push(format!(
                        "unit entry {backend} {unit}: {unit} is not an active unit on backend \
                         {backend}"
                    ));
                }
            }
        }
    }
    for key in expected_units.keys() {
        if let Some((backend, unit)) = keys::parse_unit(key) {
            problems.push(format!(
                "{unit} is active on backend {backend} but is missing from the index of \
                 active units"
            ));
        }
    }
    Ok(())
}

/// Each master's counters count its subjobs (where they could all be read).
fn check_counters(
    jobs: &BTreeMap<JobId, Option<StatusCounts>>,
    mut scan: SubjobScan,
    problems: &mut Vec<String>,
) {
    for (id, counters) in jobs {
        let Some(counters) = counters else { continue };
        if scan.undecodable.contains(id) {
            continue;
        }
        let actual = scan.counted.remove(id).unwrap_or_default();
        if &actual != counters {
            problems.push(format!(
                "job {id}: subjob counters say {} but its subjobs are {}",
                counts_text(counters),
                counts_text(&actual)
            ));
        }
    }
}

/// A value read, or `None` after reporting the damage found instead.
fn damage<T>(problems: &mut Vec<String>, read: Result<T, Failure>) -> Result<Option<T>, Failure> {
    match read {
        Ok(value) => Ok(Some(value)),
        Err(e @ Failure::Damaged { .. }) => {
            problems.push(format!("damaged: {e}"));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Turns a refusal (damaged meta data) into a problem to report; LMDB failures stay errors.
fn refusal_as_problem<T>(result: Result<T, Failure>) -> Result<Result<T, String>, Failure> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(Failure::Refused(e)) => Ok(Err(e.to_string())),
        Err(e) => Err(e),
    }
}
