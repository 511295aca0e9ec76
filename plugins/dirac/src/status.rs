//! From DIRAC's job status (Status, MinorStatus, ApplicationStatus, Site, times) to ganga's
//! view of a job. A pure function of one search row.

use ganga_core::{RemoteStatus, Timestamp};
use serde::Deserialize;

/// One row of `/api/jobs/search` with the parameters [`SEARCH_PARAMETERS`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct JobRow {
    #[serde(rename = "JobID")]
    pub(crate) job_id: i64,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) minor_status: Option<String>,
    #[serde(default)]
    pub(crate) application_status: Option<String>,
    #[serde(default)]
    pub(crate) site: Option<String>,
    #[serde(default)]
    pub(crate) start_exec_time: Option<String>,
    #[serde(default)]
    pub(crate) end_exec_time: Option<String>,
}

/// What a status search asks for.
pub(crate) const SEARCH_PARAMETERS: &[&str] = &[
    "JobID",
    "Status",
    "MinorStatus",
    "ApplicationStatus",
    "Site",
    "StartExecTime",
    "EndExecTime",
];

/// What ganga is told about one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) status: RemoteStatus,
    /// DIRAC's words: `Failed (Application Finished With Errors)`, with the application
    /// status when it says something: `Running (Application; application: step 2 of 3)`.
    pub(crate) native: String,
    pub(crate) reason: Option<String>,
    pub(crate) site: Option<String>,
    pub(crate) started: Option<Timestamp>,
    pub(crate) ended: Option<Timestamp>,
}

/// Text DIRAC puts where it knows nothing.
fn meaningful(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| {
        !t.is_empty() && !matches!(*t, "Unknown" | "unknown" | "None" | "ANY" | "Multiple")
    })
}

pub(crate) fn seen(row: &JobRow) -> Seen {
    let status = row.status.as_deref().map(str::trim).unwrap_or("");
    let minor = meaningful(row.minor_status.as_deref());
    let app = meaningful(row.application_status.as_deref());
    let mut native = if status.is_empty() {
        "(no status)".to_owned()
    } else {
        status.to_owned()
    };
    match (minor, app) {
        (Some(m), Some(a)) => native.push_str(&format!(" ({m}; application: {a})")),
        (Some(m), None) => native.push_str(&format!(" ({m})")),
        (None, Some(a)) => native.push_str(&format!(" (application: {a})")),
        (None, None) => {}
    }
    let remote = match status {
        "Submitting" | "Received" | "Checking" | "Scouting" | "Staging" | "Waiting" | "Matched"
        | "Rescheduled" => RemoteStatus::Queued,
        // Completed: the payload ended, the JobWrapper is still uploading its outputs.
        "Running" | "Stalled" | "Completing" | "Completed" => RemoteStatus::Running,
        "Done" => RemoteStatus::Succeeded,
        "Failed" => RemoteStatus::Failed,
        "Killed" => RemoteStatus::Killed,
        // Deleted by someone in DIRAC: it will not run, and it did not end by itself.
        "Deleted" => RemoteStatus::Failed,
        _ => RemoteStatus::Unknown,
    };
    let reason = match remote {
        RemoteStatus::Failed if status == "Deleted" => Some(format!("deleted in DIRAC: {native}")),
        RemoteStatus::Failed => Some(match (minor, app) {
            (Some(m), Some(a)) => format!("{m} ({a})"),
            (Some(m), None) => m.to_owned(),
            (None, Some(a)) => a.to_owned(),
            (None, None) => "failed in DIRAC (no minor status)".to_owned(),
        }),
        RemoteStatus::Killed => minor.map(str::to_owned),
        _ => None,
    };
    Seen {
        status: remote,
        native,
        reason,
        site: meaningful(row.site.as_deref()).map(str::to_owned),
        started: row.start_exec_time.as_deref().and_then(parse_time),
        ended: match remote {
            RemoteStatus::Succeeded | RemoteStatus::Failed | RemoteStatus::Killed => {
                row.end_exec_time.as_deref().and_then(parse_time)
            }
            _ => None,
        },
    }
}

/// DiracX's times: ISO 8601, UTC, with or without an offset or fraction.
pub(crate) fn parse_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Some(Timestamp::from_millis(t.as_millisecond()));
    }
    let civil: jiff::civil::DateTime = text.parse().ok()?;
    let t = civil.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(Timestamp::from_millis(t.as_millisecond()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn row(status: &str, minor: &str, app: &str) -> JobRow {
        JobRow {
            job_id: 1,
            status: Some(status.into()),
            minor_status: Some(minor.into()),
            application_status: Some(app.into()),
            site: Some("LCG.CERN.cern".into()),
            start_exec_time: Some("2026-11-22T18:56:41".into()),
            end_exec_time: Some("2026-11-22T19:00:00.250000Z".into()),
        }
    }

    #[test]
    fn every_dirac_status_has_a_place() {
        for (status, want) in [
            ("Submitting", RemoteStatus::Queued),
            ("Received", RemoteStatus::Queued),
            ("Checking", RemoteStatus::Queued),
            ("Waiting", RemoteStatus::Queued),
            ("Matched", RemoteStatus::Queued),
            ("Rescheduled", RemoteStatus::Queued),
            ("Running", RemoteStatus::Running),
            ("Stalled", RemoteStatus::Running),
            ("Completing", RemoteStatus::Running),
            ("Completed", RemoteStatus::Running),
            ("Done", RemoteStatus::Succeeded),
            ("Failed", RemoteStatus::Failed),
            ("Killed", RemoteStatus::Killed),
            ("Deleted", RemoteStatus::Failed),
            ("Martian", RemoteStatus::Unknown),
        ] {
            assert_eq!(seen(&row(status, "x", "Unknown")).status, want, "{status}");
        }
    }

    #[test]
    fn a_failure_keeps_dirac_words_as_its_reason() {
        let s = seen(&row(
            "Failed",
            "Application Finished With Errors",
            "Unknown",
        ));
        assert_eq!(s.native, "Failed (Application Finished With Errors)");
        assert_eq!(
            s.reason.as_deref(),
            Some("Application Finished With Errors")
        );
        assert_eq!(s.site.as_deref(), Some("LCG.CERN.cern"));
        assert_eq!(s.started, Some(Timestamp::from_secs(1_795_373_801)));
        assert_eq!(s.ended, Some(Timestamp::from_millis(1_795_374_000_250)));

        let s = seen(&row("Running", "Application", "step 2 of 3"));
        assert_eq!(s.native, "Running (Application; application: step 2 of 3)");
        assert_eq!(s.reason, None);
        assert_eq!(s.ended, None, "a running job has no end");
    }

    #[test]
    fn missing_fields_do_not_matter() {
        let r = JobRow {
            job_id: 5,
            status: None,
            minor_status: None,
            application_status: None,
            site: Some("ANY".into()),
            start_exec_time: Some("garbage".into()),
            end_exec_time: None,
        };
        let s = seen(&r);
        assert_eq!(s.status, RemoteStatus::Unknown);
        assert_eq!(s.site, None);
        assert_eq!(s.started, None);
    }

    proptest! {
        #[test]
        fn any_row_maps_without_panic(status in ".{0,20}", minor in ".{0,40}", app in ".{0,40}", t in ".{0,30}") {
            let r = JobRow {
                job_id: 1,
                status: Some(status),
                minor_status: Some(minor),
                application_status: Some(app),
                site: None,
                start_exec_time: Some(t.clone()),
                end_exec_time: Some(t),
            };
            let s = seen(&r);
            prop_assert!(!s.native.is_empty());
            if s.status == RemoteStatus::Failed {
                prop_assert!(s.reason.is_some());
            }
        }
    }
}
