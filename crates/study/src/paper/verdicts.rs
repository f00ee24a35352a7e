//! The paper's claims, tested on the study's seeds.
//!
//! Each claim is one-sided ("DSRM-HRL's Len is higher than A2C's"), tested with Welch's t-test on the per-seed
//! scores (`dsrm_metrics::welch_p_greater`). Within a table (Table 2: the headline against every other method
//! at every Max Len; Table 3: against every ablation row; steps: few steps against many) the p-values are
//! Holm-corrected (`dsrm_metrics::holm`), and so are the reverse claims, as their own family. A claim
//!
//! * **holds** when its Holm-adjusted p < 0.05;
//! * is **reversed** when the opposite claim's adjusted p < 0.05;
//! * is **not shown** otherwise (the intervals cannot tell), or **untestable** with fewer than 2 seeds.
//!
//! The claims (what the paper reports, `docs/protocol.md` §12.5): the full model has longer sessions (Len),
//! a higher cumulative reward (R_cum) and a smaller popular/long-tail exposure gap (AD_share) than every
//! baseline and every ablation; 10–30 diffusion steps beat 100–500 on Len; adding the DSRM to a baseline
//! (DNaIR in the paper) raises its Len and R_cum and lowers its AD_share (`dsrm_on` pairs, table "dsrm-on").

use super::tables::Setting;
use super::{Part, MODE};
use anyhow::Result;
use dsrm_eval::summary::Summary;
use dsrm_metrics::{holm, welch_p_greater, MeanCi};
use std::path::Path;

/// Adjusted p below which a claim holds.
pub const ALPHA: f64 = 0.05;

/// One tested claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `table2`, `table3`, `steps`.
    pub table: String,
    pub max_len: usize,
    pub metric: String,
    /// The row claimed better, and the row it is compared with.
    pub better: String,
    pub worse: String,
    /// Whether higher is better for the metric.
    pub higher_is_better: bool,
    pub better_value: MeanCi,
    pub worse_value: MeanCi,
    /// One-sided Welch p of the claim, and Holm-adjusted within the table.
    pub p: f64,
    pub p_holm: f64,
    /// The reverse claim's Holm-adjusted p.
    pub p_reverse_holm: f64,
    pub verdict: &'static str,
}

impl Verdict {
    pub fn claim(&self) -> String {
        let dir = if self.higher_is_better { ">" } else { "<" };
        format!("{}: {} {dir} {}", self.metric, self.better, self.worse)
    }
}

/// The metrics of the claims and their direction.
const CLAIMS: [(&str, bool); 3] = [("Length", true), ("R_tra", true), ("AD_share", false)];

fn value(summary: &Summary, row: &str, metric: &str) -> Option<MeanCi> {
    summary.rows.get(row)?.get(MODE)?.get(metric).copied()
}

/// Tests every claim of the study's tables.
pub fn judge(setting: &Setting, parts: &[(Part, Summary)]) -> Vec<Verdict> {
    let f = &setting.file;
    let mut out = Vec::new();
    let mains: Vec<&(Part, Summary)> = parts.iter().filter(|(p, _)| p.threshold.is_none()).collect();
    // Table 2: the headline against every other plain row (not ablations, not other schedules of itself).
    let mut family = Vec::new();
    for (part, summary) in &mains {
        let others: Vec<&String> = f
            .methods
            .iter()
            .map(|m| &m.name)
            .filter(|n| summary.rows.contains_key(*n) && !summary.methods.contains_key(*n))
            .filter(|n| **n != f.headline && !f.ablation.contains(n) && !n.starts_with(&format!("{}-", f.headline)))
            .filter(|n| !f.dsrm_on.iter().any(|[with, _]| with == *n))
            .collect();
        for other in others {
            for (metric, higher) in CLAIMS {
                family.extend(pair("table2", part.max_len, summary, &f.headline, other, metric, higher));
            }
        }
    }
    out.extend(adjust(family));
    // Table 3: the headline against each ablation row.
    let mut family = Vec::new();
    for (part, summary) in &mains {
        for other in f.ablation.iter().filter(|n| **n != f.headline) {
            for (metric, higher) in CLAIMS {
                family.extend(pair("table3", part.max_len, summary, &f.headline, other, metric, higher));
            }
        }
    }
    out.extend(adjust(family));
    // DSRM on a baseline: each [with, without] pair, the stage's effect on that method.
    let mut family = Vec::new();
    for (part, summary) in &mains {
        for [with, without] in &f.dsrm_on {
            for (metric, higher) in CLAIMS {
                family.extend(pair("dsrm-on", part.max_len, summary, with, without, metric, higher));
            }
        }
    }
    out.extend(adjust(family));
    // Steps: each of T <= 30 against each of T >= 100, on Len.
    let mut family = Vec::new();
    for (part, summary) in &mains {
        let mut at: Vec<(usize, String)> = Vec::new();
        if let Some(t) = setting.headline_steps.filter(|_| summary.rows.contains_key(&f.headline)) {
            at.push((t, f.headline.clone()));
        }
        for (row, info) in &summary.methods {
            if info.family == f.steps_family {
                if let Some(t) = info.params.values().next().and_then(serde_json::Value::as_u64) {
                    at.push((t as usize, row.clone()));
                }
            }
        }
        for (_, few) in at.iter().filter(|(t, _)| *t <= 30) {
            for (_, many) in at.iter().filter(|(t, _)| *t >= 100) {
                family.extend(pair("steps", part.max_len, summary, few, many, "Length", true));
            }
        }
    }
    out.extend(adjust(family));
    out
}

fn pair(
    table: &str,
    max_len: usize,
    summary: &Summary,
    better: &str,
    worse: &str,
    metric: &str,
    higher_is_better: bool,
) -> Option<Verdict> {
    let (a, b) = (value(summary, better, metric)?, value(summary, worse, metric)?);
    let p = if higher_is_better { welch_p_greater(&a, &b) } else { welch_p_greater(&b, &a) };
    Some(Verdict {
        table: table.into(),
        max_len,
        metric: metric.into(),
        better: better.into(),
        worse: worse.into(),
        higher_is_better,
        better_value: a,
        worse_value: b,
        p,
        p_holm: f64::NAN,
        p_reverse_holm: f64::NAN,
        verdict: "untestable",
    })
}

/// Holm over one table's claims, and over their reverses; then the verdicts.
fn adjust(mut family: Vec<Verdict>) -> Vec<Verdict> {
    let p: Vec<f64> = family.iter().map(|v| v.p).collect();
    let reverse: Vec<f64> = family
        .iter()
        .map(|v| {
            let (a, b) = (&v.better_value, &v.worse_value);
            if v.higher_is_better {
                welch_p_greater(b, a)
            } else {
                welch_p_greater(a, b)
            }
        })
        .collect();
    let (adj, adj_rev) = (holm(&p), holm(&reverse));
    for (i, v) in family.iter_mut().enumerate() {
        v.p_holm = adj[i];
        v.p_reverse_holm = adj_rev[i];
        v.verdict = if v.p.is_nan() {
            "untestable"
        } else if adj[i] < ALPHA {
            "holds"
        } else if adj_rev[i] < ALPHA {
            "reversed"
        } else {
            "not shown"
        };
    }
    family
}

/// The verdicts as a Markdown section with counts.
pub fn markdown(verdicts: &[Verdict]) -> String {
    let mut s = "## Verdicts on the paper's claims\n\n".to_string();
    let count = |w: &str| verdicts.iter().filter(|v| v.verdict == w).count();
    s += &format!(
        "{} claims: {} hold, {} not shown, {} reversed, {} untestable (one-sided Welch t-tests on per-seed \
         scores, Holm-corrected within each table, α = {ALPHA}; mode {MODE}).\n\n",
        verdicts.len(),
        count("holds"),
        count("not shown"),
        count("reversed"),
        count("untestable")
    );
    s += "| table | Max Len | claim | better | worse | p | p (Holm) | verdict |\n|---|---|---|---|---|---|---|---|\n";
    for v in verdicts {
        s += &format!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.4} | {:.4} | **{}** |\n",
            v.table,
            v.max_len,
            v.claim(),
            v.better_value,
            v.worse_value,
            v.p,
            v.p_holm,
            v.verdict
        );
    }
    s
}

/// `out/verdicts.md` and `out/verdicts.csv`.
pub fn write(out: &Path, verdicts: &[Verdict], partial: &[String]) -> Result<()> {
    let head: String = partial.iter().map(|line| format!("**{line}.**\n\n")).collect();
    dsrm_files::write_atomic(&out.join("verdicts.md"), (head + &markdown(verdicts)).as_bytes())?;
    let mut csv = "table,max_len,metric,better,worse,better_mean,better_ci95,worse_mean,worse_ci95,p,p_holm,\
                   p_reverse_holm,verdict\n"
        .to_string();
    for v in verdicts {
        csv += &format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            v.table,
            v.max_len,
            v.metric,
            v.better,
            v.worse,
            v.better_value.mean,
            v.better_value.half_width,
            v.worse_value.mean,
            v.worse_value.half_width,
            v.p,
            v.p_holm,
            v.p_reverse_holm,
            v.verdict
        );
    }
    dsrm_files::write_atomic(&out.join("verdicts.csv"), csv.as_bytes())?;
    Ok(())
}
