//! Finding a data set's files by their official names, either flat in the directory the user names or in
//! the layout the official archive unpacks to (`KuaiRec 2.0/data/`, `KuaiRand-Pure/data/`, `data/`).

use std::path::{Path, PathBuf};

use crate::{DataError, Result};

/// The directories searched for one data set, in order of preference.
#[derive(Debug, Clone)]
pub(crate) struct SearchPath {
    dirs: Vec<PathBuf>,
}

impl SearchPath {
    /// `dir`, then each of `layouts` below it.
    pub(crate) fn new(dir: &Path, layouts: &[&str]) -> Self {
        let mut dirs = vec![dir.to_path_buf()];
        dirs.extend(layouts.iter().map(|sub| dir.join(sub)));
        SearchPath { dirs }
    }

    /// The first existing `name` (which may contain a sub-folder) along the search path.
    pub(crate) fn find(&self, name: &str) -> Option<PathBuf> {
        self.dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
    }

    /// Like [`SearchPath::find`], but a missing file is an error naming it and every place looked in.
    pub(crate) fn require(&self, name: &str) -> Result<PathBuf> {
        self.find(name).ok_or_else(|| DataError::MissingFile { name: name.to_string(), searched: self.describe() })
    }

    /// Files in the directory holding `anchor` whose names satisfy `keep`, sorted by name; used to pick up
    /// log files whose exact names are not fixed (the shipped one-day sample).
    pub(crate) fn list_beside(&self, anchor: &str, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
        let Some(dir) = self.dirs.iter().find(|d| d.join(anchor).is_file()) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
            .collect();
        found.sort();
        found
    }

    /// The searched directories, for messages.
    pub(crate) fn describe(&self) -> String {
        self.dirs.iter().map(|d| format!("{}/", d.display())).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_flat_and_nested_and_reports_misses() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("KuaiRec 2.0/data");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(nested.join("a.csv"), "x").unwrap();
        std::fs::write(dir.path().join("b.csv"), "x").unwrap();
        let search = SearchPath::new(dir.path(), &["KuaiRec 2.0/data", "data"]);
        assert_eq!(search.find("a.csv"), Some(nested.join("a.csv")));
        assert_eq!(search.find("b.csv"), Some(dir.path().join("b.csv")));
        let msg = search.require("c.csv").unwrap_err().to_string();
        assert!(msg.contains("missing file c.csv"), "{msg}");
        assert!(msg.contains("KuaiRec 2.0/data/"), "{msg}");
        assert_eq!(search.list_beside("a.csv", |n| n.ends_with(".csv")), [nested.join("a.csv")]);
    }
}
