//! The Local backend: jobs as detached processes on this machine
