//! What a result must carry about its inputs: file hashes, count checks, duplicate handling, synthetic labels.

use serde::{Deserialize, Serialize};

/// One input file as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// Path as given (relative names are kept relative).
    pub path: String,
    /// Lower-case hex sha256 of the file's bytes.
    pub sha256: String,
    pub bytes: u64,
    /// Data rows (header excluded) for tables; lines for matrices.
    pub rows: u64,
}

/// Marker written by `dsrm data synth` into `synthetic.json`: every artefact made from such data is labelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticInfo {
    pub generator: String,
    pub generator_version: String,
    pub seed: u64,
    pub size: String,
    /// Free-form generator settings.
    pub settings: serde_json::Value,
}

/// Everything a run must record about the data it used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `kuairec`, `kuairand-pure` or `coat`.
    pub dataset: String,
    /// The directory the files were found in.
    pub dir: String,
    /// Set when the directory holds synthetic data (from its `synthetic.json`).
    pub synthetic: Option<SyntheticInfo>,
    pub files: Vec<InputFile>,
    /// Count mismatches against the official release and other non-fatal findings.
    pub warnings: Vec<String>,
    /// Duplicate policy applied to interaction logs, and how many rows it touched per file.
    pub duplicate_policy: String,
    pub duplicates: Vec<(String, u64)>,
}
