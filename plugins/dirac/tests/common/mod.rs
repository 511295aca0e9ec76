//! The real DiracX server the tests run against (started by `.ci/diracx.sh start`), and a
//! pilot that plays the grid: it moves jobs through DIRAC's states over the REST API and
//! uploads their output sandboxes, as a DIRAC pilot and JobWrapper would.
//!
//! A test that needs the server fails when it is not there, with what to do about it.

#![allow(dead_code, unreachable_pub)] // each test binary uses a part of this

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ganga_backend_dirac::DiracBackend;
use ganga_core::{Backend as _, BackendRef, JobRef, Options, SubmitSpec, Value};
use serde_json::json;

/// Where `.ci/diracx.sh` writes its env file unless told otherwise.
const DEFAULT_ENV_FILE: &str = "/tmp/ganga-diracx/diracx.env";

/// The test server, as its env file describes it.
#[derive(Debug, Clone)]
pub struct Server {
    pub url: String,
    pub vo: String,
    legacy_key: String,
    pub script: PathBuf,
    pub http: reqwest::Client,
}

fn install_crypto() {
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Server {
    /// The running server; panics with instructions if there is none.
    pub async fn get() -> Server {
        install_crypto();
        let path =
            std::env::var("GANGA_DIRACX_ENV").unwrap_or_else(|_| DEFAULT_ENV_FILE.to_owned());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the DiracX test server is not set up ({path}: {e}); start it with `.ci/diracx.sh start` \
                 (or point GANGA_DIRACX_ENV at its env file)"
            )
        });
        let vars: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| {
            vars.get(k)
                .map(|v| (*v).to_owned())
                .unwrap_or_else(|| panic!("{path} has no {k}: run `.ci/diracx.sh start` again"))
        };
        let server = Server {
            url: get("DIRACX_URL"),
            vo: get("DIRACX_VO"),
            legacy_key: get("DIRACX_LEGACY_KEY"),
            script: PathBuf::from(get("DIRACX_CI_SCRIPT")),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
        };
        server.wait_ready(&server.url, Duration::from_secs(5)).await.unwrap_or_else(|e| {
            panic!("the DiracX test server at {} is not answering ({e}); start it with `.ci/diracx.sh start`", server.url)
        });
        server
    }

    /// Waits until `/api/health/ready` of `url` answers 200.
    pub async fn wait_ready(&self, url: &str, within: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let last = match self
                .http
                .get(format!("{url}/api/health/ready"))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() > deadline {
                return Err(last);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A fresh token response for a CS user, from the server's legacy exchange.
    pub async fn token(&self, user: &str, group: &str) -> serde_json::Value {
        let scope = format!("vo:{} group:{group}", self.vo);
        let resp = send(|| {
            self.http
                .get(format!("{}/api/auth/legacy-exchange", self.url))
                .query(&[("preferred_username", user), ("scope", &scope)])
                .bearer_auth(format!("diracx:legacy:{}", self.legacy_key))
        })
        .await;
        assert!(
            resp.status().is_success(),
            "legacy exchange: {}",
            resp.status()
        );
        resp.json().await.expect("a token response")
    }

    pub async fn access_token(&self, user: &str, group: &str) -> String {
        self.token(user, group).await["access_token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    /// The same token, signed again by the server's key with `exp` in the past.
    pub fn expired(&self, token: &str) -> String {
        let mut child = std::process::Command::new(&self.script)
            .args(["expire", "120"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the CI script runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(token.as_bytes())
            .expect("token written");
        let out = child.wait_with_output().expect("it ends");
        assert!(
            out.status.success(),
            "{} expire failed",
            self.script.display()
        );
        String::from_utf8(out.stdout)
            .expect("text")
            .trim()
            .to_owned()
    }

    /// Runs the CI script (`extra-start PORT`...).
    pub fn script(&self, args: &[&str]) {
        let status = std::process::Command::new(&self.script)
            .args(args)
            .status()
            .expect("the CI script runs");
        assert!(
            status.success(),
            "{} {args:?} failed",
            self.script.display()
        );
    }

    /// The backend's settings for this server.
    pub fn config(&self, url: &str) -> Options {
        [
            ("url".to_owned(), Value::from(url)),
            ("vo".to_owned(), Value::from(self.vo.as_str())),
            ("group".to_owned(), Value::from("user")),
        ]
        .into()
    }

    /// A backend of a fresh home, reading no environment variable but those given.
    pub fn backend(&self, home: &Path, url: &str, env: &[(&str, String)]) -> DiracBackend {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let home_id = format!("t{}", fastrand::u64(..));
        DiracBackend::with_env(
            home,
            &home_id,
            self.config(url),
            Arc::new(move |k| env.get(k).cloned()),
        )
        .expect("settings are valid")
    }

    /// `ganga dirac login` through the device flow, with this test as the browser.
    pub async fn login(&self, backend: &DiracBackend) -> String {
        let args: Vec<String> = [
            "login", "--url", &self.url, "--vo", &self.vo, "--group", "user",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let step = backend.command(&args, None).await.expect("login starts");
        assert_eq!(step.exit_code, 0, "{}", step.output);
        let link = step
            .output
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("http") && l.contains("user_code="))
            .unwrap_or_else(|| panic!("no link to open in {:?}", step.output))
            .to_owned();
        // The "browser": DiracX sends it to the identity provider, which approves at once
        // and sends it back.
        let resp = self
            .http
            .get(&link)
            .send()
            .await
            .expect("the browser gets through");
        assert!(
            resp.status().is_success(),
            "approving the login: {}",
            resp.status()
        );
        let mut state = step.state;
        let mut output = step.output;
        while let Some(s) = state {
            let step = backend
                .command(&args, Some(s))
                .await
                .expect("login goes on");
            output.push_str(&step.output);
            assert_eq!(step.exit_code, 0, "{output}");
            state = step.state;
        }
        output
    }

    /// The rows of jobs as DiracX has them, asked with another user's eyes (admin).
    pub async fn rows(&self, ids: &[i64]) -> BTreeMap<i64, serde_json::Value> {
        let token = self.access_token("admin", "admin").await;
        let resp = send(|| {
            self.http
                .post(format!("{}/api/jobs/search", self.url))
                .query(&[("per_page", "10000")])
                .bearer_auth(&token)
                .json(&json!({
                    "parameters": ["JobID", "Status", "MinorStatus", "JobName"],
                    "search": [{"parameter": "JobID", "operator": "in", "values": ids}],
                }))
        })
        .await;
        assert!(resp.status().is_success(), "search: {}", resp.status());
        let rows: Vec<serde_json::Value> = resp.json().await.expect("rows");
        rows.into_iter()
            .map(|r| (r["JobID"].as_i64().expect("an id"), r))
            .collect()
    }

    pub async fn pilot(&self) -> Pilot {
        Pilot {
            server: self.clone(),
            pilot: self.access_token("pilot", "pilot").await,
            owner: self.access_token("alice", "user").await,
        }
    }
}

/// Sends a request again on a server error, as DIRAC's own clients do (sqlite, under the
/// tests' load, sometimes answers "database is locked").
pub async fn send(make: impl Fn() -> reqwest::RequestBuilder) -> reqwest::Response {
    let mut attempt = 0;
    loop {
        let resp = make().send().await.expect("DiracX answers");
        if !resp.status().is_server_error() || attempt == 5 {
            return resp;
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
    }
}

/// DIRAC's way from submission to running, as a pilot reports it.
pub const TO_RUNNING: &[(&str, &str)] = &[
    ("Checking", "JobSanity"),
    ("Waiting", "Pilot Agent Submission"),
    ("Matched", "Assigned"),
    ("Running", "Application"),
];
pub const TO_DONE: &[(&str, &str)] = &[
    ("Completing", "Uploading Output Sandbox"),
    ("Done", "Execution Complete"),
];
pub const TO_FAILED: &[(&str, &str)] = &[("Failed", "Application Finished With Errors")];

/// A stand-in for DIRAC's pilots and JobWrapper.
pub struct Pilot {
    server: Server,
    pilot: String,
    owner: String,
}

impl Pilot {
    /// Reports these status steps for every job, in one request (several timestamped
    /// updates per job), and checks that DiracX took the last one.
    pub async fn walk(&self, ids: &[i64], steps: &[(&str, &str)]) {
        let base = jiff::Timestamp::now();
        let mut body = serde_json::Map::new();
        for id in ids {
            let mut updates = serde_json::Map::new();
            for (i, (status, minor)) in steps.iter().enumerate() {
                let at =
                    base + jiff::SignedDuration::from_millis(i64::try_from(i).expect("few") + 1);
                let micros = at.as_microsecond().rem_euclid(1_000_000);
                let when = format!("{}.{micros:06}Z", at.strftime("%Y-%m-%dT%H:%M:%S"));
                updates.insert(
                    when,
                    json!({"Status": status, "MinorStatus": minor, "Source": "JobWrapper"}),
                );
            }
            body.insert(id.to_string(), serde_json::Value::Object(updates));
        }
        let resp = send(|| {
            self.server
                .http
                .patch(format!("{}/api/jobs/status", self.server.url))
                .bearer_auth(&self.pilot)
                .json(&body)
        })
        .await;
        assert!(
            resp.status().is_success(),
            "pilot status update: {}",
            resp.status()
        );
        let answer: serde_json::Value = resp.json().await.expect("json");
        let last = steps.last().expect("at least one step").0;
        for id in ids {
            assert_eq!(
                answer["success"][id.to_string()]["Status"].as_str(),
                Some(last),
                "job {id} did not become {last}: {answer}"
            );
        }
    }

    /// Uploads an output sandbox holding `files` with the owner's credentials (a pilot
    /// may not create sandboxes) and assigns it to the job as the pilot.
    pub async fn upload_output(&self, id: i64, files: &[(&str, &[u8])]) {
        let mut tar = tar::Builder::new(bzip2::write::BzEncoder::new(
            Vec::new(),
            bzip2::Compression::fast(),
        ));
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, name, *data).expect("tar entry");
        }
        let bytes = tar.into_inner().expect("tar").finish().expect("bz2");
        let checksum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let http = &self.server.http;
        let resp = send(|| {
            http.post(format!("{}/api/jobs/sandbox", self.server.url))
                .bearer_auth(&self.owner)
                .json(&json!({"checksum_algorithm": "sha256", "checksum": checksum, "size": bytes.len(), "format": "tar.bz2"}))
        })
        .await;
        assert!(
            resp.status().is_success(),
            "sandbox init: {}",
            resp.status()
        );
        let init: serde_json::Value = resp.json().await.expect("json");
        if let Some(url) = init["url"].as_str() {
            let mut form = reqwest::multipart::Form::new();
            for (k, v) in init["fields"].as_object().expect("fields") {
                form = form.text(k.clone(), v.as_str().expect("text").to_owned());
            }
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("sb.tar.bz2"),
            );
            let resp = http
                .post(url)
                .multipart(form)
                .send()
                .await
                .expect("S3 answers");
            assert!(resp.status().is_success(), "S3 upload: {}", resp.status());
        }
        let pfn = init["pfn"].as_str().expect("a pfn");
        let resp = send(|| {
            http.patch(format!("{}/api/jobs/{id}/sandbox/output", self.server.url))
                .bearer_auth(&self.pilot)
                .json(&pfn)
        })
        .await;
        assert!(
            resp.status().is_success(),
            "assigning the output sandbox: {}",
            resp.status()
        );
    }
}

/// A unit to submit: `echo hello N`, shipping `inputs`, collecting `result.txt`.
pub fn spec(home: &Path, job: JobRef, inputs: &[PathBuf]) -> SubmitSpec {
    let workspace = home.join("workspace").join(job.to_string());
    SubmitSpec {
        job,
        run: 1,
        previous_id: None,
        name: format!("test {job}"),
        exe: "echo".into(),
        args: vec!["hello".into(), job.to_string()],
        env: [("GREETING".to_owned(), "hi there".to_owned())].into(),
        input_files: inputs.to_vec(),
        output_patterns: vec!["result.txt".into()],
        output_dir: workspace.join("output"),
        workspace,
        options: Options::new(),
    }
}

pub fn reference(spec: &SubmitSpec, id: &str) -> BackendRef {
    BackendRef {
        job: spec.job,
        id: id.to_owned(),
        run: spec.run,
        workspace: spec.workspace.clone(),
    }
}

/// The ids of a submission, in the order of `specs`; panics on any refusal.
pub fn ids_of(
    specs: &[SubmitSpec],
    answers: &ganga_core::Answers<ganga_core::Submitted>,
) -> Vec<String> {
    assert_eq!(
        answers.len(),
        specs.len(),
        "one answer per unit: {answers:?}"
    );
    let by_job: BTreeMap<JobRef, &ganga_core::PerJob<ganga_core::Submitted>> =
        answers.iter().map(|(j, a)| (*j, a)).collect();
    specs
        .iter()
        .map(|s| match by_job.get(&s.job) {
            Some(Ok(sub)) => sub.id.clone(),
            other => panic!("unit {} was not submitted: {other:?}", s.job),
        })
        .collect()
}

pub fn as_ids(ids: &[String]) -> Vec<i64> {
    ids.iter()
        .map(|i| i.parse().expect("numeric DIRAC ids"))
        .collect()
}
