//! Checking that a side table's id column is exactly `0..n`, each id once, where `n` is its row count.
//! Every other table indexes by these ids, so a gap or a repeat would silently shift features onto the wrong
//! user or video.

use std::path::{Path, PathBuf};

use crate::findings::Findings;
use crate::{DataError, Result};

/// Ids seen in one table, with their lines, checked once the whole table is read.
pub(crate) struct DenseIds {
    path: PathBuf,
    column: &'static str,
    /// `(id, line)` in file order.
    seen: Vec<(u64, u64)>,
}

impl DenseIds {
    /// Starts collecting the ids of `column` in `path`.
    pub(crate) fn new(path: &Path, column: &'static str) -> Self {
        DenseIds { path: path.to_path_buf(), column, seen: Vec::new() }
    }

    /// Records the id found on `line`.
    pub(crate) fn push(&mut self, id: u64, line: u64) {
        self.seen.push((id, line));
    }

    /// Reports every id outside `0..n` and every repeated id (at the later line); returns `n`, the number of
    /// ids seen. A table with no bad id then holds every id of `0..n` exactly once.
    pub(crate) fn check(&self, findings: &mut Findings) -> Result<usize> {
        let n = self.seen.len();
        let expected =
            format!("each id of 0..={} exactly once (one row per id; the table has {n} rows)", n.saturating_sub(1));
        let mut first_line = vec![0u64; n];
        for &(id, line) in &self.seen {
            let slot = usize::try_from(id).ok().and_then(|i| first_line.get_mut(i));
            match slot {
                None => findings.problem(self.error(line, &expected, id.to_string()))?,
                Some(first) if *first != 0 => {
                    let found = format!("{id}, already on line {first}");
                    findings.problem(self.error(line, &expected, found))?
                }
                Some(first) => *first = line,
            }
        }
        Ok(n)
    }

    fn error(&self, line: u64, expected: &str, found: String) -> DataError {
        DataError::format(&self.path, line, self.column, expected, found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Mode;
    use crate::DuplicatePolicy;

    fn findings() -> Findings {
        Findings::new(Mode::Collect, "t", Path::new("."), DuplicatePolicy::KeepAll)
    }

    #[test]
    fn dense_ids_in_any_order_pass() {
        let mut ids = DenseIds::new(Path::new("t.csv"), "video_id");
        for (line, id) in [2, 0, 1].into_iter().enumerate() {
            ids.push(id, line as u64 + 2);
        }
        let mut f = findings();
        assert_eq!(ids.check(&mut f).unwrap(), 3);
        assert!(!f.has_problems());
    }

    #[test]
    fn gaps_and_repeats_are_reported_at_their_lines() {
        let mut ids = DenseIds::new(Path::new("t.csv"), "video_id");
        ids.push(0, 2);
        ids.push(0, 3);
        ids.push(5, 4);
        let mut f = findings();
        ids.check(&mut f).unwrap();
        let lines = f.problem_lines();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("t.csv:3: column video_id"), "{}", lines[0]);
        assert!(lines[0].contains("already on line 2"), "{}", lines[0]);
        assert!(lines[1].contains("t.csv:4:") && lines[1].contains("0..=2"), "{}", lines[1]);
    }
}
