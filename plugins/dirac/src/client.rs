//! The DiracX REST calls the backend makes, typed. Every call carries a token from
//! [`Auth`]; a 401 renews it once and tries again, and a second 401 is a clear "log in
//! again" error that changed nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::Auth;
use crate::error::DiracError;
use crate::http::{Body, Http, Request, Response, RetryPolicy};
use crate::sandbox::{self, Packed};
use crate::settings::{Identity, Settings};
use crate::status::{JobRow, SEARCH_PARAMETERS};

/// DiracX takes at most this many JDLs in one submission.
pub(crate) const MAX_JDLS_PER_REQUEST: usize = 20;
/// And returns at most this many rows in one page of a search.
pub(crate) const MAX_PER_PAGE: usize = 10_000;

/// A job DiracX accepted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct InsertedJob {
    #[serde(rename = "JobID")]
    pub(crate) job_id: i64,
    #[serde(rename = "Status", default)]
    pub(crate) status: String,
}

/// The answer to a bulk status change or reschedule: per job, the state after it, or why
/// it failed. An illegal transition is not an error to DiracX: the job keeps its status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct BulkResult {
    #[serde(default)]
    pub(crate) success: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub(crate) failed: BTreeMap<String, serde_json::Value>,
}

impl BulkResult {
    /// The job's status after the call, if it succeeded.
    pub(crate) fn status_of(&self, id: i64) -> Option<&str> {
        self.success
            .get(&id.to_string())
            .and_then(|v| v.get("Status"))
            .and_then(serde_json::Value::as_str)
    }

    /// Why the call failed for this job, if it did.
    pub(crate) fn failure_of(&self, id: i64) -> Option<String> {
        self.failed
            .get(&id.to_string())
            .map(|v| match v.get("detail") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => v.to_string(),
            })
    }
}

#[derive(Debug, Deserialize)]
struct SandboxUpload {
    pfn: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct DownloadUrl {
    url: String,
}

/// A row of a search by job name (for `find`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct NamedJob {
    #[serde(rename = "JobID")]
    pub(crate) job_id: i64,
    #[serde(rename = "JobName", default)]
    pub(crate) name: String,
}

/// A connection to one DiracX server as one identity.
#[derive(Debug)]
pub(crate) struct DiracX {
    http: Http,
    auth: Auth,
    identity: Identity,
    request_timeout: Duration,
    transfer_timeout: Duration,
    page_size: usize,
}

#[derive(Serialize)]
struct SearchBody<'a> {
    parameters: &'a [&'a str],
    search: serde_json::Value,
    sort: serde_json::Value,
}

impl DiracX {
    pub(crate) fn new(settings: &Settings) -> Result<DiracX, DiracError> {
        let identity = settings.identity()?.clone();
        let http = Http::new(RetryPolicy {
            retries: settings.retries,
            ..RetryPolicy::default()
        })?;
        Ok(DiracX {
            auth: Auth::new(
                settings.token.clone(),
                identity.clone(),
                settings.client_id.clone(),
            ),
            http,
            identity,
            request_timeout: settings.request_timeout,
            transfer_timeout: settings.transfer_timeout,
            page_size: settings.search_page_size.clamp(1, MAX_PER_PAGE),
        })
    }

    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// HTTP requests sent so far (every attempt, the sandbox store's too).
    pub(crate) fn requests_sent(&self) -> u64 {
        self.http.requests_sent()
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        what: impl Into<String>,
    ) -> Result<Request, DiracError> {
        let url =
            self.identity.url.join(path).map_err(|e| {
                DiracError::Settings(format!("DiracX URL {}: {e}", self.identity.url))
            })?;
        let mut req = Request::new(method, url, what);
        req.timeout = self.request_timeout;
        Ok(req)
    }

    /// Sends with the current token; on 401 renews once and sends again.
    async fn call(&self, mut req: Request) -> Result<Response, DiracError> {
        let (token, generation) = self.auth.bearer(&self.http).await?;
        req.bearer = Some(token);
        let resp = self.http.send(&req).await?;
        if resp.status.as_u16() != 401 {
            return Ok(resp);
        }
        tracing::debug!(
            "DiracX refused the token for {} ({}); renewing it",
            req.what,
            resp.detail()
        );
        self.auth
            .refused(&self.http, generation, &resp.detail())
            .await?;
        let (token, _) = self.auth.bearer(&self.http).await?;
        req.bearer = Some(token);
        let resp = self.http.send(&req).await?;
        if resp.status.as_u16() == 401 {
            return Err(self.auth.refused_again(&resp.detail()));
        }
        Ok(resp)
    }

    /// Submits up to 20 plain (non-parametric) JDLs; the ids come in the same order.
    pub(crate) async fn submit_jdls(
        &self,
        jdls: &[String],
    ) -> Result<Vec<InsertedJob>, DiracError> {
        debug_assert!(jdls.len() <= MAX_JDLS_PER_REQUEST);
        let what = format!("submitting {} jobs", jdls.len());
        // Not idempotent: a submission whose answer was lost is found again by `find`.
        let req = self
            .request(Method::POST, "api/jobs/jdl", what.clone())?
            .json(&jdls)?
            .not_idempotent();
        let resp = self.call(req).await?;
        if !resp.status.is_success() {
            return Err(resp.refused(&what));
        }
        let jobs: Vec<InsertedJob> = resp.json(&what)?;
        if jobs.len() != jdls.len() {
            return Err(DiracError::protocol(
                &what,
                format!("{} job ids for {} JDLs", jobs.len(), jdls.len()),
            ));
        }
        Ok(jobs)
    }

    /// One search, paged by 10,000 rows.
    async fn search<T: serde::de::DeserializeOwned>(
        &self,
        parameters: &[&str],
        filter: serde_json::Value,
        what: &str,
    ) -> Result<Vec<T>, DiracError> {
        let body = SearchBody {
            parameters,
            search: filter,
            sort: json!([{"parameter": "JobID", "direction": "asc"}]),
        };
        let mut rows: Vec<T> = Vec::new();
        let mut page = 1usize;
        loop {
            let req = self
                .request(Method::POST, "api/jobs/search", what.to_owned())?
                .query("page", page)
                .query("per_page", self.page_size)
                .json(&body)?;
            let resp = self.call(req).await?;
            match resp.status.as_u16() {
                200 => {
                    rows.extend(resp.json::<Vec<T>>(what)?);
                    return Ok(rows);
                }
                206 => {
                    let got: Vec<T> = resp.json(what)?;
                    let n = got.len();
                    rows.extend(got);
                    let total = resp.content_range.as_deref().and_then(range_total);
                    match total {
                        Some(total) if rows.len() < total && n > 0 => page += 1,
                        _ => return Ok(rows),
                    }
                }
                // Past the end (the set shrank between pages).
                416 => return Ok(rows),
                _ => return Err(resp.refused(what)),
            }
        }
    }

    /// The status rows of these jobs (jobs DiracX does not know are absent).
    pub(crate) async fn job_rows(&self, ids: &[i64]) -> Result<Vec<JobRow>, DiracError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let filter = json!([{"parameter": "JobID", "operator": "in", "values": ids}]);
        self.search(
            SEARCH_PARAMETERS,
            filter,
            &format!("the status of {} jobs", ids.len()),
        )
        .await
    }

    /// The jobs with these names.
    pub(crate) async fn jobs_named(&self, names: &[String]) -> Result<Vec<NamedJob>, DiracError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let filter = json!([{"parameter": "JobName", "operator": "in", "values": names}]);
        self.search(
            &["JobID", "JobName"],
            filter,
            &format!("the search for {} job names", names.len()),
        )
        .await
    }

    /// Sets the status of jobs (`Killed`, `Deleted`), reading back what each became.
    pub(crate) async fn set_status(
        &self,
        ids: &[i64],
        status: &str,
        minor: &str,
    ) -> Result<BulkResult, DiracError> {
        match self.set_status_once(ids, status, minor).await {
            // DiracX refuses the whole request when one job is not the caller's (or no
            // longer exists): ask job by job, so that one stale id does not block the rest.
            Err(DiracError::Refused { status: 403, .. }) if ids.len() > 1 => {
                let mut merged = BulkResult::default();
                for id in ids {
                    match self
                        .set_status_once(std::slice::from_ref(id), status, minor)
                        .await
                    {
                        Ok(one) => {
                            merged.success.extend(one.success);
                            merged.failed.extend(one.failed);
                        }
                        Err(DiracError::Refused {
                            status: 403,
                            detail,
                            ..
                        }) => {
                            merged.failed.insert(
                                id.to_string(),
                                json!({ "detail": format!("{detail}: not a job of yours, or no longer known to DiracX") }),
                            );
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(merged)
            }
            other => other,
        }
    }

    async fn set_status_once(
        &self,
        ids: &[i64],
        status: &str,
        minor: &str,
    ) -> Result<BulkResult, DiracError> {
        let when = now_for_dirac();
        let body: BTreeMap<String, serde_json::Value> = ids
            .iter()
            .map(|id| {
                (
                    id.to_string(),
                    json!({ when.clone(): {"Status": status, "MinorStatus": minor, "Source": "ganga"} }),
                )
            })
            .collect();
        let what = format!("setting {} jobs {status}", ids.len());
        let req = self
            .request(Method::PATCH, "api/jobs/status", what.clone())?
            .json(&body)?;
        let resp = self.call(req).await?;
        bulk_result(&resp, &what, 404)
    }

    /// Asks DIRAC to run jobs again under the same id.
    pub(crate) async fn reschedule(&self, ids: &[i64]) -> Result<BulkResult, DiracError> {
        let what = format!("rescheduling {} jobs", ids.len());
        let req = self
            .request(Method::POST, "api/jobs/reschedule", what.clone())?
            .json(&json!({ "job_ids": ids }))?
            .not_idempotent();
        let resp = self.call(req).await?;
        bulk_result(&resp, &what, 400)
    }

    /// Uploads a packed sandbox unless DiracX has it already; returns its PFN.
    pub(crate) async fn upload_sandbox(&self, packed: &Packed) -> Result<String, DiracError> {
        let what = "the input sandbox upload";
        let req = self
            .request(Method::POST, "api/jobs/sandbox", what)?
            .json(&json!({
                "checksum_algorithm": "sha256",
                "checksum": packed.checksum,
                "size": packed.bytes.len(),
                "format": sandbox::FORMAT,
            }))?;
        let resp = self.call(req).await?;
        if !resp.status.is_success() {
            return Err(resp.refused(what));
        }
        let answer: SandboxUpload = resp.json(what)?;
        let Some(url) = answer.url else {
            tracing::debug!("DiracX has the sandbox {} already", answer.pfn);
            return Ok(answer.pfn);
        };
        let url =
            Url::parse(&url).map_err(|e| DiracError::protocol(what, format!("upload URL: {e}")))?;
        // A presigned POST to the sandbox store: no Authorization header, the file last.
        let mut s3 = Request::new(
            Method::POST,
            url,
            "the input sandbox upload to the sandbox store",
        );
        s3.timeout = self.transfer_timeout;
        s3.body = Body::Multipart {
            fields: answer.fields.into_iter().collect(),
            file: packed.bytes.clone(),
        };
        let resp = self.http.send(&s3).await?;
        if !resp.status.is_success() {
            return Err(resp.refused(&s3.what));
        }
        Ok(answer.pfn)
    }

    /// The output sandboxes assigned to a job (usually one, or none yet).
    pub(crate) async fn output_sandboxes(&self, id: i64) -> Result<Vec<String>, DiracError> {
        let what = format!("the output sandbox list of DIRAC job {id}");
        let req = self.request(
            Method::GET,
            &format!("api/jobs/{id}/sandbox/output"),
            what.clone(),
        )?;
        let resp = self.call(req).await?;
        if !resp.status.is_success() {
            return Err(resp.refused(&what));
        }
        let pfns: Vec<Option<String>> = resp.json(&what)?;
        Ok(pfns.into_iter().flatten().collect())
    }

    /// Downloads a sandbox to a file.
    pub(crate) async fn download_sandbox(&self, pfn: &str, to: &Path) -> Result<u64, DiracError> {
        let what = "the sandbox download";
        let req = self
            .request(Method::GET, "api/jobs/sandbox", what)?
            .query("pfn", pfn);
        let resp = self.call(req).await?;
        if !resp.status.is_success() {
            return Err(resp.refused(what));
        }
        let answer: DownloadUrl = resp.json(what)?;
        let url = Url::parse(&answer.url)
            .map_err(|e| DiracError::protocol(what, format!("download URL: {e}")))?;
        self.http
            .download(
                &url,
                to,
                self.transfer_timeout,
                sandbox::MAX_SANDBOX_BYTES,
                what,
            )
            .await
    }

    /// Detaches the sandboxes of jobs (before they run again under the same id).
    pub(crate) async fn unassign_sandboxes(&self, ids: &[i64]) -> Result<(), DiracError> {
        let what = format!("unassigning the sandboxes of {} jobs", ids.len());
        let req = self
            .request(Method::POST, "api/jobs/sandbox/unassign", what.clone())?
            .json(&json!({ "job_ids": ids }))?;
        let resp = self.call(req).await?;
        if !resp.status.is_success() {
            return Err(resp.refused(&what));
        }
        Ok(())
    }

    /// Who the server says we are.
    pub(crate) async fn userinfo(&self) -> Result<serde_json::Value, DiracError> {
        let what = "the user information";
        let req = self.request(Method::GET, "api/auth/userinfo", what)?;
        let resp = self.call(req).await?;
        if !resp.status.is_success() {
            return Err(resp.refused(what));
        }
        resp.json(what)
    }
}

fn bulk_result(
    resp: &Response,
    what: &str,
    all_failed_status: u16,
) -> Result<BulkResult, DiracError> {
    if resp.status.is_success() {
        return resp.json(what);
    }
    if resp.status.as_u16() == all_failed_status {
        // DiracX puts the same {success, failed} object in `detail` when nothing succeeded.
        #[derive(Deserialize)]
        struct Wrapped {
            detail: BulkResult,
        }
        if let Ok(w) = resp.json::<Wrapped>(what) {
            return Ok(w.detail);
        }
    }
    Err(resp.refused(what))
}

/// The total of `Content-Range: jobs 0-9999/25000` (or `jobs */25000`).
pub(crate) fn range_total(header: &str) -> Option<usize> {
    header.rsplit('/').next()?.trim().parse().ok()
}

/// Now, as DiracX wants status-update times: timezone-aware, microseconds.
pub(crate) fn now_for_dirac() -> String {
    let now = jiff::Timestamp::now();
    let micros = now.as_microsecond().rem_euclid(1_000_000);
    format!("{}.{micros:06}Z", now.strftime("%Y-%m-%dT%H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_totals() {
        assert_eq!(range_total("jobs 0-9999/25000"), Some(25000));
        assert_eq!(range_total("jobs */5"), Some(5));
        assert_eq!(range_total("garbage"), None);
    }

    #[test]
    fn bulk_results_read_both_shapes() {
        let r: BulkResult = serde_json::from_str(
            r#"{"success":{"1":{"Status":"Killed","MinorStatus":"x"}},"failed":{"9":{"detail":"Not found"}}}"#,
        )
        .expect("parses");
        assert_eq!(r.status_of(1), Some("Killed"));
        assert_eq!(r.status_of(9), None);
        assert_eq!(r.failure_of(9).as_deref(), Some("Not found"));
        assert_eq!(r.failure_of(1), None);
    }

    #[test]
    fn dirac_times_have_microseconds_and_a_zone() {
        let t = now_for_dirac();
        assert_eq!(t.len(), "2026-11-22T18:56:41.123456Z".len(), "{t}");
        assert!(t.ends_with('Z'));
    }
}
