//! The monitoring service: drives jobs to the end
