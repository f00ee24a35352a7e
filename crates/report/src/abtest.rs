//! The A/B section of a report: what `dsrm abtest --out DIR` wrote in `DIR/abtest.json` (the arms, each
//! outcome per arm with its 95% interval and B − A, the sequential tests and the decision), as tables and a plot
//! of the always-valid p-value over sessions.
//!
//! The file is read as loosely typed JSON here: the report crate sits below the serving crate that writes it
//! (`dsrm_serve::abtest::AbTestReport`), so it reads the fields it shows and names a missing one.

use crate::chart::{self, Frame, Line, Series, Xy};
use crate::document::{Block, Section, Table};
use crate::error::{ReportError, Result};
use crate::inputs::{json_error, read_optional};
use serde_json::Value;
use std::path::Path;

/// The file `dsrm abtest` writes.
pub const ABTEST_FILE: &str = "abtest.json";

fn missing(path: &Path, field: &str) -> ReportError {
    ReportError::Parse { path: path.to_path_buf(), line: 0, column: 0, message: format!("no field `{field}`") }
}

fn interval(v: &Value) -> String {
    let f = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    format!("{:.4} [{:.4}, {:.4}]", f("mean"), f("lo"), f("hi"))
}

/// The section, or `None` when the directory holds no `abtest.json`.
pub fn section(dir: &Path) -> Result<Option<Section>> {
    let path = dir.join(ABTEST_FILE);
    let Some(text) = read_optional(&path)? else { return Ok(None) };
    let v: Value = serde_json::from_str(&text).map_err(|e| json_error(&path, e))?;
    let get = |k: &str| v.get(k).ok_or_else(|| missing(&path, k));
    let arms = get("arms")?.as_array().filter(|a| a.len() == 2).ok_or_else(|| missing(&path, "arms (two)"))?;
    let name = |i: usize| arms[i].get("name").and_then(Value::as_str).unwrap_or("?").to_string();
    let (a, b) = (name(0), name(1));
    let mut s = Section { title: "A/B test".into(), ..Section::default() };
    let dataset = get("dataset")?.as_str().unwrap_or("?");
    let synthetic = v.get("synthetic").and_then(Value::as_bool) == Some(true);
    let label = if synthetic { format!("{dataset} — SYNTHETIC data") } else { dataset.to_string() };
    s.blocks.push(Block::Text(format!(
        "Simulated A/B test (`dsrm abtest`) on {label}, preset {}: {} users, one session each, seed {}, k = {}. Each arm \
         was served live by `dsrm serve` and driven over HTTP; the simulator paid the ground-truth rewards and \
         decided when users quit. Per-session outcomes: mean with a Student t 95% interval, B − A with Welch's; \
         exposure outcomes: the metrics crate's values over the arm's consumed items, with a bootstrap 95% \
         interval over sessions.",
        v.get("preset").and_then(Value::as_str).unwrap_or("?"),
        v.get("users").and_then(Value::as_u64).unwrap_or(0),
        v.get("seed").and_then(Value::as_u64).unwrap_or(0),
        v.get("k").and_then(Value::as_u64).unwrap_or(1),
    )));
    let arm_rows = arms
        .iter()
        .map(|arm| {
            let f = |k: &str| arm.get(k).map(|x| x.as_str().map(String::from).unwrap_or_else(|| x.to_string()));
            vec![
                f("name").unwrap_or_default(),
                f("run").unwrap_or_default(),
                f("policy").unwrap_or_default(),
                f("selection").unwrap_or_default(),
                f("traffic_percent").unwrap_or_default(),
                f("sessions").unwrap_or_default(),
            ]
        })
        .collect();
    s.blocks.push(Block::Table(Table {
        caption: "Arms (the first is the control)".into(),
        header: ["arm", "run", "policy", "selection", "traffic %", "sessions"].map(String::from).to_vec(),
        rows: arm_rows,
    }));
    let mut rows = Vec::new();
    for o in get("outcomes")?.as_array().ok_or_else(|| missing(&path, "outcomes"))? {
        let arm = |i: usize| o.get("arms").and_then(|x| x.get(i)).map(interval).unwrap_or_default();
        let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        rows.push(vec![
            text("label"),
            arm(0),
            arm(1),
            o.get("difference").map(interval).unwrap_or_default(),
            text("interval"),
            text("better"),
        ]);
    }
    let note = v.get("return_rate_note").and_then(Value::as_str).unwrap_or("not measured");
    rows.push(vec!["return rate".into(), "—".into(), "—".into(), "—".into(), note.into(), String::new()]);
    s.blocks.push(Block::Table(Table {
        caption: format!("Outcomes per arm, mean [95% CI], and the difference {b} − {a}; {label}"),
        header: ["outcome".to_string(), a.clone(), b.clone(), format!("{b} − {a}"), "interval".into(), "better".into()]
            .to_vec(),
        rows,
    }));
    let sequential = get("sequential")?.as_array().ok_or_else(|| missing(&path, "sequential"))?;
    let mut seq_rows = Vec::new();
    let mut series = Vec::new();
    for (i, t) in sequential.iter().enumerate() {
        let metric = t.get("metric").and_then(Value::as_str).unwrap_or("?").to_string();
        let primary = t.get("primary").and_then(Value::as_bool) == Some(true);
        seq_rows.push(vec![
            metric.clone(),
            if primary { "primary".into() } else { "secondary (not decided on)".into() },
            format!("{:.4}", t.get("p").and_then(Value::as_f64).unwrap_or(f64::NAN)),
            t.get("alpha").map(|x| x.to_string()).unwrap_or_default(),
            t.get("decided_after").and_then(Value::as_u64).map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
            t.get("direction").and_then(Value::as_str).unwrap_or("—").to_string(),
        ]);
        let points: Vec<Xy> = t
            .get("trace")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| Some(Xy { x: p.get(0)?.as_f64()?, y: p.get(1)?.as_f64()?, x_err: 0.0, y_err: 0.0 }))
            .collect();
        if !points.is_empty() {
            series.push(Series { line: Line::Straight, markers: false, ..Series::scatter(&metric, i, points) });
        }
    }
    s.blocks.push(Block::Table(Table {
        caption:
            "Sequential tests: mixture SPRT with a normal mixture (Johari, Pekelis, Walsh 2017); the always-valid \
                  p-value stays valid however often it is looked at"
                .into(),
        header: ["outcome", "role", "always-valid p", "α", "p ≤ α first after (sessions)", "direction"]
            .map(String::from)
            .to_vec(),
        rows: seq_rows,
    }));
    if !series.is_empty() {
        let frame = Frame {
            title: "Always-valid p-value over sessions".into(),
            subtitle: format!("{label} · {a} vs {b} · seed {}", v.get("seed").and_then(Value::as_u64).unwrap_or(0)),
            x_label: "sessions".into(),
            y_label: "always-valid p".into(),
        };
        s.blocks.push(Block::Plot { name: "abtest_p_value".into(), chart: chart::xy_chart(&frame, &series)? });
    }
    s.blocks.push(Block::Text(format!(
        "Decision: {}",
        v.get("decision").and_then(Value::as_str).ok_or_else(|| missing(&path, "decision"))?
    )));
    for n in v.get("model_notes").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        s.blocks.push(Block::Text(format!("Model: {n}.")));
    }
    Ok(Some(s))
}
