//! What a result must carry about its inputs: file hashes, count checks, duplicate handling, synthetic labels.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{DataError, DuplicatePolicy, Result};

/// One input file as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// Path as given (relative names are kept relative).
    pub path: String,
    /// Lower-case hex sha256 of the file's bytes.
    pub sha256: String,
    /// File size in bytes.
    pub bytes: u64,
    /// Data rows (header excluded) for tables; lines for matrices.
    pub rows: u64,
}

/// Marker written by `dsrm data synth` into `synthetic.json`: every artefact made from such data is labelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticInfo {
    /// Name of the program that wrote the files.
    pub generator: String,
    /// Its version, so a result can be traced to the generator that made its data.
    pub generator_version: String,
    /// Seed the files were generated from.
    pub seed: u64,
    /// Size preset (`full` or `tiny`).
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
    /// Every input file read, in reading order.
    pub files: Vec<InputFile>,
    /// Count mismatches against the official release and other non-fatal findings.
    pub warnings: Vec<String>,
    /// Duplicate policy applied to interaction logs, and how many rows it touched per file.
    pub duplicate_policy: String,
    /// `(what, count)` per log file, e.g. `("big_matrix.csv exact duplicate rows", 12)`.
    pub duplicates: Vec<(String, u64)>,
}

impl Provenance {
    /// An empty record for `dataset` read from `dir`, with the duplicate policy that will be applied.
    pub fn new(dataset: &str, dir: &Path, duplicate_policy: DuplicatePolicy) -> Self {
        Provenance {
            dataset: dataset.to_string(),
            dir: dir.display().to_string(),
            duplicate_policy: duplicate_policy.name().to_string(),
            ..Provenance::default()
        }
    }

    /// Compares a measured count with the official release's and records a warning when they differ, so a
    /// truncated or modified download cannot pass silently.
    pub fn check_official(&mut self, what: &str, found: u64, official: u64) {
        if found != official {
            self.warnings.push(format!("{what}: found {found}, the official release has {official}"));
        }
    }
}

/// Lower-case hex sha256 of a file, read in chunks so that a 1 GB matrix does not have to fit in memory.
pub fn sha256_file(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let (sha256, _bytes) =
        HashingReader::new(file).finish().map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    Ok(sha256)
}

/// A reader that hashes and counts every byte that passes through it, so a file is hashed in the same pass
/// that parses it (the big matrix is read once, not twice).
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// Reads whatever the parser left unread, then returns the hex sha256 and the byte count of the whole
    /// stream.
    pub(crate) fn finish(mut self) -> std::io::Result<(String, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        let digest = self.hasher.finalize();
        let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok((hex, self.bytes))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = buf.get(..n).unwrap_or_default();
        self.hasher.update(read);
        self.bytes += read.len() as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_known_string() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc.txt");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(sha256_file(&path).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn sha256_of_a_missing_file_names_it() {
        let err = sha256_file(Path::new("/nonexistent/x.csv")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.csv"));
    }

    #[test]
    fn official_count_mismatch_is_a_warning() {
        let mut p = Provenance::new("coat", Path::new("d"), DuplicatePolicy::KeepAll);
        p.check_official("users", 290, 290);
        assert!(p.warnings.is_empty());
        p.check_official("users", 289, 290);
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("289") && p.warnings[0].contains("290"));
    }
}
