//! `dsrm data validate`: check a data directory and report *every* problem, not just the first.
//!
//! The loaders stop at the first problem; this runs the same readers in collect mode, so a user fixing a
//! download sees all bad rows (up to 50 per file) at once, with the counts and warnings a load would record.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::findings::{Findings, Mode};
use crate::{coat, kuairand, kuairec, Dataset, DuplicatePolicy, Provenance};

/// Everything a validation run found in one directory.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ValidationReport {
    /// The data set the directory was checked as.
    pub dataset: Dataset,
    /// The directory checked.
    pub dir: PathBuf,
    /// Measured facts, e.g. `("small_matrix.csv rows", 4676570)`, in reading order.
    pub counts: Vec<(String, u64)>,
    /// Every problem found (up to 50 per file, then one "... and N more" line). Empty means loadable.
    pub problems: Vec<String>,
    /// Non-fatal findings: official-count mismatches, inconsistent time fields, duplicates.
    pub warnings: Vec<String>,
    /// Hashes and settings, as a load would record them.
    pub provenance: Option<Provenance>,
}

impl ValidationReport {
    /// True when the directory would load without error.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks `dir` as `dataset` with the parity settings (keep all rows, check official counts) and reports
/// every problem, warning and count.
pub fn validate(dataset: Dataset, dir: &Path) -> ValidationReport {
    validate_from(crate::source::disk(), dataset, dir)
}

/// [`validate()`] from any [`Source`](crate::source::Source) (files in memory, for fuzzing).
pub fn validate_from(
    source: std::sync::Arc<dyn crate::source::Source>,
    dataset: Dataset,
    dir: &Path,
) -> ValidationReport {
    let policy = DuplicatePolicy::KeepAll;
    let mut findings = Findings::reading(source, Mode::Collect, dataset.name(), dir, policy);
    // In collect mode the readers record problems instead of returning them; an `Err` here could only come
    // from a fail-fast path, and is recorded the same way.
    let outcome = match dataset {
        Dataset::KuaiRec => kuairec::scan(dir, &kuairec::LoadOptions::default(), &mut findings).map(drop),
        Dataset::KuaiRandPure => kuairand::scan(dir, &kuairand::LoadOptions::default(), &mut findings).map(drop),
        Dataset::Coat => coat::scan(dir, &mut findings).map(drop),
    };
    let mut problems = findings.problem_lines();
    if let Err(e) = outcome {
        problems.push(e.to_string());
    }
    let provenance = findings.provenance;
    ValidationReport {
        dataset,
        dir: dir.to_path_buf(),
        counts: findings.counts,
        problems,
        warnings: provenance.warnings.clone(),
        provenance: Some(provenance),
    }
}

impl fmt::Display for ValidationReport {
    /// A readable multi-line report: verdict, counts, warnings, problems, files.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_ok() { "OK".to_string() } else { format!("{} PROBLEM(S)", self.problems.len()) };
        writeln!(f, "{} in {}: {verdict}", self.dataset, self.dir.display())?;
        if let Some(synthetic) = self.provenance.as_ref().and_then(|p| p.synthetic.as_ref()) {
            writeln!(
                f,
                "SYNTHETIC data: {} {} seed {} size {}",
                synthetic.generator, synthetic.generator_version, synthetic.seed, synthetic.size
            )?;
        }
        if !self.counts.is_empty() {
            writeln!(f, "counts:")?;
            let width = self.counts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (what, n) in &self.counts {
                writeln!(f, "  {what:<width$}  {n}")?;
            }
        }
        for (title, lines) in [("warnings", &self.warnings), ("problems", &self.problems)] {
            if !lines.is_empty() {
                writeln!(f, "{title}:")?;
                for line in lines {
                    writeln!(f, "  - {line}")?;
                }
            }
        }
        if let Some(p) = &self.provenance {
            if !p.files.is_empty() {
                writeln!(f, "files:")?;
                for file in &p.files {
                    writeln!(f, "  {}  {} bytes  {} rows  sha256 {}", file.path, file.bytes, file.rows, file.sha256)?;
                }
            }
        }
        Ok(())
    }
}
