//! What a run directory holds, read leniently: each input is `Ok(None)` when absent (its section is then
//! left out with a note) and an error naming file, line and column when present but unreadable.
//!
//! * `provenance.json` (written by `dsrm experiment`): data set, SYNTHETIC or real, seeds, selections;
//!   `experiment.toml` stands in for an older run without it.
//! * `results.json` (first selection) and `results_<selection>.json`: a [`Summary`] each.

use crate::error::{ReportError, Result};
use dsrm_eval::summary::Summary;
use std::path::{Path, PathBuf};

/// What the plots are labelled with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunInfo {
    /// `kuairec`, `coat`, ...; `None` when no input says.
    pub dataset: Option<String>,
    /// `Some(true)` for the generated KuaiRec-format set.
    pub synthetic: Option<bool>,
    pub seeds: Vec<u64>,
    /// Action selections in results order (the first is `results.json`).
    pub selections: Vec<String>,
    /// Environment preset, when known.
    pub preset: Option<String>,
    /// Which file the labels came from.
    pub source: String,
}

impl RunInfo {
    /// `kuairec — SYNTHETIC data` / `coat` / `data set unknown`.
    pub fn data_label(&self) -> String {
        let name = self.dataset.clone().unwrap_or_else(|| "data set unknown".into());
        match self.synthetic {
            Some(true) => format!("{name} — SYNTHETIC data"),
            _ => name,
        }
    }
}

/// `[1, 2, 3, 5]` as `seeds 1–3, 5 (n = 4)`.
pub fn seeds_label(seeds: &[u64]) -> String {
    let mut sorted = seeds.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if j > i + 1 { format!("{}–{}", sorted[i], sorted[j]) } else { sorted[i].to_string() });
        if j == i + 1 {
            parts.push(sorted[j].to_string());
        }
        i = j + 1;
    }
    format!("seeds {} (n = {})", parts.join(", "), sorted.len())
}

/// Reads a file that may be absent.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReportError::Read { path: path.to_path_buf(), source }),
    }
}

pub(crate) fn json_error(path: &Path, e: serde_json::Error) -> ReportError {
    ReportError::Parse { path: path.to_path_buf(), line: e.line(), column: e.column(), message: e.to_string() }
}

/// The run's labels from `provenance.json`, else `experiment.toml`; `None` when neither exists.
pub fn run_info(dir: &Path) -> Result<Option<RunInfo>> {
    let path = dir.join("provenance.json");
    if let Some(text) = read_optional(&path)? {
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| json_error(&path, e))?;
        let strings = |key: &str| -> Vec<String> {
            v.get(key)
                .and_then(|s| s.as_array())
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str())
                .map(String::from)
                .collect()
        };
        return Ok(Some(RunInfo {
            dataset: v.get("dataset").and_then(|d| d.as_str()).map(String::from),
            synthetic: v.get("synthetic").and_then(|s| s.as_bool()),
            seeds: v.get("seeds").and_then(|s| s.as_array()).into_iter().flatten().filter_map(|s| s.as_u64()).collect(),
            selections: strings("selections"),
            preset: v.get("preset").and_then(|p| p.as_str()).map(String::from),
            source: "provenance.json".into(),
        }));
    }
    let path = dir.join("experiment.toml");
    let Some(text) = read_optional(&path)? else { return Ok(None) };
    let v: toml::Value = toml::from_str(&text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_column(&text, s.start)).unwrap_or((0, 0));
        ReportError::Parse { path: path.clone(), line, column, message: e.message().to_string() }
    })?;
    let data = v.get("data");
    let strs = |v: Option<&toml::Value>| -> Vec<String> {
        v.and_then(|s| s.as_array()).into_iter().flatten().filter_map(|s| s.as_str()).map(String::from).collect()
    };
    let mut selections = strs(v.get("eval").and_then(|e| e.get("selections")));
    if selections.is_empty() {
        selections = vec!["sampled".into(), "argmax".into()]; // EvalConfig's default
    }
    Ok(Some(RunInfo {
        // DataConfig's defaults: KuaiRec, and the cached synthetic set unless `dir` names real files.
        dataset: Some(data.and_then(|d| d.get("dataset")).and_then(|d| d.as_str()).unwrap_or("kuairec").to_string()),
        synthetic: Some(data.and_then(|d| d.get("dir")).is_none()),
        seeds: v
            .get("seeds")
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_integer())
            .map(|s| s as u64)
            .collect(),
        selections,
        preset: v.get("env").and_then(|e| e.get("preset")).and_then(|p| p.as_str()).map(String::from),
        source: "experiment.toml".into(),
    }))
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// One selection's results table.
#[derive(Debug, Clone)]
pub struct SelectionResults {
    /// `sampled`, `argmax`, ... (`results.json` is the first selection of [`RunInfo::selections`]).
    pub selection: String,
    pub file: PathBuf,
    pub summary: Summary,
}

/// `results.json` and every `results_<selection>.json`, first selection first.
pub fn results(dir: &Path, info: Option<&RunInfo>) -> Result<Vec<SelectionResults>> {
    let first = info.and_then(|i| i.selections.first().cloned()).unwrap_or_else(|| "sampled".into());
    let mut files: Vec<(String, PathBuf)> = vec![(first.clone(), dir.join("results.json"))];
    let mut others: Vec<(String, PathBuf)> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let sel = name.strip_prefix("results_")?.strip_suffix(".json")?.to_string();
                (sel != first).then(|| (sel, e.path()))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    others.sort();
    files.extend(others);
    let mut out = Vec::new();
    for (selection, file) in files {
        if let Some(text) = read_optional(&file)? {
            let summary: Summary = serde_json::from_str(&text).map_err(|e| json_error(&file, e))?;
            out.push(SelectionResults { selection, file, summary });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges() {
        assert_eq!(seeds_label(&[1, 2, 3, 4, 5]), "seeds 1–5 (n = 5)");
        assert_eq!(seeds_label(&[5, 1, 2, 9]), "seeds 1, 2, 5, 9 (n = 4)");
        assert_eq!(seeds_label(&[7]), "seeds 7 (n = 1)");
        assert_eq!(line_column("a\nbc\n", 3), (2, 2));
    }
}
