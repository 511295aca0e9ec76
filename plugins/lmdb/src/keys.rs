//! The byte layout of the keys of every table. Integers are big-endian so that LMDB's
//! byte-wise key order is numeric order: jobs list by id, groups of subjobs by index.

use ganga_core::{JobId, JobRef, SubjobIndex};

/// `meta` key: the format version of the records, a `u32` big-endian.
pub(crate) const META_FORMAT_VERSION: &[u8] = b"format_version";
/// `meta` key: the next job id `reserve_ids` hands out, a `u64` big-endian.
pub(crate) const META_NEXT_JOB_ID: &[u8] = b"next_job_id";

/// Separates the backend name from the id in an `active` key. Backend names may not
/// contain it (checked on write), so a key can be split without ambiguity.
const ACTIVE_SEPARATOR: u8 = 0;

/// LMDB's default maximum key size (MDB_MAXKEYSIZE).
const MAX_KEY_BYTES: usize = 511;

/// `jobs` and `summaries` key.
pub(crate) fn job(id: JobId) -> [u8; 8] {
    id.to_be_bytes()
}

pub(crate) fn parse_job(key: &[u8]) -> Option<JobId> {
    Some(JobId::from_be_bytes(key.try_into().ok()?))
}

/// `subjobs` key: the master's id then the number of a group of subjobs
/// ([`crate::group`]).
pub(crate) fn group(job: JobId, group: u32) -> [u8; 12] {
    let mut key = [0; 12];
    key[..8].copy_from_slice(&job.to_be_bytes());
    key[8..].copy_from_slice(&group.to_be_bytes());
    key
}

/// The job id and group number of a `subjobs` key; `None` if it is not one (a group
/// number above [`crate::group::MAX_GROUP`] would hold indices past `u32::MAX`).
pub(crate) fn parse_group(key: &[u8]) -> Option<(JobId, u32)> {
    let key: &[u8; 12] = key.try_into().ok()?;
    let (job, group) = key.split_at(8);
    let group = u32::from_be_bytes(group.try_into().ok()?);
    (group <= crate::group::MAX_GROUP)
        .then_some((JobId::from_be_bytes(job.try_into().ok()?), group))
}

/// The `subjobs` key of the group that holds subjob `index` of `job`.
pub(crate) fn group_of_subjob(job: JobId, index: SubjobIndex) -> [u8; 12] {
    group(job, crate::group::group_of(index))
}

/// `active` key: backend name, a zero byte, the job id. Grouped by backend so that a
/// monitor can later scan one backend's jobs by prefix.
pub(crate) fn active(backend: &str, id: JobId) -> Vec<u8> {
    let mut key = Vec::with_capacity(backend.len() + 9);
    key.extend_from_slice(backend.as_bytes());
    key.push(ACTIVE_SEPARATOR);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The backend name and job id of an `active` key, split from the end (the id is the
/// last 8 bytes, the separator the one before).
pub(crate) fn parse_active(key: &[u8]) -> Option<(&str, JobId)> {
    let split = key.len().checked_sub(9)?;
    let (backend, rest) = key.split_at(split);
    let (separator, id) = rest.split_first()?;
    if *separator != ACTIVE_SEPARATOR {
        return None;
    }
    Some((
        std::str::from_utf8(backend).ok()?,
        JobId::from_be_bytes(id.try_into().ok()?),
    ))
}

/// `units` key: backend name, a zero byte, the job id, then for a subjob its index (a job
/// without subjobs has none): so a backend's units are one key range, a job's units
/// another, the job itself first and its subjobs in index order ([`ganga_core::UnitCursor`]
/// order).
pub(crate) fn unit(backend: &str, unit: JobRef) -> Vec<u8> {
    let mut key = active(backend, unit.job);
    if let Some(index) = unit.subjob {
        key.extend_from_slice(&index.to_be_bytes());
    }
    key
}

/// The backend name and unit of a `units` key (split at its first zero byte: backend
/// names hold none).
pub(crate) fn parse_unit(key: &[u8]) -> Option<(&str, JobRef)> {
    let at = key.iter().position(|&b| b == ACTIVE_SEPARATOR)?;
    let (backend, rest) = key.split_at(at);
    let rest = &rest[1..];
    let backend = std::str::from_utf8(backend).ok()?;
    match rest.len() {
        8 => Some((
            backend,
            JobRef::job(JobId::from_be_bytes(rest.try_into().ok()?)),
        )),
        12 => {
            let (job, index) = rest.split_at(8);
            Some((
                backend,
                JobRef::subjob(
                    JobId::from_be_bytes(job.try_into().ok()?),
                    SubjobIndex::from_be_bytes(index.try_into().ok()?),
                ),
            ))
        }
        _ => None,
    }
}

/// The first and last `units` key of job `id` on `backend` (the job itself, then its
/// subjobs).
pub(crate) fn units_of_job(backend: &str, id: JobId) -> (Vec<u8>, Vec<u8>) {
    (
        unit(backend, JobRef::job(id)),
        unit(backend, JobRef::subjob(id, SubjobIndex::MAX)),
    )
}

/// Why a backend name cannot be part of an `active` key, if it cannot.
pub(crate) fn backend_name_problem(backend: &str) -> Option<String> {
    if backend.as_bytes().contains(&ACTIVE_SEPARATOR) {
        Some(format!("backend name {backend:?} contains a NUL byte"))
    } else if backend.len() + 13 > MAX_KEY_BYTES {
        Some(format!(
            "backend name of {} bytes is too long (at most {})",
            backend.len(),
            MAX_KEY_BYTES - 13
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_numerically_and_parse_back() {
        assert!(job(2) < job(10));
        assert!(job(255) < job(256));
        assert!(group(1, u32::MAX) < group(2, 0));
        assert!(group(7, 9) < group(7, 10));
        assert!(group_of_subjob(7, 15) < group_of_subjob(7, 16));
        assert_eq!(parse_job(&job(123_456)), Some(123_456));
        assert_eq!(parse_job(b"short"), None);
        assert_eq!(parse_group(&group(5, 17)), Some((5, 17)));
        let last = crate::group::MAX_GROUP;
        assert_eq!(group_of_subjob(5, u32::MAX), group(5, last));
        assert_eq!(parse_group(&group(5, last)), Some((5, last)));
        assert_eq!(parse_group(&group(5, last + 1)), None);
        assert_eq!(parse_group(&job(5)), None);
        assert_eq!(parse_active(&active("local", 42)), Some(("local", 42)));
        assert_eq!(parse_active(&active("", 0)), Some(("", 0)));
        assert_eq!(parse_active(b"local"), None);
        let mut bad = active("slurm", 3);
        bad[5] = b'x';
        assert_eq!(parse_active(&bad), None);
        assert!(unit("local", JobRef::job(5)) < unit("local", JobRef::subjob(5, 0)));
        assert!(unit("local", JobRef::subjob(5, 9)) < unit("local", JobRef::subjob(5, 10)));
        assert!(unit("local", JobRef::subjob(5, u32::MAX)) < unit("local", JobRef::job(6)));
        assert!(unit("ab", JobRef::job(9)) < unit("abc", JobRef::job(1)));
        for u in [JobRef::job(7), JobRef::subjob(7, 3)] {
            assert_eq!(parse_unit(&unit("slurm", u)), Some(("slurm", u)));
        }
        assert_eq!(parse_unit(b"slurm"), None);
    }

    #[test]
    fn backend_names_that_cannot_be_keys_are_named() {
        assert_eq!(backend_name_problem("local"), None);
        assert!(backend_name_problem("lo\0cal").is_some());
        assert!(backend_name_problem(&"x".repeat(499)).is_some());
        assert_eq!(backend_name_problem(&"x".repeat(498)), None);
    }
}
