//! Finds, checks and loads ganga plugins
