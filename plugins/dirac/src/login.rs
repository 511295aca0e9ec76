//! `ganga dirac ...`: the plugin's own commands, as steps the CLI runs one after the other.
//!
//! `login` is the OAuth device flow: the first step asks DiracX for a code and prints where
//! to approve it; each later step waits a while for the approval and, once it came, stores
//! the tokens (`<home>/dirac/tokens.json`, owner-only) and says who is logged in. Between
//! steps the device code travels in the step's state, so the plugin keeps nothing in memory.
//! `logout` revokes the refresh token and removes the file; `whoami` asks the server.

use std::time::Duration;

use ganga_plugin_sdk::blocking;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::auth::{self, StoredTokens, TokenResponse};
use crate::client::DiracX;
use crate::error::DiracError;
use crate::http::{Body, Http, Request, RetryPolicy};
use crate::settings::{Identity, Settings, TokenSource, parse_url};

/// What a command step prints, what to call the next step with, and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) output: String,
    pub(crate) state: Option<LoginState>,
    pub(crate) exit_code: i32,
}

impl Step {
    fn done(output: String) -> Step {
        Step {
            output,
            state: None,
            exit_code: 0,
        }
    }

    fn failed(output: String, exit_code: i32) -> Step {
        Step {
            output,
            state: None,
            exit_code,
        }
    }
}

/// A device flow under way, carried from one step to the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LoginState {
    pub(crate) url: String,
    pub(crate) vo: String,
    pub(crate) group: String,
    pub(crate) device_code: String,
    /// Unix seconds after which the code is void.
    pub(crate) expires_at: i64,
}

/// DiracX's answer to `POST /api/auth/device`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DeviceStart {
    pub(crate) user_code: String,
    pub(crate) device_code: String,
    pub(crate) verification_uri: String,
    pub(crate) verification_uri_complete: String,
    pub(crate) expires_in: i64,
}

pub(crate) const USAGE: &str = "\
usage: ganga dirac <command>

  login [--url URL] [--vo VO] [--group GROUP]
          log in to DiracX (the device flow: approve the code in a browser); the
          tokens are kept in <home>/dirac/tokens.json and renewed automatically
  logout  revoke the session and remove the stored tokens
  whoami  who DiracX says you are
  delete DIRAC_ID...
          mark DIRAC jobs Deleted (ended ones, or killed first); says job by job
          what DIRAC made of it
";

/// How long one `login` step waits for the approval before handing back to the CLI.
const STEP_WAIT: Duration = Duration::from_secs(20);
/// How often the token endpoint is asked while waiting (RFC 8628's default).
const POLL_EVERY: Duration = Duration::from_secs(5);

/// Runs one step of a plugin command.
pub(crate) async fn command(
    settings: &Settings,
    args: &[String],
    state: Option<LoginState>,
) -> Step {
    let result = match (args.first().map(String::as_str), state) {
        (Some("login"), None) => login_start(settings, &args[1..]).await,
        (Some("login"), Some(state)) => login_wait(settings, state, STEP_WAIT, POLL_EVERY).await,
        (Some("logout"), _) => logout(settings).await,
        (Some("whoami"), _) => whoami(settings).await,
        (Some("delete"), _) => delete(settings, &args[1..]).await,
        (Some("help" | "--help" | "-h"), _) => return Step::done(USAGE.to_owned()),
        (other, _) => {
            let what = other.map_or("no command".to_owned(), |c| {
                format!("unknown command `{c}`")
            });
            return Step::failed(format!("ganga dirac: {what}\n\n{USAGE}"), 2);
        }
    };
    result.unwrap_or_else(|e| Step::failed(format!("ganga dirac: {e}\n"), 1))
}

fn http(settings: &Settings) -> Result<Http, DiracError> {
    Http::new(RetryPolicy {
        retries: settings.retries,
        ..RetryPolicy::default()
    })
}

/// The identity to log in as: the settings, overridden by `--url`, `--vo`, `--group`. An
/// empty group asks for the VO's default group, learnt from the token.
fn login_identity(settings: &Settings, args: &[String]) -> Result<Identity, DiracError> {
    let known = settings.identity.as_ref();
    let mut url = settings
        .configured
        .url
        .clone()
        .or_else(|| known.map(|i| i.url.clone()));
    let mut vo = settings
        .configured
        .vo
        .clone()
        .or_else(|| known.map(|i| i.vo.clone()));
    let mut group = settings
        .configured
        .group
        .clone()
        .or_else(|| known.map(|i| i.group.clone()));
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| rest.next().cloned())
                .ok_or_else(|| DiracError::Settings(format!("login: {key} needs a value")))
        };
        match key {
            "--url" => url = Some(parse_url(&value()?)?),
            "--vo" => vo = Some(value()?),
            "--group" => group = Some(value()?),
            other => {
                return Err(DiracError::Settings(format!(
                    "login: unknown argument `{other}` (known: --url, --vo, --group)"
                )));
            }
        }
    }
    match (url, vo) {
        (Some(url), Some(vo)) => Ok(Identity {
            url,
            vo,
            group: group.unwrap_or_default(),
        }),
        _ => Err(DiracError::Settings(
            "login: which DiracX? give --url URL --vo VO (or set url and vo in [plugin.dirac] of the config)"
                .to_owned(),
        )),
    }
}

fn shown_group(group: &str) -> &str {
    if group.is_empty() {
        "(the VO's default)"
    } else {
        group
    }
}

/// Starts a device flow.
pub(crate) async fn start_device_flow(
    http: &Http,
    identity: &Identity,
    client_id: &str,
) -> Result<DeviceStart, DiracError> {
    let url = identity
        .url
        .join("api/auth/device")
        .map_err(|e| DiracError::Settings(format!("DiracX URL: {e}")))?;
    // client_id and scope go in the query here (and in a form at the token endpoint).
    let req = Request::new(Method::POST, url, "starting a DiracX login")
        .query("client_id", client_id)
        .query("scope", identity.scope())
        .not_idempotent();
    let resp = http.send(&req).await?;
    if !resp.status.is_success() {
        return Err(resp.refused("starting a DiracX login"));
    }
    resp.json("starting a DiracX login")
}

/// Asks once whether the device code was approved: `Ok(None)` while it is pending.
pub(crate) async fn poll_device_flow(
    http: &Http,
    identity: &Identity,
    client_id: &str,
    device_code: &str,
) -> Result<Option<TokenResponse>, DiracError> {
    let url = identity
        .url
        .join("api/auth/token")
        .map_err(|e| DiracError::Settings(format!("DiracX URL: {e}")))?;
    let mut req = Request::new(Method::POST, url, "waiting for the DiracX login").not_idempotent();
    req.body = Body::Form(vec![
        (
            "grant_type".into(),
            "urn:ietf:params:oauth:grant-type:device_code".into(),
        ),
        ("client_id".into(), client_id.to_owned()),
        ("device_code".into(), device_code.to_owned()),
    ]);
    let resp = match http.send(&req).await {
        Ok(resp) => resp,
        // Asked again at the next step: the worst a lost answer costs is that DiracX
        // then says the code was used, and the user logs in again.
        Err(DiracError::Unreachable { cause, .. }) => {
            tracing::debug!("waiting for the DiracX login: {cause}; asking again");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if resp.status.is_success() {
        return resp.json("the DiracX login").map(Some);
    }
    let detail = resp.detail();
    if resp.status.as_u16() == 400 && (detail == "authorization_pending" || detail == "slow_down") {
        return Ok(None);
    }
    Err(DiracError::LoginNeeded(format!(
        "DiracX did not complete the login ({detail}); run `ganga dirac login` again"
    )))
}

async fn login_start(settings: &Settings, args: &[String]) -> Result<Step, DiracError> {
    let identity = login_identity(settings, args)?;
    let http = http(settings)?;
    let start = start_device_flow(&http, &identity, &settings.client_id).await?;
    let output = format!(
        "To log in to DiracX at {} (VO {}, group {}), open\n\n    {}\n\nin a browser, or open {} and enter the code {}.\nWaiting for the approval (the code is valid for {} minutes)...\n",
        identity.url,
        identity.vo,
        shown_group(&identity.group),
        start.verification_uri_complete,
        start.verification_uri,
        start.user_code,
        (start.expires_in + 59) / 60,
    );
    Ok(Step {
        output,
        state: Some(LoginState {
            url: identity.url.to_string(),
            vo: identity.vo,
            group: identity.group,
            device_code: start.device_code,
            expires_at: auth::now_secs() + start.expires_in,
        }),
        exit_code: 0,
    })
}

/// Waits up to `wait` for the approval, asking every `every`.
pub(crate) async fn login_wait(
    settings: &Settings,
    state: LoginState,
    wait: Duration,
    every: Duration,
) -> Result<Step, DiracError> {
    let mut identity = Identity {
        url: parse_url(&state.url)?,
        vo: state.vo.clone(),
        group: state.group.clone(),
    };
    let http = http(settings)?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if auth::now_secs() > state.expires_at {
            return Ok(Step::failed(
                "The login code expired before it was approved; run `ganga dirac login` again.\n"
                    .to_owned(),
                1,
            ));
        }
        if let Some(tokens) =
            poll_device_flow(&http, &identity, &settings.client_id, &state.device_code).await?
        {
            if identity.group.is_empty() {
                identity.group = auth::jwt_claims(&tokens.access_token)
                    .and_then(|c| {
                        c.get("dirac_group")
                            .and_then(|g| g.as_str().map(str::to_owned))
                    })
                    .ok_or_else(|| {
                        DiracError::protocol("the DiracX login", "the token names no DIRAC group")
                    })?;
            }
            let stored = StoredTokens::new(&identity, tokens, auth::now_secs());
            let path = settings.tokens_path.clone();
            let written = stored.clone();
            blocking("storing the tokens", move || {
                auth::write_stored(&path, &written)
            })
            .await??;
            let mut output = format!(
                "Logged in to DiracX at {} as {} (VO {}, group {}).\n",
                identity.url,
                stored.user.as_deref().unwrap_or("(unknown user)"),
                identity.vo,
                identity.group
            );
            if !matches!(settings.token, TokenSource::Stored(_)) {
                output.push_str(
                    "Note: GANGA_DIRAC_TOKEN or a token file is set, and is used instead of this login.\n",
                );
            }
            return Ok(Step::done(output));
        }
        if tokio::time::Instant::now() + every > deadline {
            // Hand back to the CLI, which calls again with the same state.
            return Ok(Step {
                output: String::new(),
                state: Some(state),
                exit_code: 0,
            });
        }
        tokio::time::sleep(every).await;
    }
}

async fn logout(settings: &Settings) -> Result<Step, DiracError> {
    let path = settings.tokens_path.clone();
    let p = path.clone();
    let stored = blocking("reading the tokens", move || auth::read_stored(&p)).await??;
    let Some(stored) = stored else {
        return Ok(Step::done(format!(
            "Not logged in (no {}).\n",
            path.display()
        )));
    };
    let mut output = String::new();
    if let (Some(refresh), Some(identity)) = (&stored.refresh_token, stored.identity()) {
        let http = http(settings)?;
        let url = identity
            .url
            .join("api/auth/revoke")
            .map_err(|e| DiracError::Settings(format!("DiracX URL: {e}")))?;
        let mut req = Request::new(Method::POST, url, "revoking the DiracX session");
        req.body = Body::Form(vec![
            ("token".into(), refresh.clone()),
            ("client_id".into(), settings.client_id.clone()),
        ]);
        match http.send(&req).await {
            Ok(resp) if resp.status.is_success() => {}
            Ok(resp) => output.push_str(&format!(
                "warning: {}\n",
                resp.refused("revoking the session")
            )),
            Err(e) => output.push_str(&format!("warning: {e}\n")),
        }
    }
    let p = path.clone();
    blocking("removing the tokens", move || std::fs::remove_file(&p))
        .await?
        .map_err(|e| DiracError::local(format!("cannot remove {}", path.display()), e))?;
    output.push_str(&format!("Logged out of DiracX at {}.\n", stored.url));
    Ok(Step::done(output))
}

async fn whoami(settings: &Settings) -> Result<Step, DiracError> {
    let client = DiracX::new(settings)?;
    let info = client.userinfo().await?;
    let field = |k: &str| {
        info.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let properties = info
        .get("properties")
        .and_then(serde_json::Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(serde_json::Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Ok(Step::done(format!(
        "{} (VO {}, group {}; {}) at {}\n",
        field("preferred_username"),
        field("vo"),
        field("dirac_group"),
        properties,
        client.identity().url
    )))
}

/// Marks DIRAC jobs `Deleted` through the status endpoint, and reads each job's result:
/// DiracX answers an illegal change with success and the old status.
async fn delete(settings: &Settings, args: &[String]) -> Result<Step, DiracError> {
    if args.is_empty() {
        return Ok(Step::failed(
            format!("ganga dirac delete: which DIRAC jobs?\n\n{USAGE}"),
            2,
        ));
    }
    let mut ids = Vec::with_capacity(args.len());
    for a in args {
        match a.parse::<i64>() {
            Ok(id) if id > 0 => ids.push(id),
            _ => {
                return Ok(Step::failed(
                    format!("ganga dirac delete: `{a}` is not a DIRAC job id\n"),
                    2,
                ));
            }
        }
    }
    let client = DiracX::new(settings)?;
    let result = client
        .set_status(&ids, "Deleted", "Deleted by ganga")
        .await?;
    let mut output = String::new();
    let mut failed = false;
    for id in ids {
        match (result.status_of(id), result.failure_of(id)) {
            (Some("Deleted"), _) => output.push_str(&format!("DIRAC job {id}: deleted\n")),
            (Some(other), _) => {
                failed = true;
                output.push_str(&format!("DIRAC job {id}: not deleted: it is {other}\n"));
            }
            (None, Some(why)) => {
                failed = true;
                output.push_str(&format!("DIRAC job {id}: not deleted: {why}\n"));
            }
            (None, None) => {
                failed = true;
                output.push_str(&format!("DIRAC job {id}: DiracX did not answer for it\n"));
            }
        }
    }
    Ok(if failed {
        Step::failed(output, 1)
    } else {
        Step::done(output)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    fn settings() -> Settings {
        Settings::resolve(
            &BTreeMap::new(),
            &|_| None,
            Path::new("/nonexistent-home"),
            None,
        )
        .expect("valid")
    }

    fn words(ws: &[&str]) -> Vec<String> {
        ws.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn login_arguments() {
        let id = login_identity(
            &settings(),
            &words(&["--url", "https://dx.example", "--vo=lhcb"]),
        )
        .expect("valid");
        assert_eq!(id.url.as_str(), "https://dx.example/");
        assert_eq!(id.vo, "lhcb");
        assert_eq!(id.group, "", "the VO's default group, learnt at login");
        for (args, needle) in [
            (words(&[]), "which DiracX"),
            (words(&["--url"]), "needs a value"),
            (words(&["--colour", "red"]), "unknown argument"),
            (words(&["--url", "ftp://x", "--vo", "v"]), "https://"),
        ] {
            let err = login_identity(&settings(), &args)
                .expect_err("invalid")
                .to_string();
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
    }

    #[tokio::test]
    async fn unknown_commands_print_the_usage() {
        let step = command(&settings(), &words(&["dance"]), None).await;
        assert_eq!(step.exit_code, 2);
        assert!(step.output.contains("unknown command `dance`"));
        assert!(step.output.contains("login [--url URL]"));
        let step = command(&settings(), &words(&["login"]), None).await;
        assert_eq!(step.exit_code, 1, "{}", step.output);
        assert!(step.output.contains("which DiracX"));
    }
}
