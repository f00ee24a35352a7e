//! Aggregation over seeds: mean and 95% confidence interval of per-seed scores (never of per-epoch scores).

use dsrm_metrics::{mean_ci95, MeanCi, MetricSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The metrics shown in summary tables, in column order (serde names of [`MetricSet`]).
pub const TABLE_METRICS: [&str; 10] =
    ["R_tra", "R_each", "Length", "CV", "MCD", "Gini", "ExposureEntropyNorm", "LongTailShare", "Diversity", "Novelty"];

/// Per (method, mode, metric): mean ± CI over seeds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// method -> mode -> metric -> value
    pub rows: BTreeMap<String, BTreeMap<String, BTreeMap<String, MeanCi>>>,
}

impl Summary {
    /// Aggregates `(method, mode, seed metrics)` records.
    pub fn from_runs<'a>(runs: impl IntoIterator<Item = (&'a str, &'a str, &'a MetricSet)>) -> Self {
        let mut values: BTreeMap<(String, String), BTreeMap<String, Vec<f64>>> = BTreeMap::new();
        for (method, mode, metrics) in runs {
            let entry = values.entry((method.to_string(), mode.to_string())).or_default();
            for (name, v) in metric_values(metrics) {
                entry.entry(name).or_default().push(v);
            }
        }
        let mut rows: BTreeMap<String, BTreeMap<String, BTreeMap<String, MeanCi>>> = BTreeMap::new();
        for ((method, mode), metrics) in values {
            let cell = rows.entry(method).or_default().entry(mode).or_default();
            for (name, v) in metrics {
                cell.insert(name, mean_ci95(&v));
            }
        }
        Self { rows }
    }

    /// CSV with one row per (method, mode) and `<metric>_mean`, `<metric>_ci95`, `<metric>_n` columns.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("method,mode");
        for m in TABLE_METRICS {
            out += &format!(",{m}_mean,{m}_ci95");
        }
        out += ",seeds\n";
        for (method, modes) in &self.rows {
            for (mode, metrics) in modes {
                out += &format!("{method},{mode}");
                let mut n = 0;
                for m in TABLE_METRICS {
                    let c = metrics.get(m).copied().unwrap_or_default();
                    n = c.n;
                    out += &format!(",{:.6},{:.6}", c.mean, c.half_width);
                }
                out += &format!(",{n}\n");
            }
        }
        out
    }

    /// A Markdown table for one mode.
    pub fn to_markdown(&self, mode: &str) -> String {
        let mut out =
            format!("| method | {} |\n|---|{}\n", TABLE_METRICS.join(" | "), "---|".repeat(TABLE_METRICS.len()));
        for (method, modes) in &self.rows {
            if let Some(metrics) = modes.get(mode) {
                let cells: Vec<String> =
                    TABLE_METRICS.iter().map(|m| metrics.get(*m).map(format_ci).unwrap_or_default()).collect();
                out += &format!("| {method} | {} |\n", cells.join(" | "));
            }
        }
        out
    }
}

/// `mean ± half-width`, 3 decimals (4 for values below 1).
pub fn format_ci(c: &MeanCi) -> String {
    let digits = if c.mean.abs() < 1.0 { 4 } else { 3 };
    format!("{:.*} ± {:.*}", digits, c.mean, digits, c.half_width)
}

/// All numeric fields of a metric set by their serde names.
pub fn metric_values(m: &MetricSet) -> Vec<(String, f64)> {
    m.named_values().map(|(k, v)| (k.to_string(), v)).collect()
}
