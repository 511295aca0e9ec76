//! Reading a TOML file into a typed value, with errors that name the file, the line and
//! the field.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A problem in a TOML file, located as precisely as known.
#[derive(Debug)]
pub struct FileError {
    pub file: PathBuf,
    /// 1-based line and column.
    pub position: Option<(usize, usize)>,
    /// The dotted field, e.g. `application.exe` or `input_files[1]`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for FileError {}

impl FileError {
    pub(crate) fn at(
        file: &Path,
        text: &str,
        span: Option<Range<usize>>,
        field: Option<String>,
        message: impl Into<String>,
    ) -> FileError {
        FileError {
            file: file.to_owned(),
            position: span.map(|s| line_col(text, s.start)),
            field,
            message: message.into(),
        }
    }
}

/// The 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, col)
}

/// Parses `text` (the content of `file`) into `T`.
pub(crate) fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, FileError> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| FileError::at(file, text, e.span(), None, clean(e.message())))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = without_span_wrappers(&e.path().to_string());
        let inner = e.into_inner();
        let field = (path != "." && !path.is_empty()).then_some(path);
        FileError::at(file, text, inner.span(), field, clean(inner.message()))
    })
}

/// A field path without the segments `toml::Spanned` adds (`$__serde_spanned_private_value`),
/// which mean nothing to a user.
fn without_span_wrappers(path: &str) -> String {
    path.split('.')
        .filter(|seg| !seg.starts_with("$__serde_spanned"))
        .collect::<Vec<_>>()
        .join(".")
}

fn clean(message: &str) -> String {
    message.trim().trim_end_matches('\n').to_owned()
}
