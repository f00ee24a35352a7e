//! The one error type of this crate. Every variant that concerns file contents names the file, the
//! 1-based line, the column and the expected form, so a user can fix the input without reading code.

use std::path::{Path, PathBuf};

/// A problem with an input file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A required file is not in the directory (flat or official layout).
    #[error("missing file {name}: looked in {searched}")]
    MissingFile {
        /// Official file name.
        name: String,
        /// The directories looked in.
        searched: String,
    },
    /// The file could not be read at all.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A value, header or record is not of the expected form.
    #[error("{path}:{line}: column {column}: expected {expected}, found {found:?}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number in the file (the header is line 1).
        line: u64,
        /// Column name, or a 1-based position where the file has no header.
        column: String,
        /// The form the value must have.
        expected: String,
        /// What the file holds instead (shortened to 80 characters).
        found: String,
    },
    /// A directory as a whole does not make up the data set (e.g. no log file at all), or a validation run
    /// found problems; `detail` says which.
    #[error("{dir}: {detail}")]
    Invalid {
        /// The data directory.
        dir: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl DataError {
    /// The file the problem is in, when it concerns one file (used to cap problems per file).
    pub fn path(&self) -> Option<&Path> {
        match self {
            DataError::Io { path, .. } | DataError::Format { path, .. } => Some(path),
            DataError::MissingFile { .. } | DataError::Invalid { .. } => None,
        }
    }

    /// Builds a [`DataError::Format`]; `found` is shortened so that a megabyte-long field cannot flood a
    /// terminal.
    pub(crate) fn format(
        path: &Path,
        line: u64,
        column: impl Into<String>,
        expected: impl Into<String>,
        found: impl AsRef<str>,
    ) -> Self {
        DataError::Format {
            path: path.to_path_buf(),
            line,
            column: column.into(),
            expected: expected.into(),
            found: shorten(found.as_ref()),
        }
    }

    /// Builds a [`DataError::Io`].
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.to_path_buf(), source }
    }
}

/// At most 80 characters of `text`, with an ellipsis when cut.
fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_error_names_file_line_column_and_forms() {
        let e = DataError::format(Path::new("a/b.csv"), 7, "video_id", "an integer", "x");
        assert_eq!(e.to_string(), "a/b.csv:7: column video_id: expected an integer, found \"x\"");
        assert_eq!(e.path(), Some(Path::new("a/b.csv")));
    }

    #[test]
    fn long_values_are_shortened_on_a_char_boundary() {
        let long = "é".repeat(200);
        let e = DataError::format(Path::new("f"), 1, "c", "x", &long);
        let DataError::Format { found, .. } = e else { panic!("not a format error") };
        assert_eq!(found.chars().count(), 83);
    }
}
