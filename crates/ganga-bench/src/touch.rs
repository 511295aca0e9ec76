//! `touch-all`: reads every job's summary and every subjob's status through the cache,
//! page by page, as a program looking at all its jobs would: with `Cache::statuses` (only
//! the statuses, what a listing or the monitor needs) or `Cache::subjobs` (each subjob in
//! full). A job's status and number of subjobs come from its summary, as `ganga jobs`
//! shows them: a master's spec is never read.

use std::collections::BTreeMap;
use std::time::Instant;

use ganga_core::{JobId, Status, SummaryEntry};
use ganga_monitor::{Cache, CacheStats, SUBJOB_PAGE};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub(crate) struct Touched {
    pub(crate) jobs: u64,
    pub(crate) subjobs: u64,
    /// Jobs listed whose summary could not be read, or that vanished meanwhile.
    pub(crate) unreadable: u64,
    pub(crate) job_statuses: BTreeMap<String, u64>,
    pub(crate) subjob_statuses: BTreeMap<String, u64>,
    /// Listing, then every job and subjob page through the cache.
    pub(crate) work_secs: f64,
    pub(crate) cache: CacheFigures,
}

/// The cache's own view of itself at the end (its estimates, not the OS's).
#[derive(Debug, Serialize)]
pub(crate) struct CacheFigures {
    pub(crate) budget_bytes: u64,
    pub(crate) used_bytes: u64,
    pub(crate) unsaved_bytes: u64,
    pub(crate) entries: usize,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

impl From<CacheStats> for CacheFigures {
    fn from(s: CacheStats) -> Self {
        CacheFigures {
            budget_bytes: s.budget_bytes,
            used_bytes: s.used_bytes,
            unsaved_bytes: s.unsaved_bytes,
            entries: s.entries,
            hits: s.hits,
            misses: s.misses,
        }
    }
}

/// A listed job: its id, status and number of subjobs.
type Listed = (JobId, Status, u32);

/// Every readable job, from the summaries, and how many were unreadable.
fn listing(cache: &Cache) -> anyhow::Result<(Vec<Listed>, u64)> {
    let mut listed = Vec::new();
    let mut unreadable = 0;
    let mut from = 0;
    loop {
        let page = cache.summaries(from, 10_000)?;
        let Some(last) = page.last() else { break };
        from = last.id() + 1;
        for entry in page {
            match entry {
                SummaryEntry::Readable(s) => {
                    let n = u32::try_from(s.subjobs.total()).unwrap_or(u32::MAX);
                    listed.push((s.id, s.status, n));
                }
                SummaryEntry::Unreadable { .. } => unreadable += 1,
            }
        }
    }
    Ok((listed, unreadable))
}

/// How `touch-all` reads the subjobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Read {
    /// `Cache::statuses`: only the status of each subjob.
    Statuses,
    /// `Cache::subjobs`: each subjob in full.
    Subjobs,
}

pub(crate) fn touch_all(cache: &Cache, read: Read) -> anyhow::Result<Touched> {
    let mut job_counts = [0u64; Status::ALL.len()];
    let mut subjob_counts = [0u64; Status::ALL.len()];
    let mut subjobs = 0u64;
    let work = Instant::now();
    let (listed, unreadable) = listing(cache)?;
    for &(id, status, n) in &listed {
        job_counts[status.index()] += 1;
        let mut start = 0;
        while start < n {
            let end = start.saturating_add(SUBJOB_PAGE).min(n);
            match read {
                Read::Statuses => {
                    for (_, status) in cache.statuses(id, start..end)? {
                        subjob_counts[status.index()] += 1;
                        subjobs += 1;
                    }
                }
                Read::Subjobs => {
                    for sj in cache.subjobs(id, start..end)? {
                        subjob_counts[sj.status().index()] += 1;
                        subjobs += 1;
                    }
                }
            }
            start = end;
        }
    }
    let work_secs = work.elapsed().as_secs_f64();
    Ok(Touched {
        jobs: listed.len() as u64 + unreadable,
        subjobs,
        unreadable,
        job_statuses: named(&job_counts),
        subjob_statuses: named(&subjob_counts),
        work_secs,
        cache: cache.stats().into(),
    })
}

pub(crate) fn named(counts: &[u64; Status::ALL.len()]) -> BTreeMap<String, u64> {
    Status::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| (s.to_string(), *n))
        .collect()
}
