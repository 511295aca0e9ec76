//! What can go wrong when talking to DiracX, as one error type with sentences a user can act on.

use ganga_core::{BackendError, BackendErrorKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiracError {
    /// The credentials are missing, expired beyond refresh, or revoked. Nothing was changed.
    /// The text says what to do (log in again, or put a fresh token in place).
    #[error("{0}")]
    LoginNeeded(String),
    /// The plugin's settings are incomplete or wrong.
    #[error("{0}")]
    Settings(String),
    /// The server could not be reached, or kept failing, within the retries.
    #[error("DiracX at {url} cannot be reached ({what}): {cause}")]
    Unreachable {
        url: String,
        what: String,
        cause: String,
    },
    /// The server answered, with an error.
    #[error("DiracX refused {what} (HTTP {status}): {detail}")]
    Refused {
        what: String,
        status: u16,
        detail: String,
    },
    /// The answer could not be understood.
    #[error("DiracX's answer to {what} could not be understood: {cause}")]
    Protocol { what: String, cause: String },
    /// A file of ours (tokens, sandboxes, outputs).
    #[error("{0}")]
    Local(String),
}

impl DiracError {
    pub(crate) fn local(what: impl std::fmt::Display, err: impl std::fmt::Display) -> DiracError {
        DiracError::Local(format!("{what}: {err}"))
    }

    pub(crate) fn protocol(what: &str, cause: impl std::fmt::Display) -> DiracError {
        DiracError::Protocol {
            what: what.to_owned(),
            cause: cause.to_string(),
        }
    }

    /// True when no request could change anything because we could not get through
    /// (outage, credentials): a whole backend call fails rather than its jobs one by one.
    pub(crate) fn is_whole_call(&self) -> bool {
        matches!(
            self,
            DiracError::LoginNeeded(_) | DiracError::Unreachable { .. } | DiracError::Settings(_)
        )
    }
}

/// Only file work run off the async threads ([`ganga_plugin_sdk::blocking`]) fails with a
/// [`BackendError`] inside this plugin: that is a local failure, as its message says.
impl From<BackendError> for DiracError {
    fn from(e: BackendError) -> DiracError {
        DiracError::Local(e.message)
    }
}

impl From<DiracError> for BackendError {
    fn from(e: DiracError) -> BackendError {
        let kind = match &e {
            DiracError::LoginNeeded(_) => BackendErrorKind::Unauthorized,
            DiracError::Settings(_) => BackendErrorKind::InvalidOptions,
            DiracError::Protocol { .. } => BackendErrorKind::Protocol,
            _ => BackendErrorKind::Failed,
        };
        BackendError::new(kind, e.to_string())
    }
}
