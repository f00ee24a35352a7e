//! Writing the report of an experiment directory: `dsrm_report` reads and renders, this module writes the
//! files (`report.html`, `tables.md`, `tables.tex`, `pareto.json`, `plots/*.svg`, `plots/*.png`).

use anyhow::{Context, Result};
use dsrm_report::{Options, Reference};
use std::path::{Path, PathBuf};

/// A written report.
#[derive(Debug)]
pub struct Reported {
    /// The report's directory.
    pub out: PathBuf,
    /// What the report could not show, for the reader.
    pub notes: Vec<String>,
    /// SVG plots written (each also as PNG).
    pub plots: usize,
}

/// Builds the report of `run_dir` and writes it to `out` (default: `run_dir/report`).
pub fn write(run_dir: &Path, out: Option<PathBuf>, reference: Reference) -> Result<Reported> {
    let out = out.unwrap_or_else(|| run_dir.join("report"));
    let report = dsrm_report::build(run_dir, &Options { reference })
        .with_context(|| format!("building the report of {}", run_dir.display()))?;
    for (name, contents) in &report.files {
        dsrm_files::write_atomic(&out.join(name), contents)?;
    }
    let plots = report.files.iter().filter(|(n, _)| n.starts_with("plots/") && n.ends_with(".svg")).count();
    Ok(Reported { out, notes: report.notes.clone(), plots })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_run_directory_gives_a_report_with_notes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        write(dir.path(), Some(out.clone()), Reference::Nadir).unwrap();
        for f in ["report.html", "tables.md", "tables.tex", "pareto.json"] {
            assert!(out.join(f).is_file(), "{f}");
        }
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(html.contains("No results.json"));
        let err = write(&dir.path().join("missing"), None, Reference::Origin).err().unwrap();
        assert!(format!("{err:#}").contains("not a directory"));
    }
}
