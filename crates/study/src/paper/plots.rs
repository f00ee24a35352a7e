//! The study's Pareto plots: Len and R_cum (utility, up is better) against AD_share (the exposure gap, left is
//! fairer) and against 1 − Gini (exposure equality, right is fairer), one plot per Max Len, every row a point
//! with its 95% CI whiskers on both axes. Written as `plots/<name>.svg` and `.png`.

use super::tables::Setting;
use super::{Part, MODE};
use anyhow::Result;
use dsrm_eval::summary::Summary;
use dsrm_report::chart::{xy_chart, Frame, Series, Xy};

/// (file part, axis title, metric, whether the plotted value is 1 − metric).
const FAIRNESS: [(&str, &str, &str, bool); 2] = [
    ("ad", "AD_share (popular vs long-tail exposure gap; lower is fairer)", "AD_share", false),
    ("equality", "1 − Gini of item exposure (higher is fairer)", "Gini", true),
];
const UTILITY: [(&str, &str, &str); 2] =
    [("len", "Len (interaction length)", "Length"), ("rcum", "R_cum (cumulative reward)", "R_tra")];

/// Writes every plot of the main parts; returns notes on rows that could not be drawn.
pub fn write(out: &std::path::Path, setting: &Setting, parts: &[(Part, Summary)]) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for (part, summary) in parts.iter().filter(|(p, _)| p.threshold.is_none()) {
        for (fx, x_title, x_metric, flip) in FAIRNESS {
            for (fy, y_title, y_metric) in UTILITY {
                let mut series = Vec::new();
                for (i, (row, modes)) in summary.rows.iter().enumerate() {
                    let Some(m) = modes.get(MODE) else { continue };
                    let (Some(x), Some(y)) = (m.get(x_metric), m.get(y_metric)) else {
                        notes.push(format!("{row}: no {x_metric} or {y_metric} in mode {MODE}"));
                        continue;
                    };
                    let xv = if flip { 1.0 - x.mean } else { x.mean };
                    let point = Xy { x: xv, y: y.mean, x_err: x.half_width, y_err: y.half_width };
                    series.push(Series::scatter(row, i, vec![point]));
                }
                let frame = Frame {
                    title: format!("{y_metric} against {x_metric} — Max Len {}", part.max_len),
                    subtitle: format!(
                        "{} · mode {MODE} · test users · seeds {:?} · mean ± 95% CI",
                        setting.label, setting.seeds
                    ),
                    x_label: x_title.into(),
                    y_label: y_title.into(),
                };
                let chart = xy_chart(&frame, &series)?;
                let name = format!("max-len-{}-{fy}-vs-{fx}", part.max_len);
                dsrm_files::write_atomic(&out.join("plots").join(format!("{name}.svg")), chart.svg.as_bytes())?;
                dsrm_files::write_atomic(&out.join("plots").join(format!("{name}.png")), &chart.png)?;
            }
        }
    }
    notes.sort();
    notes.dedup();
    Ok(notes)
}
