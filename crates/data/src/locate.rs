//! Finding a data set's files by their official names, either flat in the directory the user names or in
//! the layout the official archive unpacks to (`KuaiRec 2.0/data/`, `KuaiRand-Pure/data/`, `data/`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::source::Source;
use crate::{DataError, Result};

/// The directories searched for one data set, in order of preference.
#[derive(Clone)]
pub(crate) struct SearchPath {
    dirs: Vec<PathBuf>,
    source: Arc<dyn Source>,
}

impl SearchPath {
    /// `dir`, then each of `layouts` below it, in `source`.
    pub(crate) fn new(source: Arc<dyn Source>, dir: &Path, layouts: &[&str]) -> Self {
        let mut dirs = vec![dir.to_path_buf()];
        dirs.extend(layouts.iter().map(|sub| dir.join(sub)));
        SearchPath { dirs, source }
    }

    /// Whether `path` is a file in the search path's source (any path, not only along the search path).
    pub(crate) fn is_file(&self, path: &Path) -> bool {
        self.source.is_file(path)
    }

    /// The first existing `name` (which may contain a sub-folder) along the search path.
    pub(crate) fn find(&self, name: &str) -> Option<PathBuf> {
        self.dirs.iter().map(|d| d.join(name)).find(|p| self.source.is_file(p))
    }

    /// Like [`SearchPath::find`], but a missing file is an error naming it and every place looked in.
    pub(crate) fn require(&self, name: &str) -> Result<PathBuf> {
        self.find(name).ok_or_else(|| DataError::MissingFile { name: name.to_string(), searched: self.describe() })
    }

    /// Files in the directory holding `anchor` whose names satisfy `keep`, sorted by name; used to pick up
    /// log files whose exact names are not fixed (the shipped one-day sample).
    pub(crate) fn list_beside(&self, anchor: &str, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
        let Some(dir) = self.dirs.iter().find(|d| self.source.is_file(&d.join(anchor))) else {
            return Vec::new();
        };
        let Ok(entries) = self.source.entries(dir) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .into_iter()
            .filter(|p| self.source.is_file(p))
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
        let search = SearchPath::new(crate::source::disk(), dir.path(), &["KuaiRec 2.0/data", "data"]);
        assert_eq!(search.find("a.csv"), Some(nested.join("a.csv")));
        assert_eq!(search.find("b.csv"), Some(dir.path().join("b.csv")));
        let msg = search.require("c.csv").unwrap_err().to_string();
        assert!(msg.contains("missing file c.csv"), "{msg}");
        assert!(msg.contains("KuaiRec 2.0/data/"), "{msg}");
        assert_eq!(search.list_beside("a.csv", |n| n.ends_with(".csv")), [nested.join("a.csv")]);
    }
}
