//! HTTP transport: one reqwest client (rustls with ring), per-request timeouts, and retries
//! with capped exponential back-off and jitter. Which failures are retried is decided by
//! [`retry_after`], a pure function: connection failures and 429 always (nothing was done),
//! 5xx and timeouts only for requests that are safe to repeat.
//!
//! Authentication is not handled here (see `client.rs`); this layer only sends.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};

use crate::error::DiracError;

/// The body of a request, kept so that a retry can send it again.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Empty,
    Json(Vec<u8>),
    Form(Vec<(String, String)>),
    /// S3 presigned POST: the fields, then the file last.
    Multipart {
        fields: Vec<(String, String)>,
        file: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Body,
    pub(crate) bearer: Option<String>,
    /// Safe to send twice (a search, a status change to the same status, a download).
    pub(crate) idempotent: bool,
    pub(crate) timeout: Duration,
    /// For messages: "the search of 10000 jobs", "submitting 20 jobs".
    pub(crate) what: String,
}

impl Request {
    pub(crate) fn new(method: Method, url: Url, what: impl Into<String>) -> Request {
        Request {
            method,
            url,
            query: Vec::new(),
            body: Body::Empty,
            bearer: None,
            idempotent: true,
            timeout: Duration::from_secs(60),
            what: what.into(),
        }
    }

    pub(crate) fn json(mut self, value: &impl serde::Serialize) -> Result<Request, DiracError> {
        self.body =
            Body::Json(serde_json::to_vec(value).map_err(|e| DiracError::protocol(&self.what, e))?);
        Ok(self)
    }

    pub(crate) fn query(mut self, key: &str, value: impl ToString) -> Request {
        self.query.push((key.to_owned(), value.to_string()));
        self
    }

    pub(crate) fn not_idempotent(mut self) -> Request {
        self.idempotent = false;
        self
    }
}

/// An answer, read whole.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) content_range: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, DiracError> {
        serde_json::from_slice(&self.body).map_err(|e| DiracError::protocol(what, e))
    }

    /// The server's `detail` (FastAPI's error field), or the start of the body.
    pub(crate) fn detail(&self) -> String {
        detail_of(&self.body)
    }

    pub(crate) fn refused(&self, what: &str) -> DiracError {
        DiracError::Refused {
            what: what.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail(),
        }
    }
}

pub(crate) fn detail_of(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let shown = match v.get("detail").or_else(|| v.get("error")) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => v.to_string(),
        };
        return shorten(&shown);
    }
    let text = String::from_utf8_lossy(body);
    // S3's errors: <Error><Code>NoSuchKey</Code><Message>...</Message>...</Error>
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find("</")? + start;
        Some(text[start..end].trim().to_owned())
    };
    if let (Some(code), Some(message)) = (tag("Code"), tag("Message")) {
        return shorten(&format!("{code}: {message}"));
    }
    shorten(text.trim())
}

fn shorten(text: &str) -> String {
    const MAX: usize = 400;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// How one attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// An HTTP answer, with the server's Retry-After if it gave one.
    Answered(u16, Option<Duration>),
    /// The connection could not be made: the request was not sent.
    NotConnected,
    /// Sent, but no (complete) answer came: it may or may not have been done.
    Lost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
    /// A Retry-After longer than this is not waited for: the call fails and the monitor
    /// asks again later.
    pub(crate) longest_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(8),
            longest_wait: Duration::from_secs(120),
        }
    }
}

/// Whether to try again after attempt number `attempt` (0 for the first) ended with
/// `outcome`, and after how long. `jitter` in [0, 1) spreads clients apart.
pub(crate) fn retry_after(
    policy: &RetryPolicy,
    outcome: Outcome,
    idempotent: bool,
    attempt: u32,
    jitter: f64,
) -> Option<Duration> {
    if attempt >= policy.retries {
        return None;
    }
    let backoff = || {
        let exp = policy
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(policy.cap);
        // "Equal jitter": half fixed, half random, so a retry never comes at once.
        exp / 2 + exp.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    };
    match outcome {
        // Too many requests: not done, whatever the method. Honour the server's wait.
        Outcome::Answered(429, wait) => match wait {
            Some(w) if w > policy.longest_wait => None,
            Some(w) => Some(w),
            None => Some(backoff()),
        },
        Outcome::Answered(503, Some(w)) if w <= policy.longest_wait => Some(w),
        Outcome::Answered(500..=599, _) if idempotent => Some(backoff()),
        Outcome::Answered(..) => None,
        Outcome::NotConnected => Some(backoff()),
        Outcome::Lost if idempotent => Some(backoff()),
        Outcome::Lost => None,
    }
}

/// Retry-After: delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let secs = at.as_second().saturating_sub(now.as_second());
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// The shared HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    pub(crate) policy: RetryPolicy,
    /// Requests sent (every attempt), for the benchmarks' request budgets.
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Http {
    pub(crate) fn new(policy: RetryPolicy) -> Result<Http, DiracError> {
        // reqwest is built without a crypto provider of its own: ring, which builds from
        // a small C part everywhere, rather than aws-lc, which needs a larger C toolchain
        // build on every machine. (rustls deprecates ring's provider for lacking
        // post-quantum key exchange; classical TLS 1.3 is what DiracX servers offer.)
        // Installing fails only if a provider is installed already, which is as good.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let _ = provider.install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            // Shorter than servers keep idle connections open (uvicorn: 5 s), so a
            // connection the server has just closed is not reused (a reset, for a
            // request that was never read).
            .pool_idle_timeout(Duration::from_secs(3))
            .user_agent(concat!("ganga-rs-dirac/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DiracError::Local(format!("cannot create the HTTP client: {e}")))?;
        Ok(Http {
            client,
            policy,
            sent: std::sync::Arc::default(),
        })
    }

    pub(crate) fn requests_sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count(&self) {
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn build(&self, req: &Request) -> reqwest::RequestBuilder {
        self.count();
        let mut b = self
            .client
            .request(req.method.clone(), req.url.clone())
            .timeout(req.timeout);
        if !req.query.is_empty() {
            b = b.query(&req.query);
        }
        if let Some(token) = &req.bearer {
            b = b.bearer_auth(token);
        }
        match &req.body {
            Body::Empty => b,
            Body::Json(bytes) => b
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Body::Form(pairs) => b.form(pairs),
            Body::Multipart { fields, file } => {
                let mut form = reqwest::multipart::Form::new();
                for (k, v) in fields {
                    form = form.text(k.clone(), v.clone());
                }
                form = form.part(
                    "file",
                    reqwest::multipart::Part::bytes(file.clone()).file_name("sandbox"),
                );
                b.multipart(form)
            }
        }
    }

    /// Sends with retries. Any HTTP answer that is not retried (or no longer) is returned,
    /// errors included: the caller decides what a 400 or 401 means.
    pub(crate) async fn send(&self, req: &Request) -> Result<Response, DiracError> {
        self.with_retries(&req.what, &req.url, req.idempotent, || self.send_once(req))
            .await
    }

    /// One sending of `req`. Every answer is offered for another attempt: whether a 429
    /// or a 503 is tried again, and a 200 is not, is [`retry_after`]'s to say.
    async fn send_once(&self, req: &Request) -> Attempt<Response> {
        let resp = match self.build(req).send().await {
            Ok(resp) => resp,
            Err(e) => return Attempt::transport(&e),
        };
        let status = resp.status();
        let wait = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        let content_range = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match resp.bytes().await {
            Ok(body) => Attempt::Again {
                outcome: Outcome::Answered(status.as_u16(), wait),
                cause: format!("DiracX answered {status}"),
                answer: Some(Response {
                    status,
                    content_range,
                    body: body.to_vec(),
                }),
            },
            // The answer broke off: nothing to hand the caller.
            Err(e) => Attempt::transport(&e),
        }
    }

    /// The one retry loop of the plugin's HTTP: runs `attempt` until it is done, fails
    /// for good, or [`retry_after`] says not to try again; then an attempt's `answer`
    /// is the result if it had one, else the service was unreachable.
    async fn with_retries<T, Once>(
        &self,
        what: &str,
        url: &Url,
        idempotent: bool,
        mut attempt: impl FnMut() -> Once,
    ) -> Result<T, DiracError>
    where
        Once: Future<Output = Attempt<T>>,
    {
        let mut tries = 0;
        loop {
            let (outcome, cause, answer) = match attempt().await {
                Attempt::Done(value) => return Ok(value),
                Attempt::Final(e) => return Err(e),
                Attempt::Again {
                    outcome,
                    cause,
                    answer,
                } => (outcome, cause, answer),
            };
            match retry_after(&self.policy, outcome, idempotent, tries, fastrand::f64()) {
                Some(wait) => {
                    tracing::debug!("{what}: {cause}; again in {wait:?}");
                    tokio::time::sleep(wait).await;
                    tries += 1;
                }
                None => {
                    return match answer {
                        Some(answer) => Ok(answer),
                        None => Err(DiracError::Unreachable {
                            url: origin(url),
                            what: what.to_owned(),
                            cause,
                        }),
                    };
                }
            }
        }
    }

    /// Streams a GET into `file` (an S3 presigned URL: no auth), with retries on the
    /// connection. Returns the number of bytes written.
    pub(crate) async fn download(
        &self,
        url: &Url,
        file: &std::path::Path,
        timeout: Duration,
        max_bytes: u64,
        what: &str,
    ) -> Result<u64, DiracError> {
        self.with_retries(what, url, true, || async {
            match self
                .download_into(url, file, timeout, max_bytes, what)
                .await
            {
                Ok(written) => Attempt::Done(written),
                Err(attempt) => attempt,
            }
        })
        .await
    }

    /// One download: the bytes written, or how the attempt ended.
    async fn download_into(
        &self,
        url: &Url,
        file: &std::path::Path,
        timeout: Duration,
        max_bytes: u64,
        what: &str,
    ) -> Result<u64, Attempt<u64>> {
        use tokio::io::AsyncWriteExt as _;
        let local = |e: std::io::Error| {
            Attempt::Final(DiracError::local(format!("{what}: {}", file.display()), e))
        };
        self.count();
        let mut resp = self
            .client
            .get(url.clone())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| Attempt::transport(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            return Err(if status.is_server_error() {
                Attempt::Again {
                    outcome: Outcome::Answered(status.as_u16(), None),
                    cause: detail_of(&body),
                    answer: None,
                }
            } else {
                Attempt::Final(DiracError::Refused {
                    what: what.to_owned(),
                    status: status.as_u16(),
                    detail: detail_of(&body),
                })
            });
        }
        let mut out = tokio::fs::File::create(file).await.map_err(local)?;
        let mut written: u64 = 0;
        while let Some(chunk) = resp.chunk().await.map_err(|e| Attempt::transport(&e))? {
            written += chunk.len() as u64;
            if written > max_bytes {
                return Err(Attempt::Final(DiracError::Local(format!(
                    "{what}: larger than {max_bytes} bytes; not downloaded"
                ))));
            }
            out.write_all(&chunk).await.map_err(local)?;
        }
        out.flush().await.map_err(local)?;
        Ok(written)
    }
}

/// How one attempt of a request ended.
enum Attempt<T> {
    Done(T),
    /// Maybe worth another attempt ([`retry_after`] decides). If it is not tried again,
    /// `answer` is the result when there is one (an HTTP answer, for the caller to
    /// read), else the call fails with `cause`.
    Again {
        outcome: Outcome,
        cause: String,
        answer: Option<T>,
    },
    Final(DiracError),
}

impl<T> Attempt<T> {
    /// The connection failed (nothing was sent) or the answer was lost: worth another
    /// attempt, as [`retry_after`] decides, with no answer to fall back on.
    fn transport(e: &reqwest::Error) -> Attempt<T> {
        let outcome = if e.is_connect() {
            Outcome::NotConnected
        } else {
            Outcome::Lost
        };
        Attempt::Again {
            outcome,
            cause: error_chain(e),
            answer: None,
        }
    }
}

/// `scheme://host:port` of a URL, for messages (never a path or query with secrets).
pub(crate) fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// reqwest's error with its causes ("error sending request: connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    // Presigned URLs carry credentials in their query: never show one.
    match text.find('?') {
        Some(i) if text[..i].contains("http") => {
            let end = text[i..]
                .find(|c: char| c.is_whitespace() || c == ')')
                .map_or(text.len(), |j| i + j);
            text.replace_range(i..end, "?...");
            text
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        retries: 3,
        base: Duration::from_millis(500),
        cap: Duration::from_secs(8),
        longest_wait: Duration::from_secs(120),
    };

    #[test]
    fn connection_failures_are_retried_even_for_submissions() {
        assert!(retry_after(&P, Outcome::NotConnected, false, 0, 0.5).is_some());
        assert!(retry_after(&P, Outcome::NotConnected, false, 3, 0.5).is_none());
    }

    #[test]
    fn server_errors_and_lost_answers_are_retried_only_when_safe() {
        for outcome in [
            Outcome::Answered(500, None),
            Outcome::Answered(502, None),
            Outcome::Lost,
        ] {
            assert!(
                retry_after(&P, outcome, true, 0, 0.0).is_some(),
                "{outcome:?}"
            );
            assert!(
                retry_after(&P, outcome, false, 0, 0.0).is_none(),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn client_errors_are_not_retried() {
        for code in [400, 401, 403, 404, 422] {
            assert_eq!(
                retry_after(&P, Outcome::Answered(code, None), true, 0, 0.0),
                None
            );
        }
    }

    #[test]
    fn too_many_requests_waits_as_told() {
        let wait = Some(Duration::from_secs(7));
        assert_eq!(
            retry_after(&P, Outcome::Answered(429, wait), false, 0, 0.9),
            wait
        );
        let long = Some(Duration::from_secs(3600));
        assert_eq!(
            retry_after(&P, Outcome::Answered(429, long), true, 0, 0.9),
            None
        );
        assert!(retry_after(&P, Outcome::Answered(429, None), false, 1, 0.9).is_some());
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let d = |attempt, jitter| {
            retry_after(&P, Outcome::NotConnected, true, attempt, jitter).expect("retried")
        };
        assert_eq!(d(0, 0.0), Duration::from_millis(250));
        assert_eq!(d(0, 1.0), Duration::from_millis(500));
        assert_eq!(d(1, 0.0), Duration::from_millis(500));
        let big = RetryPolicy { retries: 40, ..P };
        let capped = retry_after(&big, Outcome::NotConnected, true, 30, 0.999).expect("retried");
        assert!(capped <= P.cap, "{capped:?}");
        assert!(capped >= P.cap / 2, "{capped:?}");
    }

    #[test]
    fn retry_after_header_forms() {
        let now = jiff::Timestamp::from_second(1_000_000_000).expect("valid");
        assert_eq!(parse_retry_after("12", now), Some(Duration::from_secs(12)));
        // 2001-09-09T01:46:40Z is the epoch second 1e9.
        assert_eq!(
            parse_retry_after("Sun, 09 Sep 2001 01:47:10 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn details_are_read_from_fastapi_errors() {
        assert_eq!(detail_of(br#"{"detail":"Invalid JWT"}"#), "Invalid JWT");
        assert_eq!(
            detail_of(br#"{"error":"authorization_pending"}"#),
            "authorization_pending"
        );
        assert_eq!(detail_of(b"plain text"), "plain text");
        assert_eq!(
            detail_of(b"<?xml version=\"1.0\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>k</Key></Error>"),
            "NoSuchKey: The specified key does not exist."
        );
        assert!(detail_of(&vec![b'x'; 5000]).len() < 500);
    }

    #[test]
    fn presigned_queries_are_never_shown() {
        let e = std::io::Error::other(
            "error sending request for url (http://s3/b/k?X-Amz-Signature=secret)",
        );
        let shown = error_chain(&e);
        assert!(!shown.contains("secret"), "{shown}");
    }
}
