//! For plugin authors: export a Backend or Store as a ganga plugin
