//! The paper's reported figures (`docs/protocol.md` §12.5, from a third-party summary of its PDF), shown beside
//! the study's tables for comparison. Never used to choose a setting.

use dsrm_data::Dataset;

/// Which of the study's tables a figure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Main,
    Ablation,
    Steps,
    Cost,
}

/// One reported number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reported {
    pub dataset: Dataset,
    pub max_len: usize,
    pub table: Table,
    /// The study's row name (a row the study may not have yet, e.g. `sac4ir`).
    pub row: &'static str,
    /// The paper's name for it.
    pub paper_row: &'static str,
    /// The study's metric name (`Length`, `R_tra` = R_cum, `R_each`, `AD` (the paper's, formula unknown),
    /// `T` rows use `Length`; `seconds` for Table 4).
    pub metric: &'static str,
    pub value: f64,
    /// For the steps table: the diffusion steps T.
    pub steps: Option<usize>,
}

const fn r(
    dataset: Dataset,
    table: Table,
    row: &'static str,
    paper_row: &'static str,
    metric: &'static str,
    value: f64,
) -> Reported {
    Reported { dataset, max_len: 30, table, row, paper_row, metric, value, steps: None }
}

use Dataset::{KuaiRandPure as Rand, KuaiRec as Rec};
use Table::{Ablation, Cost, Main};

/// Everything the summary of the paper reports (Max Len 30; none is known at Max Len 50).
pub const REPORTED: &[Reported] = &[
    r(Rec, Main, "dsrm-hrl", "DSRM-HRL", "Length", 26.600),
    r(Rec, Main, "dsrm-hrl", "DSRM-HRL", "R_each", 0.917),
    r(Rec, Main, "dsrm-hrl", "DSRM-HRL", "AD", 0.008),
    r(Rec, Main, "sac4ir", "SAC4IR (strongest fairness-aware baseline)", "Length", 21.967),
    r(Rec, Main, "bcq", "BCQ (strongest general baseline)", "Length", 20.800),
    r(Rand, Main, "dsrm-hrl", "DSRM-HRL", "Length", 24.067),
    r(Rand, Main, "dsrm-hrl", "DSRM-HRL", "R_each", 0.849),
    r(Rand, Main, "dsrm-hrl", "DSRM-HRL", "R_tra", 19.750),
    r(Rand, Main, "dsrm-hrl", "DSRM-HRL", "AD", 0.011),
    r(Rec, Ablation, "dsrm-hrl", "DSRM-HRL", "Length", 26.600),
    r(Rec, Ablation, "dsrm-ppo", "FLAT", "Length", 24.333),
    r(Rec, Ablation, "hrl-no-dsrm", "HRL w/o denoising", "Length", 23.167),
    r(Rec, Ablation, "hrl-rce", "HRL + R-CE", "Length", 15.167),
    Reported {
        dataset: Rec,
        max_len: 30,
        table: Table::Steps,
        row: "dsrm-hrl",
        paper_row: "DSRM-HRL, 500 diffusion steps",
        metric: "Length",
        value: 14.7,
        steps: Some(500),
    },
    r(Rec, Cost, "dsrm-hrl", "DSRM-HRL", "seconds", 15_909.0),
    r(Rec, Cost, "dnair", "DNaIR (DSRM-HRL ≈ 2.1×)", "seconds", 15_909.0 / 2.1),
    r(Rec, Cost, "sac4ir", "SAC4IR (DSRM-HRL ≈ 2.3×)", "seconds", 15_909.0 / 2.3),
    r(Rec, Cost, "hrl-rce", "R-CE", "seconds", 29_919.0),
];

/// The paper's figure for (data set, Max Len, table, row, metric), if it reports one. Synthetic KuaiRec-format
/// data is compared with KuaiRec's figures (labelled SYNTHETIC by the caller).
pub fn lookup(dataset: Dataset, max_len: usize, table: Table, row: &str, metric: &str) -> Option<f64> {
    REPORTED
        .iter()
        .find(|r| {
            r.dataset == dataset && r.max_len == max_len && r.table == table && r.row == row && r.metric == metric
        })
        .map(|r| r.value)
}

/// The paper's figure for a steps row.
pub fn lookup_steps(dataset: Dataset, max_len: usize, steps: usize) -> Option<f64> {
    REPORTED
        .iter()
        .find(|r| r.dataset == dataset && r.max_len == max_len && r.table == Table::Steps && r.steps == Some(steps))
        .map(|r| r.value)
}

/// The paper's rows of a table that the study did not run (their figures, for the report's notes).
pub fn missing_rows(dataset: Dataset, table: Table, present: &[String]) -> Vec<&'static Reported> {
    REPORTED
        .iter()
        .filter(|r| r.dataset == dataset && r.table == table && r.steps.is_none())
        .filter(|r| !present.iter().any(|p| p == r.row))
        .collect()
}
