//! The one error type of this crate. Every variant that concerns file contents names the file, the
//! 1-based line, the column and the expected form, so a user can fix the input without reading code.

use std::path::PathBuf;

/// A problem with an input file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A required file is not in the directory (flat or official layout).
    #[error("missing file {name}: looked in {searched}")]
    MissingFile { name: String, searched: String },
    /// The file could not be read at all.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A value, header or record is not of the expected form.
    #[error("{path}:{line}: column {column}: expected {expected}, found {found:?}")]
    Format {
        path: PathBuf,
        /// 1-based line number in the file (the header is line 1).
        line: u64,
        /// Column name, or a 1-based position where the file has no header.
        column: String,
        expected: String,
        found: String,
    },
}
