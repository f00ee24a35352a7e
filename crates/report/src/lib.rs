//! The report of an experiment: results table, Pareto frontiers with hypervolumes, ablation bars,
//! T-sensitivity and feedback-loop curves, as one self-contained `report.html` (inline SVG, opens offline),
//! `tables.md`, `tables.tex` (booktabs), `pareto.json` and `plots/*.svg` with a `plots/*.png` of each.
//!
//! Pipeline position: ... -> evaluation -> **report** -> cli. The crate only reads what `dsrm experiment`
//! (and `dsrm loop`, through [`rounds::RoundRecord`]) wrote and returns the files' contents; the CLI
//! writes them. A missing input leaves its section out with a note; an unreadable one is an error naming
//! file, line and column. Every plot names the data set (SYNTHETIC where so), the mode and the seeds.
//!
//! Plots are drawn with plotters ([`chart`]) as SVG (inlined in the HTML, scales for print) and PNG (for
//! slides and Markdown), from the same drawing code, with a bundled font so they look alike everywhere.

pub mod abtest;
pub mod chart;
pub mod document;
pub mod error;
pub mod frontier;
pub mod inputs;
pub mod rounds;

pub use error::{ReportError, Result};
pub use frontier::Reference;
pub use rounds::{RoundRecord, LOOP_DIR, ROUNDS_FILE};

use chart::{Bar, Frame, Line, Rendered, Series, Xy};
use document::{Block, Section, Table};
use dsrm_eval::summary::{format_ci, Summary, TABLE_METRICS};
use frontier::ParetoAnalysis;
use inputs::{seeds_label, RunInfo, SelectionResults};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// How to build the report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Hypervolume reference point.
    pub reference: Reference,
}

impl Default for Options {
    fn default() -> Self {
        Self { reference: Reference::Origin }
    }
}

/// The report's files, relative to the output folder, and what was left out.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// (relative path, contents): `report.html`, `tables.md`, `tables.tex`, `pareto.json`, `plots/*.svg`,
    /// `plots/*.png`.
    pub files: Vec<(String, Vec<u8>)>,
    /// One line per omitted section.
    pub notes: Vec<String>,
}

impl Report {
    /// The contents of a text file of the report (`None` for a missing or binary one).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.files.iter().find(|(n, _)| n == name).and_then(|(_, c)| std::str::from_utf8(c).ok())
    }
}

/// Reads `run_dir` and renders the report.
pub fn build(run_dir: &Path, options: &Options) -> Result<Report> {
    if !run_dir.is_dir() {
        return Err(ReportError::NotADirectory(run_dir.to_path_buf()));
    }
    let info = inputs::run_info(run_dir)?;
    let results = inputs::results(run_dir, info.as_ref())?;
    let loop_curves = rounds::read_loop(run_dir)?;
    let info = info.unwrap_or_default();
    let ctx = Labels { info: &info };

    let mut sections = Vec::new();
    let mut pareto = Vec::new();
    // A `dsrm abtest` directory: its A/B section, and no notes about the experiment inputs it never has.
    let abtest = abtest::section(run_dir)?;
    let abtest_only = abtest.is_some() && results.is_empty() && loop_curves.is_none();
    if let Some(section) = abtest {
        sections.push(section);
    }
    if abtest_only {
        // Nothing else to say: the directory is an A/B test's.
    } else if results.is_empty() {
        let mut s = Section { title: "Results".into(), ..Section::default() };
        s.notes.push(format!(
            "No results.json in {}: the results table, Pareto frontier, ablation bars and T-sensitivity are omitted \
             (run `dsrm experiment` first).",
            run_dir.display()
        ));
        sections.push(s);
    } else {
        sections.push(results_section(&ctx, &results));
        let (section, analyses) = pareto_section(&ctx, &results, options.reference)?;
        sections.push(section);
        pareto = analyses;
        sections.push(ablation_section(&ctx, &results)?);
        sections.push(sensitivity_section(&ctx, &results)?);
    }
    if !abtest_only {
        sections.push(loop_section(&ctx, run_dir, loop_curves)?);
    }

    let name =
        run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| run_dir.display().to_string());
    let title = format!("dsrm report — {name}");
    let mut intro = vec![format!("Run directory: {}", run_dir.display())];
    if info.source.is_empty() {
        intro.push("Data set unknown: neither provenance.json nor experiment.toml is in the run directory.".into());
    } else {
        intro.push(format!("Data: {} (from {}).", info.data_label(), info.source));
    }
    if info.synthetic == Some(true) {
        intro.push("These results are on SYNTHETIC data in KuaiRec format, not KuaiRec results.".into());
    }
    if let Some(p) = &info.preset {
        intro.push(format!("Environment preset: {p}."));
    }
    if !info.seeds.is_empty() && !abtest_only {
        intro.push(format!(
            "{}; every value is the mean ± 95% CI (Student t) over seeds.",
            capitalise(&seeds_label(&info.seeds))
        ));
    }
    if !abtest_only {
        intro.push(format!("Hypervolume reference: {}.", options.reference));
    }

    let mut report = Report::default();
    for s in &sections {
        report.notes.extend(s.notes.iter().map(|n| format!("{}: {n}", s.title)));
        for b in &s.blocks {
            if let Block::Plot { name, chart } = b {
                report.files.push((format!("plots/{name}.svg"), chart.svg.clone().into_bytes()));
                report.files.push((format!("plots/{name}.png"), chart.png.clone()));
            }
        }
    }
    report.files.push(("report.html".into(), document::html(&title, &intro, &sections).into_bytes()));
    report.files.push(("tables.md".into(), document::markdown(&title, &intro, &sections).into_bytes()));
    report.files.push(("tables.tex".into(), document::latex(&title, &sections).into_bytes()));
    report.files.push(("pareto.json".into(), pareto_json(&info, &pareto).into_bytes()));
    Ok(report)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Plot and caption labels: data set, mode, selection, seeds.
struct Labels<'a> {
    info: &'a RunInfo,
}

impl Labels<'_> {
    fn subtitle(&self, mode: Option<&str>, selection: Option<&str>, seeds: &[u64], n: usize) -> String {
        let mut parts = vec![self.info.data_label()];
        if let Some(m) = mode {
            parts.push(format!("mode {m}"));
        }
        if let Some(s) = selection {
            parts.push(format!("{s} actions"));
        }
        let seeds = if !seeds.is_empty() { seeds.to_vec() } else { self.info.seeds.clone() };
        parts.push(if seeds.is_empty() { format!("seeds unknown (n = {n})") } else { seeds_label(&seeds) });
        parts.join(" · ")
    }
}

/// Modes present in a table, in the anchors' order: FB, NX_0, then NX_k.
fn modes(summary: &Summary) -> Vec<String> {
    let set: BTreeSet<String> = summary.rows.values().flat_map(|m| m.keys().cloned()).collect();
    let mut v: Vec<String> = set.into_iter().collect();
    v.sort_by_key(|m| {
        (
            if m == "FB" {
                0
            } else if m == "NX_0" {
                1
            } else {
                2
            },
            m.clone(),
        )
    });
    v
}

fn max_n(summary: &Summary) -> usize {
    summary.rows.values().flat_map(|m| m.values()).flat_map(|m| m.values()).map(|c| c.n).max().unwrap_or(0)
}

/// A file-name-safe form of a label.
fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

fn results_section(ctx: &Labels, results: &[SelectionResults]) -> Section {
    let mut s = Section { title: "Results (mean ± 95% CI over seeds)".into(), ..Section::default() };
    for r in results {
        let swept = !r.summary.methods.is_empty();
        for mode in modes(&r.summary) {
            let mut header = vec!["method".to_string()];
            if swept {
                header.push("family".into());
            }
            header.extend(TABLE_METRICS.iter().map(|m| m.to_string()));
            header.push("n".into());
            let mut rows = Vec::new();
            for (method, by_mode) in &r.summary.rows {
                let Some(metrics) = by_mode.get(&mode) else { continue };
                let mut row = vec![method.clone()];
                if swept {
                    row.push(r.summary.method_info(method).family);
                }
                row.extend(TABLE_METRICS.iter().map(|m| metrics.get(*m).map(format_ci).unwrap_or_default()));
                row.push(metrics.values().map(|c| c.n).max().unwrap_or(0).to_string());
                rows.push(row);
            }
            let caption = ctx.subtitle(Some(&mode), Some(&r.selection), &[], max_n(&r.summary));
            s.blocks.push(Block::Table(Table { caption, header, rows }));
        }
    }
    s
}

fn pareto_section(
    ctx: &Labels,
    results: &[SelectionResults],
    reference: Reference,
) -> Result<(Section, Vec<(String, ParetoAnalysis)>)> {
    let mut s = Section { title: "Pareto frontier: utility vs 1 − Gini".into(), ..Section::default() };
    s.blocks.push(Block::Text(format!(
        "Each point is a method's seed mean with 95% CI whiskers; each family's non-dominated set is joined by a \
         staircase. Both axes are maximised. Hypervolume: the area dominated by a family's points above the \
         reference point, {reference} (units: utility × (1 − Gini)). A family's hypervolume pools its points and \
         grows with their number: compare it only between families with the same number of points; the best \
         single point's hypervolume (its own box) compares families of any size. Coverage C(A, B): share of B's \
         frontier weakly dominated by A's; A dominates B on the means when C(A, B) = 1 and C(B, A) < 1. The \
         verdict says \"A dominates B\" only when the 95% intervals support it: each point of B's frontier has a \
         point of A's dominating it on the means whose interval lies entirely above B's on one axis and not \
         entirely below on the other; otherwise \"A dominates B on the means; within the intervals\" (one seed: \
         \"(n = 1, no interval)\")."
    )));
    let mut all = Vec::new();
    for r in results {
        for mode in modes(&r.summary) {
            for utility in ["R_tra", "R_each"] {
                let Some(a) = frontier::analyse(&r.summary, &mode, utility, reference) else { continue };
                let sub = ctx.subtitle(Some(&mode), Some(&r.selection), &[], max_n(&r.summary));
                s.blocks.push(Block::Heading(format!("{utility}, mode {mode}, {} actions", r.selection)));
                s.blocks.push(Block::Plot {
                    name: format!("pareto_{}_{}_{utility}", slug(&r.selection), slug(&mode)),
                    chart: pareto_plot(&a, &sub)?,
                });
                let (u, f) = a.reference_point;
                let rows = a
                    .families
                    .iter()
                    .map(|f| {
                        let members: Vec<String> = f.front.iter().map(|&i| a.points[i].method.clone()).collect();
                        vec![
                            f.family.clone(),
                            f.size.to_string(),
                            members.join(", "),
                            format!("{:.4}", f.hypervolume),
                            a.points[f.best_point].method.clone(),
                            format!("{:.4}", f.best_point_hypervolume),
                        ]
                    })
                    .chain(std::iter::once(vec![
                        "(all methods)".into(),
                        a.points.len().to_string(),
                        a.overall_front.iter().map(|&i| a.points[i].method.clone()).collect::<Vec<_>>().join(", "),
                        format!("{:.4}", a.overall_hypervolume),
                        String::new(),
                        String::new(),
                    ]))
                    .collect();
                s.blocks.push(Block::Table(Table {
                    caption: format!(
                        "Frontier and hypervolume, {utility} vs 1 − Gini, reference ({u:.4}, {f:.4}); pooled \
                         hypervolumes compare only at equal point counts, best single points across all; {sub}"
                    ),
                    header: [
                        "family",
                        "points",
                        "non-dominated methods",
                        "hypervolume (pooled)",
                        "best single point",
                        "its hypervolume",
                    ]
                    .map(String::from)
                    .to_vec(),
                    rows,
                }));
                if !a.comparisons.is_empty() {
                    s.blocks.push(Block::Table(Table {
                        caption: format!("Frontier comparison, {utility} vs 1 − Gini; {sub}"),
                        header: vec!["A".into(), "B".into(), "C(A, B)".into(), "C(B, A)".into(), "verdict".into()],
                        rows: a
                            .comparisons
                            .iter()
                            .map(|c| {
                                vec![
                                    c.a.clone(),
                                    c.b.clone(),
                                    format!("{:.2}", c.coverage_ab),
                                    format!("{:.2}", c.coverage_ba),
                                    c.verdict(),
                                ]
                            })
                            .collect(),
                    }));
                }
                all.push((r.selection.clone(), a));
            }
        }
    }
    Ok((s, all))
}

fn family_colors<'a>(names: impl Iterator<Item = &'a String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for n in names {
        let next = out.len();
        out.entry(n.clone()).or_insert(next);
    }
    out
}

fn pareto_plot(a: &ParetoAnalysis, subtitle: &str) -> Result<Rendered> {
    let frame = Frame {
        title: format!("Pareto: {} vs 1 − Gini", a.utility),
        subtitle: subtitle.into(),
        x_label: format!("{} (higher is better)", a.utility),
        y_label: "1 − Gini (higher is fairer)".into(),
    };
    let mut series = Vec::new();
    for (c, f) in a.families.iter().enumerate() {
        let members: Vec<usize> = (0..a.points.len()).filter(|&i| a.points[i].family == f.family).collect();
        let xy = |i: usize| {
            let p = &a.points[i];
            Xy { x: p.utility.mean, y: p.fairness.mean, x_err: p.utility.half_width, y_err: p.fairness.half_width }
        };
        let mut pts = Series::scatter(&f.family, c, members.iter().map(|&i| xy(i)).collect());
        pts.labels = members.iter().map(|&i| a.points[i].label.clone()).collect();
        series.push(pts);
        if f.front.len() > 1 {
            let front = f.front.iter().map(|&i| Xy { x_err: 0.0, y_err: 0.0, ..xy(i) }).collect();
            series.push(Series {
                name: String::new(),
                markers: false,
                line: Line::Step,
                ..Series::scatter("", c, front)
            });
        }
    }
    chart::xy_chart(&frame, &series)
}

fn ablation_section(ctx: &Labels, results: &[SelectionResults]) -> Result<Section> {
    let mut s = Section { title: "Ablation: R_tra and Gini per method".into(), ..Section::default() };
    for r in results {
        let colors =
            family_colors(r.summary.rows.keys().map(|m| r.summary.method_info(m).family).collect::<Vec<_>>().iter());
        for mode in modes(&r.summary) {
            let sub = ctx.subtitle(Some(&mode), Some(&r.selection), &[], max_n(&r.summary));
            for (metric, note) in [("R_tra", "higher is better"), ("Gini", "lower is fairer")] {
                let bars: Vec<Bar> = r
                    .summary
                    .rows
                    .iter()
                    .filter_map(|(method, by_mode)| {
                        let c = by_mode.get(&mode)?.get(metric)?;
                        let color = colors[&r.summary.method_info(method).family];
                        Some(Bar { label: method.clone(), value: c.mean, err: c.half_width, color })
                    })
                    .collect();
                if bars.is_empty() {
                    continue;
                }
                let frame = Frame {
                    title: format!("{metric} per method ({note}), mean ± 95% CI"),
                    subtitle: sub.clone(),
                    x_label: metric.into(),
                    y_label: String::new(),
                };
                let name = format!("ablation_{}_{}_{metric}", slug(&r.selection), slug(&mode));
                s.blocks.push(Block::Plot { name, chart: chart::hbar_chart(&frame, &bars)? });
            }
        }
    }
    Ok(s)
}

/// Swept parameters whose last key ends in `steps` (denoiser steps T, distilled steps T').
fn steps_keys(summary: &Summary) -> Vec<String> {
    let keys: BTreeSet<String> = summary
        .methods
        .values()
        .flat_map(|m| m.params.keys())
        .filter(|k| k.rsplit('.').next().unwrap_or(k).ends_with("steps"))
        .cloned()
        .collect();
    keys.into_iter().collect()
}

fn sensitivity_section(ctx: &Labels, results: &[SelectionResults]) -> Result<Section> {
    let mut s = Section { title: "T-sensitivity (denoiser steps)".into(), ..Section::default() };
    let mut any = false;
    for r in results {
        for key in steps_keys(&r.summary) {
            any = true;
            // One line per family and setting of the other swept parameters.
            let mut lines: BTreeMap<String, Vec<(f64, String)>> = BTreeMap::new();
            for (method, info) in &r.summary.methods {
                let Some(t) = info.params.get(&key).and_then(|v| v.as_f64()) else { continue };
                let others: Vec<String> = info
                    .params
                    .iter()
                    .filter(|(k, _)| **k != key)
                    .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
                    .collect();
                let name = if others.is_empty() {
                    info.family.clone()
                } else {
                    format!("{} [{}]", info.family, others.join(","))
                };
                lines.entry(name).or_default().push((t, method.clone()));
            }
            for pts in lines.values_mut() {
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            for mode in modes(&r.summary) {
                let sub = ctx.subtitle(Some(&mode), Some(&r.selection), &[], max_n(&r.summary));
                let mut rows = Vec::new();
                for metric in ["R_tra", "Gini"] {
                    let series: Vec<Series> = lines
                        .iter()
                        .enumerate()
                        .map(|(c, (name, pts))| {
                            let xy = pts
                                .iter()
                                .filter_map(|(t, m)| {
                                    let ci = r.summary.rows.get(m)?.get(&mode)?.get(metric)?;
                                    Some(Xy { x: *t, y: ci.mean, x_err: 0.0, y_err: ci.half_width })
                                })
                                .collect();
                            Series { line: Line::Straight, ..Series::scatter(name, c, xy) }
                        })
                        .collect();
                    let frame = Frame {
                        title: format!("{metric} vs {key}"),
                        subtitle: sub.clone(),
                        x_label: key.clone(),
                        y_label: format!("{metric}, mean ± 95% CI"),
                    };
                    let name = format!("tsens_{}_{}_{}_{metric}", slug(&r.selection), slug(&mode), slug(&key));
                    s.blocks.push(Block::Plot { name, chart: chart::xy_chart(&frame, &series)? });
                }
                for (name, pts) in &lines {
                    for (t, m) in pts {
                        let cell = |metric: &str| {
                            r.summary
                                .rows
                                .get(m)
                                .and_then(|b| b.get(&mode))
                                .and_then(|x| x.get(metric))
                                .map(format_ci)
                                .unwrap_or_default()
                        };
                        rows.push(vec![name.clone(), format!("{t}"), cell("R_tra"), cell("Gini")]);
                    }
                }
                s.blocks.push(Block::Table(Table {
                    caption: format!("{key}: {sub}"),
                    header: vec!["line".into(), key.clone(), "R_tra".into(), "Gini".into()],
                    rows,
                }));
            }
        }
    }
    if !any {
        s.notes.push(
            "No swept parameter whose key ends in `steps` (e.g. `train.dsrm.denoiser.steps`): T-sensitivity omitted."
                .into(),
        );
    }
    Ok(s)
}

fn loop_section(ctx: &Labels, run_dir: &Path, curves: Option<Vec<rounds::LoopCurves>>) -> Result<Section> {
    let mut s = Section { title: "Feedback loop (rich-get-richer)".into(), ..Section::default() };
    let path = run_dir.join(LOOP_DIR);
    let curves = match curves {
        None => {
            s.notes.push(format!(
                "No {} folder: feedback-loop curves omitted (run `dsrm loop` with --out {}).",
                path.display(),
                path.display()
            ));
            return Ok(s);
        }
        Some(c) if c.is_empty() => {
            s.notes.push(format!("{} has no <method>/{ROUNDS_FILE}: feedback-loop curves omitted.", path.display()));
            return Ok(s);
        }
        Some(c) => c,
    };
    let seeds: Vec<u64> =
        curves.iter().flat_map(|c| c.seeds.iter().copied()).collect::<BTreeSet<_>>().into_iter().collect();
    // `loop/provenance.json`, when the loop wrote one, names its own data set and evaluation mode.
    let own = inputs::run_info(&path).ok().flatten();
    let mode = inputs::read_optional(&path.join("provenance.json"))
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("mode").and_then(|m| m.as_str()).map(String::from));
    let labels = Labels { info: own.as_ref().filter(|i| i.dataset.is_some()).unwrap_or(ctx.info) };
    let sub = labels.subtitle(Some(mode.as_deref().unwrap_or("not recorded")), None, &seeds, 0);
    for (metric, note) in [
        ("Gini", "lower is fairer"),
        ("LogGini", "of the accumulated log; lower is fairer"),
        ("Homogenisation", "lower is more diverse"),
        ("LongTailShare", "higher is fairer"),
        ("Coverage", "higher is fairer"),
        ("R_tra", "higher is better"),
        ("TrueUtility", "per step, current preferences"),
    ] {
        if curves.iter().all(|c| c.rounds.values().all(|m| !m.contains_key(metric))) {
            continue;
        }
        let series: Vec<Series> = curves
            .iter()
            .enumerate()
            .map(|(c, curve)| {
                let xy = curve
                    .rounds
                    .iter()
                    .filter_map(|(round, m)| {
                        m.get(metric).map(|ci| Xy { x: *round as f64, y: ci.mean, x_err: 0.0, y_err: ci.half_width })
                    })
                    .collect();
                Series { line: Line::Straight, band: true, ..Series::scatter(&curve.method, c, xy) }
            })
            .collect();
        let frame = Frame {
            title: format!("{metric} per round ({note})"),
            subtitle: sub.clone(),
            x_label: "round".into(),
            y_label: format!("{metric}, mean ± 95% CI"),
        };
        s.blocks.push(Block::Plot { name: format!("loop_{metric}"), chart: chart::xy_chart(&frame, &series)? });
    }
    let mut rows = Vec::new();
    for c in &curves {
        for (round, m) in
            [c.rounds.iter().next(), c.rounds.iter().next_back()].into_iter().flatten().collect::<BTreeMap<_, _>>()
        {
            let cell = |k: &str| m.get(k).map(format_ci).unwrap_or_default();
            rows.push(vec![
                c.method.clone(),
                round.to_string(),
                cell("Gini"),
                cell("LogGini"),
                cell("Homogenisation"),
                cell("LongTailShare"),
                cell("Coverage"),
                cell("R_tra"),
                cell("TrueUtility"),
                cell("LoggedUtility"),
                seeds_label(&c.seeds),
            ]);
        }
    }
    s.blocks.push(Block::Table(Table {
        caption: format!("Feedback loop, first and last round; {sub}"),
        header: [
            "method",
            "round",
            "Gini",
            "LogGini",
            "Homogenisation",
            "LongTailShare",
            "Coverage",
            "R_tra",
            "TrueUtility",
            "LoggedUtility",
            "seeds",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }));
    Ok(s)
}

/// Families grouped by their number of points, each group ranked by pooled hypervolume (largest first):
/// pooled hypervolumes are compared only within a group.
fn hypervolume_groups(a: &ParetoAnalysis) -> Vec<serde_json::Value> {
    let mut groups: BTreeMap<usize, Vec<&frontier::FamilyFront>> = BTreeMap::new();
    for f in &a.families {
        groups.entry(f.size).or_default().push(f);
    }
    groups
        .into_iter()
        .map(|(size, mut fams)| {
            fams.sort_by(|x, y| y.hypervolume.total_cmp(&x.hypervolume));
            serde_json::json!({
                "points": size,
                "ranking": fams.iter().map(|f| serde_json::json!({ "family": f.family, "hypervolume": f.hypervolume }))
                    .collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The Pareto numbers, machine-readable, with the reference used.
fn pareto_json(info: &RunInfo, analyses: &[(String, ParetoAnalysis)]) -> String {
    let items: Vec<serde_json::Value> = analyses
        .iter()
        .map(|(selection, a)| {
            serde_json::json!({
                "selection": selection,
                "mode": a.mode,
                "utility": a.utility,
                "fairness": "1 - Gini",
                "reference": a.reference.to_string(),
                "reference_point": [a.reference_point.0, a.reference_point.1],
                "points": a.points.iter().map(|p| serde_json::json!({
                    "method": p.method, "family": p.family,
                    "utility": p.utility.mean, "utility_ci95": p.utility.half_width,
                    "fairness": p.fairness.mean, "fairness_ci95": p.fairness.half_width, "n": p.utility.n,
                })).collect::<Vec<_>>(),
                "families": a.families.iter().map(|f| serde_json::json!({
                    "family": f.family,
                    "points": f.size,
                    "front": f.front.iter().map(|&i| &a.points[i].method).collect::<Vec<_>>(),
                    "hypervolume": f.hypervolume,
                    "best_point": a.points[f.best_point].method,
                    "best_point_hypervolume": f.best_point_hypervolume,
                })).collect::<Vec<_>>(),
                "hypervolume_by_points": hypervolume_groups(a),
                "overall_front": a.overall_front.iter().map(|&i| &a.points[i].method).collect::<Vec<_>>(),
                "overall_hypervolume": a.overall_hypervolume,
                "comparisons": a.comparisons.iter().map(|c| serde_json::json!({
                    "a": c.a, "b": c.b, "coverage_ab": c.coverage_ab, "coverage_ba": c.coverage_ba,
                    "relation": c.relation_key(), "relation_ci95": c.relation_ci95_key(), "verdict": c.verdict(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let doc = serde_json::json!({ "data": info.data_label(), "seeds": info.seeds, "analyses": items });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests;
