//! The feedback-loop record: one JSON object per line of `RUN/loop/<method>/rounds.jsonl`, one line per
//! (round, seed). `dsrm loop` writes it with [`RoundRecord`]; the report reads it back and aggregates
//! each round over seeds. The loop may also write `loop/provenance.json` with `dataset`, `synthetic`,
//! `seeds` and `mode` (the evaluation mode of the tracked metrics), which label the curves.

use crate::error::{ReportError, Result};
use crate::inputs::read_optional;
use dsrm_metrics::{mean_ci95, MeanCi};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The folder of a run directory that holds the loop, one sub-folder per method.
pub const LOOP_DIR: &str = "loop";
/// The file in each method's folder.
pub const ROUNDS_FILE: &str = "rounds.jsonl";

/// `RUN/loop/<method>/rounds.jsonl`.
pub fn rounds_path(run_dir: &Path, method: &str) -> PathBuf {
    run_dir.join(LOOP_DIR).join(method).join(ROUNDS_FILE)
}

/// The deployed policy's metrics after one round of the loop, for one seed. `dsrm loop` writes every field;
/// the report reads the tracked metrics (the last three fields are for people, and may be absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// 0 = before any feedback; round r follows r retrainings on the grown log.
    pub round: usize,
    pub seed: u64,
    /// Gini of item exposure over the whole catalogue in this round's deployment.
    pub gini: f64,
    /// Share of this round's recommendations that were long-tail items (original data's split).
    pub long_tail_share: f64,
    /// Share of the catalogue recommended at least once in this round.
    pub coverage: f64,
    /// Mean cumulative ground-truth reward per served episode.
    pub r_tra: f64,
    /// Mean episode length.
    #[serde(default)]
    pub length: f64,
    /// Training-log rows the method was fitted on in this round.
    #[serde(default)]
    pub log_rows: usize,
    /// The training epoch an RL agent deployed this round: the one `dsrm train` reports, chosen on the
    /// validation users (best validation NX_0 R_tra, ties: the earliest); `null` for a heuristic.
    #[serde(default)]
    pub deployed_epoch: Option<usize>,
    /// Gini of the accumulated exposure in the log after this round's serving joined it (catalogue items,
    /// rows per item): what the next round learns from. `null` in files written before loops recorded it.
    #[serde(default)]
    pub log_gini: Option<f64>,
    /// Mean novelty popularity pop(i) of this round's recommended items (the original data's).
    #[serde(default)]
    pub mean_popularity: Option<f64>,
    /// The paper's AD (share reading) of this round's recommendations.
    #[serde(default)]
    pub ad: Option<f64>,
    /// Homogenisation: mean Jaccard overlap of the sets of items the round's users consumed, over user pairs
    /// (Chaney et al., RecSys 2018).
    #[serde(default)]
    pub homogenisation: Option<f64>,
    /// Mean true reward per served step, against the users' current preferences.
    #[serde(default)]
    pub true_utility: Option<f64>,
    /// Mean logged reward per served step (what the learner sees; above the true one under conformity).
    #[serde(default)]
    pub logged_utility: Option<f64>,
}

impl RoundRecord {
    /// The tracked metrics in report order, with their labels.
    /// Measures a file may lack (written before loops recorded them) are left out.
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        let optional = [
            ("LogGini", self.log_gini),
            ("Homogenisation", self.homogenisation),
            ("MeanPopularity", self.mean_popularity),
            ("AD", self.ad),
            ("TrueUtility", self.true_utility),
            ("LoggedUtility", self.logged_utility),
        ];
        [
            ("Gini", self.gini),
            ("LongTailShare", self.long_tail_share),
            ("Coverage", self.coverage),
            ("R_tra", self.r_tra),
        ]
        .into_iter()
        .chain(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))))
        .collect()
    }
}

/// Every record of one file. A later line for the same (round, seed) replaces an earlier one, so a
/// resumed loop that repeats a round counts it once. Blank lines are skipped.
pub fn read_rounds(path: &Path) -> Result<Option<Vec<RoundRecord>>> {
    let Some(text) = read_optional(path)? else { return Ok(None) };
    let mut by_key: BTreeMap<(usize, u64), RoundRecord> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: RoundRecord = serde_json::from_str(line).map_err(|e| ReportError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            column: e.column(),
            message: format!("{e} (expected {{\"round\":int,\"seed\":int,\"gini\":f,\"long_tail_share\":f,\"coverage\":f,\"r_tra\":f}})"),
        })?;
        by_key.insert((r.round, r.seed), r);
    }
    Ok(Some(by_key.into_values().collect()))
}

/// One method's loop: per round, each metric's mean ± 95% CI over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopCurves {
    pub method: String,
    /// round -> metric label -> aggregate
    pub rounds: BTreeMap<usize, BTreeMap<&'static str, MeanCi>>,
    pub seeds: Vec<u64>,
}

/// Aggregates one method's records.
pub fn curves(method: &str, records: &[RoundRecord]) -> LoopCurves {
    let mut values: BTreeMap<usize, BTreeMap<&'static str, Vec<f64>>> = BTreeMap::new();
    for r in records {
        for (name, v) in r.metrics() {
            values.entry(r.round).or_default().entry(name).or_default().push(v);
        }
    }
    let rounds = values
        .into_iter()
        .map(|(round, m)| (round, m.into_iter().map(|(k, v)| (k, mean_ci95(&v))).collect()))
        .collect();
    let mut seeds: Vec<u64> = records.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    LoopCurves { method: method.into(), rounds, seeds }
}

/// Every method folder under `RUN/loop` with a rounds file, by method name; `None` without a loop folder.
pub fn read_loop(run_dir: &Path) -> Result<Option<Vec<LoopCurves>>> {
    let dir = run_dir.join(LOOP_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(None) };
    let mut methods: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    methods.sort();
    let mut out = Vec::new();
    for m in methods {
        if let Some(records) = read_rounds(&rounds_path(run_dir, &m))? {
            if !records.is_empty() {
                out.push(curves(&m, &records));
            }
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_aggregate_over_seeds_and_repeats_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = rounds_path(dir.path(), "most-popular");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let line = |round: usize, seed: u64, gini: f64| {
            serde_json::to_string(&RoundRecord {
                round,
                seed,
                gini,
                long_tail_share: 0.1,
                coverage: 0.5,
                r_tra: 2.0,
                ..Default::default()
            })
            .unwrap()
        };
        // Seed 2's round 0 is written twice (a resumed loop); the later value wins.
        let text = [line(0, 1, 0.5), line(0, 2, 0.9), line(0, 2, 0.7), String::new(), line(1, 1, 0.6), line(1, 2, 0.8)];
        std::fs::write(&path, text.join("\n")).unwrap();
        let curves = read_loop(dir.path()).unwrap().unwrap();
        assert_eq!(curves.len(), 1);
        assert_eq!(curves[0].seeds, vec![1, 2]);
        let r0 = curves[0].rounds[&0]["Gini"];
        assert_eq!((r0.n, r0.mean), (2, 0.6));
        assert!((curves[0].rounds[&1]["Gini"].mean - 0.7).abs() < 1e-12);

        std::fs::write(&path, format!("{}\n{{\"round\": 1}}\n", line(0, 1, 0.5))).unwrap();
        let err = read_loop(dir.path()).unwrap_err().to_string();
        assert!(err.contains("rounds.jsonl:2:") && err.contains("missing field"), "{err}");
        assert!(read_loop(&dir.path().join("nothing")).unwrap().is_none());
    }
}
