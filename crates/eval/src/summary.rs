//! Aggregation over seeds: mean and 95% confidence interval of per-seed scores (never of per-epoch scores).

use dsrm_metrics::{mean_ci95, MeanCi, MetricSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The metrics shown in summary tables, in column order (serde names of [`MetricSet`]).
pub const TABLE_METRICS: [&str; 12] = [
    "R_tra",
    "R_each",
    "Length",
    "CV",
    "MCD",
    "Gini",
    "ExposureEntropyNorm",
    "LongTailShare",
    "AD_share",
    "AD_item",
    "Diversity",
    "Novelty",
];

/// Per (method, mode, metric): mean ± CI over seeds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// method -> mode -> metric -> value
    pub rows: BTreeMap<String, BTreeMap<String, BTreeMap<String, MeanCi>>>,
    /// method -> where it comes from, for methods expanded from a sweep (`dsrm experiment`); a method not
    /// listed is its own family with no parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub methods: BTreeMap<String, MethodInfo>,
}

/// A row's family (the method as written in the experiment file) and its swept parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodInfo {
    pub family: String,
    /// Dotted path into the method's table -> value.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}

impl MethodInfo {
    /// `path=value;path=value` (strings unquoted; empty without parameters), as in the CSV column.
    pub fn params_text(&self) -> String {
        let text = |v: &serde_json::Value| v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
        self.params.iter().map(|(k, v)| format!("{k}={}", text(v))).collect::<Vec<_>>().join(";")
    }
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
        Self { rows, methods: BTreeMap::new() }
    }

    /// The family and parameters of a row (itself and none when it was not swept).
    pub fn method_info(&self, method: &str) -> MethodInfo {
        self.methods
            .get(method)
            .cloned()
            .unwrap_or_else(|| MethodInfo { family: method.into(), params: BTreeMap::new() })
    }

    /// CSV with one row per (method, mode): `family`, `params` (quoted `path=value;...`), then
    /// `<metric>_mean`, `<metric>_ci95` columns and the number of seeds.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("method,family,params,mode");
        for m in TABLE_METRICS {
            out += &format!(",{m}_mean,{m}_ci95");
        }
        out += ",seeds\n";
        for (method, modes) in &self.rows {
            let info = self.method_info(method);
            let params = info.params_text().replace('"', "\"\"");
            for (mode, metrics) in modes {
                out += &format!("{method},{},\"{params}\",{mode}", info.family);
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

    /// A Markdown table for one mode (with `family` and `params` columns when some method was swept).
    pub fn to_markdown(&self, mode: &str) -> String {
        let swept = !self.methods.is_empty();
        let meta_head = if swept { " family | params |" } else { "" };
        let meta_rule = if swept { "---|---|" } else { "" };
        let mut out = format!(
            "| method |{meta_head} {} |\n|---|{meta_rule}{}\n",
            TABLE_METRICS.join(" | "),
            "---|".repeat(TABLE_METRICS.len())
        );
        for (method, modes) in &self.rows {
            if let Some(metrics) = modes.get(mode) {
                let cells: Vec<String> =
                    TABLE_METRICS.iter().map(|m| metrics.get(*m).map(format_ci).unwrap_or_default()).collect();
                let meta = if swept {
                    let info = self.method_info(method);
                    format!(" {} | {} |", info.family, info.params_text())
                } else {
                    String::new()
                };
                out += &format!("| {method} |{meta} {} |\n", cells.join(" | "));
            }
        }
        out
    }
}

/// `mean ± half-width` (`mean (n = 1)` for one seed), 3 decimals (4 for values below 1).
pub fn format_ci(c: &MeanCi) -> String {
    let digits = if c.mean.abs() < 1.0 { 4 } else { 3 };
    format!("{c:.digits$}")
}

/// All numeric fields of a metric set by their serde names.
pub fn metric_values(m: &MetricSet) -> Vec<(String, f64)> {
    m.named_values().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swept_rows_carry_family_and_params_in_csv_and_markdown() {
        let m = MetricSet { r_tra: 2.0, ..MetricSet::default() };
        let mut s = Summary::from_runs([("hrl[lambda_f=0.1]", "NX_0", &m), ("mp", "NX_0", &m)]);
        let params = [("train.algorithm.lambda_f".to_string(), serde_json::json!(0.1))].into();
        s.methods.insert("hrl[lambda_f=0.1]".into(), MethodInfo { family: "hrl".into(), params });
        let csv = s.to_csv();
        assert!(csv.starts_with("method,family,params,mode,R_tra_mean"));
        assert!(csv.contains("\nhrl[lambda_f=0.1],hrl,\"train.algorithm.lambda_f=0.1\",NX_0,2.000000,"));
        assert!(csv.contains("\nmp,mp,\"\",NX_0,"));
        let md = s.to_markdown("NX_0");
        assert!(md.contains("| hrl[lambda_f=0.1] | hrl | train.algorithm.lambda_f=0.1 | 2.000 (n = 1) |"), "{md}");
        let back: Summary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.methods, s.methods);
        // An unswept table keeps the old JSON (no `methods`) and Markdown columns.
        let plain = Summary::from_runs([("mp", "NX_0", &m)]);
        assert!(!serde_json::to_string(&plain).unwrap().contains("methods"));
        assert!(plain.to_markdown("NX_0").starts_with("| method | R_tra |"));
    }
}
