//! End-to-end tests of the composed `ganga` binary: it loads the LMDB store and the
//! Local backend as dynamic libraries from beside itself, as a user's install does.

#![allow(clippy::unwrap_used)] // a test that cannot set up is a failed test

mod bad_input;
mod batch;
mod dirac;
mod interrupted;
mod listing;
mod migrate;
mod monitoring;
mod output;
mod permissions;
mod pipes;
mod plugins_check;
mod shell;
mod store;
mod util;
mod workflow;
