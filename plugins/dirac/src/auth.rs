//! Credentials: DiracX access tokens, where they come from, and how they are renewed.
//!
//! Tokens from `ganga dirac login` live in `<home>/dirac/tokens.json` (mode 0600 in a 0700
//! directory). They are renewed with the refresh token shortly before they expire, or once
//! when the server refuses one (401). DiracX rotates refresh tokens and treats the reuse of
//! an old one as an attack (it then revokes them all), so a renewal holds a lock on
//! `tokens.lock` across processes and first reads the file again: if another `ganga`
//! renewed in the meantime, its tokens are taken instead of renewing twice.
//!
//! Tokens from `GANGA_DIRAC_TOKEN` or a file (`GANGA_DIRAC_TOKEN_FILE`, `token_file`) belong
//! to whoever put them there and are never renewed here; a file is read again once when
//! the server refuses its token, in case it was replaced.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use base64::Engine as _;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::error::DiracError;
use crate::http::{Body, Http, Request};
use crate::settings::{ENV_TOKEN, Identity, TokenSource};

/// Renew an access token this long before it expires.
const RENEW_MARGIN_SECS: i64 = 60;

/// DiracX's answer from `/api/auth/token` (and the legacy exchange).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) expires_in: Option<i64>,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
}

/// The contents of `<home>/dirac/tokens.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredTokens {
    pub(crate) url: String,
    pub(crate) vo: String,
    pub(crate) group: String,
    #[serde(default)]
    pub(crate) user: Option<String>,
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub(crate) expires_at: Option<i64>,
}

impl StoredTokens {
    pub(crate) fn new(identity: &Identity, response: TokenResponse, now: i64) -> StoredTokens {
        let claims = jwt_claims(&response.access_token);
        let expires_at = claims
            .as_ref()
            .and_then(|c| c.get("exp"))
            .and_then(serde_json::Value::as_i64)
            .or_else(|| response.expires_in.map(|s| now.saturating_add(s)));
        StoredTokens {
            url: identity.url.to_string(),
            vo: identity.vo.clone(),
            group: identity.group.clone(),
            user: claims
                .as_ref()
                .and_then(|c| c.get("preferred_username"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            access_token: response.access_token,
            refresh_token: response.refresh_token,
            expires_at,
        }
    }

    pub(crate) fn identity(&self) -> Option<Identity> {
        Some(Identity {
            url: crate::settings::parse_url(&self.url).ok()?,
            vo: self.vo.clone(),
            group: self.group.clone(),
        })
    }
}

/// The claims of a JWT, unverified: only for its expiry and names, never for trust.
pub(crate) fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A token as given in a file or variable: the bare token, or JSON with `access_token`
/// (as DiracX's own client keeps it).
pub(crate) fn token_text(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| format!("it looks like JSON but is not: {e}"))?;
        return v
            .get("access_token")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| "its JSON has no `access_token`".to_owned());
    }
    if raw.is_empty() {
        return Err("it is empty".to_owned());
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it holds spaces or control characters: not a token".to_owned());
    }
    Ok(raw.to_owned())
}

pub(crate) fn login_again(why: impl std::fmt::Display) -> DiracError {
    DiracError::LoginNeeded(format!("{why}; log in again: ganga dirac login"))
}

/// Reads the tokens file; `None` if there is none.
pub(crate) fn read_stored(path: &Path) -> Result<Option<StoredTokens>, DiracError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            login_again(format!(
                "the DiracX tokens in {} are damaged ({e})",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DiracError::local(
            format!("cannot read {}", path.display()),
            e,
        )),
    }
}

/// Writes the tokens file readable by its owner only, atomically.
pub(crate) fn write_stored(path: &Path, tokens: &StoredTokens) -> Result<(), DiracError> {
    let dir = path.parent().ok_or_else(|| {
        DiracError::Local(format!(
            "{}: a tokens file needs a directory",
            path.display()
        ))
    })?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| DiracError::local(format!("cannot create {}", dir.display()), e))?;
    let tmp = dir.join(format!(
        ".tokens.json.{}.{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The mode given to open is masked by the umask; set it outright.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(&serde_json::to_vec_pretty(tokens).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(DiracError::local(
            format!("cannot write {}", path.display()),
            e,
        ));
    }
    Ok(())
}

/// Holds the lock that serialises renewals across processes until dropped.
fn lock_renewals(tokens: &Path) -> Result<fs::File, DiracError> {
    let path = tokens.with_file_name("tokens.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| DiracError::local(format!("cannot open {}", path.display()), e))?;
    file.lock()
        .map_err(|e| DiracError::local(format!("cannot lock {}", path.display()), e))?;
    Ok(file)
}

/// File work on the blocking pool (the SDK's), its errors as this crate's.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DiracError> + Send + 'static,
) -> Result<T, DiracError> {
    ganga_plugin_sdk::blocking("a file task", f)
        .await
        .map_err(|e| DiracError::Local(e.message))?
}

pub(crate) fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[derive(Debug, Default)]
struct Current {
    token: Option<String>,
    expires_at: Option<i64>,
    /// Bumped whenever `token` changes, so that many requests refused at once renew once.
    generation: u64,
}

/// The credentials of one backend instance.
#[derive(Debug)]
pub(crate) struct Auth {
    source: TokenSource,
    identity: Identity,
    client_id: String,
    current: tokio::sync::Mutex<Current>,
}

impl Auth {
    pub(crate) fn new(source: TokenSource, identity: Identity, client_id: String) -> Auth {
        Auth {
            source,
            identity,
            client_id,
            current: tokio::sync::Mutex::new(Current::default()),
        }
    }

    /// The token to send, and its generation (give it back to [`Auth::refused`]).
    pub(crate) async fn bearer(&self, http: &Http) -> Result<(String, u64), DiracError> {
        let mut current = self.current.lock().await;
        if current.token.is_none() {
            self.load(&mut current).await?;
        }
        let expiring = current
            .expires_at
            .is_some_and(|at| at - now_secs() < RENEW_MARGIN_SECS);
        if expiring && matches!(self.source, TokenSource::Stored(_)) {
            self.renew(http, &mut current).await?;
        }
        let token = current
            .token
            .clone()
            .ok_or_else(|| login_again("no DiracX token"))?;
        Ok((token, current.generation))
    }

    /// The server refused the token of `generation` (401): renew it once, unless that
    /// happened already. An error means there is no better token to try.
    pub(crate) async fn refused(
        &self,
        http: &Http,
        generation: u64,
        detail: &str,
    ) -> Result<(), DiracError> {
        let mut current = self.current.lock().await;
        if current.generation != generation {
            return Ok(());
        }
        match &self.source {
            TokenSource::Stored(_) => self.renew(http, &mut current).await,
            TokenSource::File(path) => {
                let before = current.token.clone();
                self.load(&mut current).await?;
                if current.token == before {
                    return Err(DiracError::LoginNeeded(format!(
                        "DiracX refused the token in {} ({detail}{}): put a fresh token there",
                        path.display(),
                        expiry_note(current.token.as_deref()),
                    )));
                }
                Ok(())
            }
            TokenSource::Env(_) => Err(DiracError::LoginNeeded(format!(
                "DiracX refused the token in {ENV_TOKEN} ({detail}{}): set a fresh one",
                expiry_note(current.token.as_deref()),
            ))),
        }
    }

    async fn load(&self, current: &mut Current) -> Result<(), DiracError> {
        let (token, expires_at) = match &self.source {
            TokenSource::Env(raw) => {
                let token = token_text(raw)
                    .map_err(|e| DiracError::LoginNeeded(format!("{ENV_TOKEN}: {e}")))?;
                (token, None)
            }
            TokenSource::File(path) => {
                let p = path.clone();
                let raw = blocking(move || {
                    fs::read_to_string(&p).map_err(|e| {
                        DiracError::LoginNeeded(format!(
                            "cannot read the DiracX token file {}: {e}",
                            p.display()
                        ))
                    })
                })
                .await?;
                let token = token_text(&raw).map_err(|e| {
                    DiracError::LoginNeeded(format!(
                        "the DiracX token file {}: {e}",
                        path.display()
                    ))
                })?;
                (token, None)
            }
            TokenSource::Stored(path) => {
                let stored = self.read_matching(path).await?;
                (stored.access_token, stored.expires_at)
            }
        };
        let expires_at = expires_at.or_else(|| {
            jwt_claims(&token)
                .and_then(|c| c.get("exp").cloned())
                .and_then(|e| e.as_i64())
        });
        current.token = Some(token);
        current.expires_at = expires_at;
        current.generation += 1;
        Ok(())
    }

    async fn read_matching(&self, path: &Path) -> Result<StoredTokens, DiracError> {
        let p = path.to_path_buf();
        let stored = blocking(move || read_stored(&p)).await?.ok_or_else(|| {
            login_again(format!(
                "not logged in to DiracX at {} (no tokens in {})",
                self.identity.url,
                path.display()
            ))
        })?;
        self.check_identity(&stored, path)?;
        Ok(stored)
    }

    fn check_identity(&self, stored: &StoredTokens, path: &Path) -> Result<(), DiracError> {
        if stored.identity().as_ref() != Some(&self.identity) {
            return Err(login_again(format!(
                "the DiracX tokens in {} are for {} (VO {}, group {}), not {}",
                path.display(),
                stored.url,
                stored.vo,
                stored.group,
                self.identity
            )));
        }
        Ok(())
    }

    /// Renews the stored tokens with the refresh token, under the cross-process lock.
    async fn renew(&self, http: &Http, current: &mut Current) -> Result<(), DiracError> {
        let TokenSource::Stored(path) = &self.source else {
            return Ok(());
        };
        let p = path.clone();
        let (lock, stored) = blocking(move || {
            let lock = lock_renewals(&p)?;
            Ok((lock, read_stored(&p)?))
        })
        .await?;
        let stored = stored.ok_or_else(|| {
            login_again(format!("the DiracX tokens in {} are gone", path.display()))
        })?;
        self.check_identity(&stored, path)?;
        let fresh = stored
            .expires_at
            .is_none_or(|at| at - now_secs() >= RENEW_MARGIN_SECS);
        if current.token.as_deref() != Some(stored.access_token.as_str()) && fresh {
            // Another process renewed them meanwhile.
            tracing::debug!("DiracX tokens were renewed by another process");
            current.token = Some(stored.access_token);
            current.expires_at = stored.expires_at;
            current.generation += 1;
            drop(lock);
            return Ok(());
        }
        let refresh = stored
            .refresh_token
            .clone()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                login_again(format!(
                    "the DiracX session in {} cannot be renewed (no refresh token)",
                    path.display()
                ))
            })?;
        let response = self.exchange_refresh(http, &refresh).await?;
        let mut renewed = StoredTokens::new(&self.identity, response, now_secs());
        if renewed.refresh_token.is_none() {
            // Tokens from DiracX's legacy exchange keep their refresh token.
            renewed.refresh_token = Some(refresh);
        }
        if renewed.user.is_none() {
            renewed.user = stored.user;
        }
        let p = path.clone();
        let written = renewed.clone();
        blocking(move || write_stored(&p, &written)).await?;
        drop(lock);
        tracing::info!("renewed the DiracX access token");
        current.token = Some(renewed.access_token);
        current.expires_at = renewed.expires_at;
        current.generation += 1;
        Ok(())
    }

    async fn exchange_refresh(
        &self,
        http: &Http,
        refresh: &str,
    ) -> Result<TokenResponse, DiracError> {
        let url = self
            .identity
            .url
            .join("api/auth/token")
            .map_err(|e| DiracError::Settings(format!("DiracX URL: {e}")))?;
        let mut req =
            Request::new(Method::POST, url, "renewing the DiracX access token").not_idempotent();
        req.body = Body::Form(vec![
            ("grant_type".into(), "refresh_token".into()),
            ("client_id".into(), self.client_id.clone()),
            ("refresh_token".into(), refresh.to_owned()),
        ]);
        let resp = http.send(&req).await?;
        match resp.status.as_u16() {
            200 => resp.json("renewing the DiracX access token"),
            400 | 401 | 403 => Err(login_again(format!(
                "DiracX refused to renew the session for {} ({})",
                self.identity,
                resp.detail()
            ))),
            _ => Err(resp.refused("renewing the DiracX access token")),
        }
    }

    /// The error for a token refused even after renewing (or re-reading) it.
    pub(crate) fn refused_again(&self, detail: &str) -> DiracError {
        match &self.source {
            TokenSource::Stored(_) => login_again(format!(
                "DiracX at {} refuses even the renewed token ({detail})",
                self.identity.url
            )),
            TokenSource::File(path) => DiracError::LoginNeeded(format!(
                "DiracX refused the token in {} ({detail}): put a fresh token there",
                path.display()
            )),
            TokenSource::Env(_) => DiracError::LoginNeeded(format!(
                "DiracX refused the token in {ENV_TOKEN} ({detail}): set a fresh one"
            )),
        }
    }
}

/// ", it expired at ..." when the token says so.
fn expiry_note(token: Option<&str>) -> String {
    let exp = token
        .and_then(jwt_claims)
        .and_then(|c| c.get("exp").and_then(serde_json::Value::as_i64));
    match exp {
        Some(exp) if exp < now_secs() => match jiff::Timestamp::from_second(exp) {
            Ok(t) => format!("; it expired at {t}"),
            Err(_) => String::new(),
        },
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &serde_json::Value) -> String {
        let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        format!(
            "{}.{}.sig",
            enc(br#"{"alg":"Ed25519"}"#),
            enc(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn claims_are_read_without_verification() {
        let t = jwt(&serde_json::json!({"exp": 1234, "preferred_username": "alice"}));
        let c = jwt_claims(&t).expect("decodes");
        assert_eq!(c["exp"], 1234);
        assert_eq!(jwt_claims("not-a-jwt"), None);
        assert_eq!(jwt_claims("a.!!!.c"), None);
    }

    #[test]
    fn token_text_forms() {
        assert_eq!(token_text("  abc.def.ghi\n").as_deref(), Ok("abc.def.ghi"));
        assert_eq!(
            token_text(r#"{"access_token":"x.y.z","refresh_token":"r"}"#).as_deref(),
            Ok("x.y.z")
        );
        assert!(token_text("{").is_err());
        assert!(token_text("{}").is_err());
        assert!(token_text("").is_err());
        assert!(token_text("two words").is_err());
    }

    #[test]
    fn stored_tokens_are_owner_only_and_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dirac").join("tokens.json");
        let identity = Identity {
            url: crate::settings::parse_url("http://127.0.0.1:1").expect("url"),
            vo: "v".into(),
            group: "g".into(),
        };
        let t = jwt(&serde_json::json!({"exp": 99, "preferred_username": "alice"}));
        let tokens = StoredTokens::new(
            &identity,
            TokenResponse {
                access_token: t,
                expires_in: Some(10),
                refresh_token: Some("r".into()),
            },
            0,
        );
        assert_eq!(tokens.expires_at, Some(99), "the JWT's own expiry wins");
        assert_eq!(tokens.user.as_deref(), Some("alice"));
        write_stored(&path, &tokens).expect("written");
        let mode = fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().expect("dir"))
            .expect("exists")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(read_stored(&path).expect("readable"), Some(tokens.clone()));
        assert_eq!(tokens.identity(), Some(identity));
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(path.parent().expect("dir"))
            .expect("listable")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["tokens.json"]);
    }

    #[test]
    fn a_damaged_tokens_file_asks_for_a_login() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.json");
        fs::write(&path, "{ nope").expect("written");
        let err = read_stored(&path).expect_err("damaged").to_string();
        assert!(err.contains("ganga dirac login"), "{err}");
        assert_eq!(
            read_stored(&dir.path().join("none")).expect("no file"),
            None
        );
    }
}
