//! What a load or a validation run finds: problems, warnings, counts and the provenance record.
//!
//! Loaders and the validator share one code path. A loader runs in [`Mode::FailFast`]: the first problem is
//! returned as the error. `dsrm data validate` runs in [`Mode::Collect`]: every problem is recorded, the bad
//! row is skipped and scanning goes on, so a user sees everything wrong with a download at once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::source::Source;

use crate::{DataError, DuplicatePolicy, Provenance, Result};

/// Most problems listed per file in a validation report; the rest are summarised in one line.
pub(crate) const PROBLEMS_PER_FILE: u64 = 50;

/// Examples kept per kind of warning.
const WARNING_EXAMPLES: usize = 3;

/// Whether the first problem ends the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Return the first problem as the error (loading).
    FailFast,
    /// Record every problem and go on (validation).
    Collect,
}

/// Problems, warnings, counts and provenance gathered while reading one data set.
pub(crate) struct Findings {
    mode: Mode,
    problems: Vec<String>,
    /// Problems per file, to cap what is listed.
    per_file: HashMap<String, u64>,
    /// Files in first-problem order, to print the "... and N more" lines deterministically.
    file_order: Vec<String>,
    /// `(what, value)` facts for the validation report.
    pub(crate) counts: Vec<(String, u64)>,
    /// Hashes, warnings and duplicate counts; travels with the loaded data.
    pub(crate) provenance: Provenance,
    /// Where the files are read from (the disk, or memory when fuzzing).
    pub(crate) source: Arc<dyn Source>,
}

impl Findings {
    /// Starts a run over `dir` for `dataset`, reading from the disk.
    pub(crate) fn new(mode: Mode, dataset: &str, dir: &Path, policy: DuplicatePolicy) -> Self {
        Findings::reading(crate::source::disk(), mode, dataset, dir, policy)
    }

    /// Starts a run over `dir` for `dataset`, reading from `source`.
    pub(crate) fn reading(
        source: Arc<dyn Source>,
        mode: Mode,
        dataset: &str,
        dir: &Path,
        policy: DuplicatePolicy,
    ) -> Self {
        Findings {
            mode,
            problems: Vec::new(),
            per_file: HashMap::new(),
            file_order: Vec::new(),
            counts: Vec::new(),
            provenance: Provenance::new(dataset, dir, policy),
            source,
        }
    }

    /// Reports a problem: an error in fail-fast mode, a recorded line in collect mode.
    pub(crate) fn problem(&mut self, error: DataError) -> Result<()> {
        if self.mode == Mode::FailFast {
            return Err(error);
        }
        let file = error.path().map_or_else(String::new, |p| p.display().to_string());
        let seen = self.per_file.entry(file.clone()).or_insert(0);
        if *seen == 0 {
            self.file_order.push(file);
        }
        *seen += 1;
        if *seen <= PROBLEMS_PER_FILE {
            self.problems.push(error.to_string());
        }
        Ok(())
    }

    /// Records a non-fatal finding in the provenance.
    pub(crate) fn warn(&mut self, message: String) {
        self.provenance.warnings.push(message);
    }

    /// Records a fact for the validation report.
    pub(crate) fn count(&mut self, what: String, value: u64) {
        self.counts.push((what, value));
    }

    /// True when at least one problem was recorded.
    #[cfg(test)]
    pub(crate) fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    /// Every problem line, with one "... and N more" line per file over the cap.
    pub(crate) fn problem_lines(&self) -> Vec<String> {
        let mut lines = self.problems.clone();
        for file in &self.file_order {
            let n = self.per_file.get(file).copied().unwrap_or(0);
            if n > PROBLEMS_PER_FILE {
                lines.push(format!("... and {} more problems in {file}", n - PROBLEMS_PER_FILE));
            }
        }
        lines
    }
}

/// Counts one kind of non-fatal finding in one file and keeps the first few examples, so that a warning
/// about 12 million rows stays one line.
pub(crate) struct Tally {
    what: &'static str,
    count: u64,
    examples: Vec<String>,
}

impl Tally {
    /// A tally of rows where `what` holds (e.g. "rows with an empty `time`").
    pub(crate) fn new(what: &'static str) -> Self {
        Tally { what, count: 0, examples: Vec::new() }
    }

    /// Counts one occurrence; `example` is only built for the first few.
    pub(crate) fn add(&mut self, example: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < WARNING_EXAMPLES {
            self.examples.push(example());
        }
    }

    /// Number of occurrences.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Turns a non-empty tally into a warning about `file`.
    pub(crate) fn warn_into(self, file: &str, findings: &mut Findings) {
        if self.count > 0 {
            findings.warn(format!("{file}: {} {} (e.g. {})", self.count, self.what, self.examples.join("; ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn bad(file: &str, line: u64) -> DataError {
        DataError::format(&PathBuf::from(file), line, "c", "x", "y")
    }

    #[test]
    fn fail_fast_returns_the_first_problem() {
        let mut f = Findings::new(Mode::FailFast, "coat", Path::new("."), DuplicatePolicy::KeepAll);
        assert!(f.problem(bad("a", 1)).is_err());
    }

    #[test]
    fn collect_caps_per_file_and_summarises() {
        let mut f = Findings::new(Mode::Collect, "coat", Path::new("."), DuplicatePolicy::KeepAll);
        for line in 0..60 {
            f.problem(bad("a.csv", line)).unwrap();
        }
        f.problem(bad("b.csv", 1)).unwrap();
        let lines = f.problem_lines();
        assert_eq!(lines.len(), 50 + 1 + 1);
        assert_eq!(lines.last().unwrap(), "... and 10 more problems in a.csv");
    }

    #[test]
    fn tally_keeps_three_examples() {
        let mut f = Findings::new(Mode::Collect, "coat", Path::new("."), DuplicatePolicy::KeepAll);
        let mut t = Tally::new("odd rows");
        for i in 0..5 {
            t.add(|| format!("line {i}"));
        }
        t.warn_into("x.csv", &mut f);
        assert_eq!(f.provenance.warnings, ["x.csv: 5 odd rows (e.g. line 0; line 1; line 2)"]);
    }
}
