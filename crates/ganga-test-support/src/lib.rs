//! Test support: a fake backend for scale, shared test helpers
