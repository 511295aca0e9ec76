//! The DIRAC backend: ganga jobs run on the grid through DiracX, DIRAC's REST API.
//!
//! Each (sub)job becomes one DIRAC job, described in JDL and submitted twenty to a request
//! with several requests in flight; its input files travel in a tar.bz2 input sandbox that
//! is uploaded once and reused by every job that ships the same files. The monitor learns
//! the state of all of a home's jobs from one search (`poll_all`), kills go through DIRAC's
//! status endpoint, and a finished job's output sandbox is downloaded and unpacked into its
//! output directory. Credentials are DiracX tokens: from `ganga dirac login` (the OAuth
//! device flow, renewed automatically), or from a file or environment variable for scripts.
//!
//! It is not a DIRAC client library: it speaks only the few endpoints a job's life needs,
//! to one server as one identity (VO and group) per ganga home. It does not manage grid
//! files (LFNs are passed through as `input_data`) and cannot show a running job's output:
//! DiracX 0.7 has no endpoint for it.

mod auth;
mod backend;
mod client;
mod error;
mod http;
mod jdl;
mod login;
mod sandbox;
mod settings;
mod status;

pub use crate::{
    backend::{DiracBackend, EnvReader},
    error::DiracError,
};

/// For tests that check the JDL against DIRAC's own parsers: the JDL of a command line
/// and environment, and the wrapper script a wrapped command line needs.
#[doc(hidden)]
pub fn jdl_of(
    exe: &str,
    args: &[String],
    env: &std::collections::BTreeMap<String, String>,
    output_patterns: &[String],
) -> Result<(String, Option<&'static str>), String> {
    let command = jdl::Command::new(exe, args, false)?;
    let options = settings::JobOptions::default();
    let text = jdl::write(&jdl::JobDescription {
        name: "ganga:test:1:r1",
        command: &command,
        env,
        input_sandbox: &[],
        output_patterns,
        options: &options,
    })?;
    Ok((text, command.needs_wrapper().then_some(jdl::WRAPPER_SCRIPT)))
}

// The declaration ganga's loader looks for, and the name job files use:
// `[backend] type = "dirac"`.
ganga_plugin_sdk::export_backend!(DiracBackend, "dirac");
