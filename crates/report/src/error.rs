//! The report's one error type: what could not be read, where, and why.

use std::path::PathBuf;

/// A report input that exists but cannot be used. (Missing inputs are not errors: their section is
/// left out with a note.)
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// `line` and `column` are 1-based; 0 where the parser did not say.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse { path: PathBuf, line: usize, column: usize, message: String },
    /// A chart plotters could not lay out, draw or encode; `format` is `SVG`, `PNG` or `layout`.
    #[error("chart {chart:?} ({format}): {message}")]
    Render { chart: String, format: &'static str, message: String },
    /// The chart font could not be loaded.
    #[error("chart font: {0}")]
    Font(&'static str),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, ReportError>;
