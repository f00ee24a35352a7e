//! The study's tables, as Markdown and CSV, each with its compute columns and the paper's figures beside:
//!
//! * `table2`: every method (not the sweep points) at every Max Len: Len, R_cum, R_each, AD_share, AD_item, Gini;
//! * `table3`: the ablation rows;
//! * `steps`: DSRM-HRL at each diffusion-step count T (the headline row is its default T);
//! * `table4`: training wall time per learned method for the paper's 20,000 episodes, extrapolated from each
//!   run's measured seconds per training episode, the DSRM pretraining apart;
//! * `sensitivity`: the θ_p rows.
//!
//! Values are mean ± 95% CI over seeds (mode NX_0, test users). The CSV gives `<metric>_mean` and
//! `<metric>_ci95` columns.

use super::accounting::{Compute, RowCompute};
use super::reference::{self, Table as Ref};
use super::schedule::ScheduleKind;
use super::verdicts::Verdict;
use super::{PaperFile, Part, MODE};
use anyhow::{Context, Result};
use dsrm_data::Dataset;
use dsrm_denoise::DenoiserConfig;
use dsrm_eval::summary::Summary;
use dsrm_metrics::MeanCi;
use std::path::Path;

/// The metrics of the paper's tables, as (study name, column title).
pub const METRICS: [(&str, &str); 6] = [
    ("Length", "Len"),
    ("R_tra", "R_cum"),
    ("R_each", "R_each"),
    ("AD_share", "AD_share"),
    ("AD_item", "AD_item"),
    ("Gini", "Gini"),
];

/// What every table is labelled with.
#[derive(Debug, Clone)]
pub struct Setting {
    pub dataset: Dataset,
    pub synthetic: bool,
    /// e.g. "SYNTHETIC KuaiRec-format data" or "kuairec".
    pub label: String,
    pub seeds: Vec<u64>,
    pub jobs: usize,
    pub file: PaperFile,
    /// The headline row's diffusion steps T (its DSRM's default), for the steps table.
    pub headline_steps: Option<usize>,
}

impl Setting {
    pub fn of(file: &PaperFile, jobs: usize, parts: &[(Part, Summary)]) -> Result<Self> {
        let provenance = parts
            .first()
            .map(|(p, _)| p.dir.join("provenance.json"))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .unwrap_or_default();
        let synthetic = provenance["synthetic"].as_bool().unwrap_or(file.data.dir.is_none());
        let files = provenance["data"]["files"].as_array().map(Vec::as_slice).unwrap_or_default();
        let read = files.iter().filter_map(|f| f["path"].as_str());
        let dataset = provenance["data"]["dataset"].as_str().unwrap_or_default();
        let label = match provenance["label"].as_str() {
            // Parts run before the label existed say "real data": the files they read decide.
            Some(_) if crate::provenance::without_official_log(dataset, read) => {
                crate::provenance::KUAIRAND_SAMPLE_LABEL.to_string()
            }
            Some(l) => l.to_string(),
            None if synthetic => "SYNTHETIC KuaiRec-format data".into(),
            None => format!("{:?}", file.data.dataset),
        };
        let headline = file.methods.iter().find(|m| m.name == file.headline).context("the headline method")?;
        let headline_steps = headline.train.as_ref().and_then(|t| t.dsrm.as_ref()).and_then(|d| match &d.denoiser {
            DenoiserConfig::Ddpm(c) => Some(c.schedule.steps),
            _ => None,
        });
        Ok(Self {
            dataset: file.data.dataset,
            synthetic,
            label,
            seeds: file.seeds.clone(),
            jobs,
            file: file.clone(),
            headline_steps,
        })
    }

    /// The schedule label of a row: "equal", "own schedule" or "—" (no training); a row whose learner adds a
    /// state encoder of its own beside the tracker every row reads (SAC4IR's) says so, e.g. "equal; own
    /// attention encoder".
    fn schedule(&self, family: &str) -> String {
        let Some(m) = self.file.methods.iter().find(|m| m.name == family) else { return "equal".into() };
        let Some(train) = &m.train else { return "—".into() };
        let schedule = if m.schedule == Some(ScheduleKind::Own) { "own schedule" } else { "equal" };
        match train.algorithm.own_encoder() {
            Some(encoder) => format!("{schedule}; own {encoder} encoder"),
            None => schedule.into(),
        }
    }

    /// A line naming the data, for every table's title.
    pub fn data_line(&self) -> String {
        if self.synthetic {
            format!(
                "{} (the paper's figures beside are KuaiRec's: not comparable, shown for orientation only)",
                self.label
            )
        } else {
            self.label.clone()
        }
    }
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Ci(MeanCi),
    Num(f64),
    Missing,
}

/// A written table.
#[derive(Debug, Clone)]
pub struct Table {
    /// File stem under `tables/`.
    pub name: String,
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    pub notes: Vec<String>,
}

impl Table {
    pub fn markdown(&self) -> String {
        let mut s =
            format!("## {}\n\n| {} |\n|{}\n", self.title, self.header.join(" | "), "---|".repeat(self.header.len()));
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(show).collect();
            s += &format!("| {} |\n", cells.join(" | "));
        }
        for n in &self.notes {
            s += &format!("\n{n}\n");
        }
        s
    }

    /// CSV: a `Ci` column becomes `<title>_mean,<title>_ci95`; missing values are empty.
    pub fn csv(&self) -> String {
        let ci_columns: Vec<bool> =
            (0..self.header.len()).map(|i| self.rows.iter().any(|r| matches!(r.get(i), Some(Cell::Ci(_))))).collect();
        let mut head = Vec::new();
        for (h, &ci) in self.header.iter().zip(&ci_columns) {
            let h = csv_text(h);
            if ci {
                head.push(format!("{h}_mean"));
                head.push(format!("{h}_ci95"));
            } else {
                head.push(h);
            }
        }
        let mut s = head.join(",") + "\n";
        for row in &self.rows {
            let mut cells = Vec::new();
            for (c, &ci) in row.iter().zip(&ci_columns) {
                match c {
                    Cell::Ci(v) => {
                        cells.push(format!("{}", v.mean));
                        cells.push(if v.n >= 2 { format!("{}", v.half_width) } else { String::new() });
                    }
                    other => {
                        cells.push(match other {
                            Cell::Text(t) => csv_text(t),
                            Cell::Num(x) => format!("{x}"),
                            _ => String::new(),
                        });
                        if ci {
                            cells.push(String::new());
                        }
                    }
                }
            }
            s += &(cells.join(",") + "\n");
        }
        s
    }
}

fn csv_text(t: &str) -> String {
    if t.contains([',', '"', '\n']) {
        format!("\"{}\"", t.replace('"', "\"\""))
    } else {
        t.to_string()
    }
}

fn show(c: &Cell) -> String {
    match c {
        Cell::Text(t) => t.replace('|', "\\|"),
        Cell::Ci(v) => format!("{v:.3}"),
        Cell::Num(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Cell::Num(x) => format!("{x:.3}"),
        Cell::Missing => "—".into(),
    }
}

fn part_name(p: &Part) -> String {
    p.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The rows of a summary that are methods as written (no sweep points), in the study file's order.
fn plain_rows(setting: &Setting, summary: &Summary) -> Vec<String> {
    setting
        .file
        .methods
        .iter()
        .map(|m| m.name.clone())
        .filter(|n| summary.rows.contains_key(n) && !summary.methods.contains_key(n))
        .collect()
}

fn metric(summary: &Summary, row: &str, name: &str) -> Cell {
    summary.rows.get(row).and_then(|m| m.get(MODE)).and_then(|m| m.get(name)).map_or(Cell::Missing, |v| Cell::Ci(*v))
}

fn compute_cells(compute: &Compute, part: &str, row: &str) -> [Cell; 2] {
    match compute.get(&(part.to_string(), row.to_string())) {
        Some(RowCompute { mean, .. }) => [Cell::Num(mean.env_steps.round()), Cell::Num(mean.grad_updates.round())],
        None => [Cell::Missing, Cell::Missing],
    }
}

fn paper(setting: &Setting, len: usize, table: Ref, row: &str, metric: &str) -> Cell {
    reference::lookup(setting.dataset, len, table, row, metric).map_or(Cell::Missing, Cell::Num)
}

const COMPUTE_NOTE: &str = "env steps and updates: means over the row's runs, measured (`timing.jsonl`); \
    heuristics train nothing. Learned rows on the equal schedule get the same environment steps and the same \
    gradient updates per step (paced; both HRL levels count); BCQ takes no environment step and makes the same \
    updates on logged minibatches. Each learned row tunes one setting on the validation users: the reported \
    epoch. World models: MF for every online row; DORL alone reads DORL's DeepFM ensemble. Networks differ in \
    size (HRL [256, 64] per level, flat agents [64, 64]): equal updates, not equal FLOPs.";

/// Every table, written to `out/tables/`; returns them in order.
pub fn write_all(out: &Path, setting: &Setting, parts: &[(Part, Summary)], compute: &Compute) -> Result<Vec<Table>> {
    let mains: Vec<&(Part, Summary)> = parts.iter().filter(|(p, _)| p.threshold.is_none()).collect();
    let mut tables = vec![
        main_table(setting, &mains, compute, "table2", Ref::Main, None),
        main_table(setting, &mains, compute, "table3", Ref::Ablation, Some(&setting.file.ablation)),
        steps_table(setting, &mains, compute),
        cost_table(setting, &mains, compute),
        study_cost_table(setting, parts, compute),
    ];
    if let Some(t) = sensitivity_table(setting, parts) {
        tables.push(t);
    }
    for t in &tables {
        dsrm_files::write_atomic(&out.join("tables").join(format!("{}.md", t.name)), t.markdown().as_bytes())?;
        dsrm_files::write_atomic(&out.join("tables").join(format!("{}.csv", t.name)), t.csv().as_bytes())?;
    }
    Ok(tables)
}

fn main_table(
    setting: &Setting,
    parts: &[&(Part, Summary)],
    compute: &Compute,
    name: &str,
    table: Ref,
    only: Option<&Vec<String>>,
) -> Table {
    let mut header: Vec<String> = ["Max Len", "method", "schedule"].map(String::from).to_vec();
    header.extend(METRICS.iter().map(|(_, t)| t.to_string()));
    header.extend(["env steps", "updates", "paper Len", "paper R_cum", "paper R_each", "paper AD"].map(String::from));
    let mut rows = Vec::new();
    let mut present = Vec::new();
    let mut filtered = Vec::new();
    for (part, summary) in parts {
        let names: Vec<String> = match only {
            Some(list) => list.iter().filter(|n| summary.rows.contains_key(*n)).cloned().collect(),
            None => plain_rows(setting, summary),
        };
        for row in names {
            let mut cells =
                vec![Cell::Num(part.max_len as f64), Cell::Text(row.clone()), Cell::Text(setting.schedule(&row))];
            cells.extend(METRICS.iter().map(|(m, _)| metric(summary, &row, m)));
            cells.extend(compute_cells(compute, &part_name(part), &row));
            for m in ["Length", "R_tra", "R_each", "AD"] {
                cells.push(paper(setting, part.max_len, table, &row, m));
            }
            if let Some(c) = compute.get(&(part_name(part), row.clone())).filter(|c| c.mean.filter_read > 0.0) {
                let share = 100.0 * c.mean.filter_dropped / c.mean.filter_read;
                filtered.push(format!("{row} {share:.2}% (Max Len {})", part.max_len));
            }
            present.push(row);
            rows.push(cells);
        }
    }
    let what = if table == Ref::Main { "Table 2: methods" } else { "Table 3: ablations" };
    let mut notes = vec![
        format!(
            "Mode {MODE}, test users, mean ± 95% CI over seeds {:?}. {COMPUTE_NOTE} The paper's AD has no public \
             formula; AD_share and AD_item are the two readings (docs/protocol.md §12.2).",
            setting.seeds
        ),
        format!("Data: {}.", setting.data_line()),
    ];
    if !filtered.is_empty() {
        notes.push(format!(
            "History filters: share of the interactions their states read that they dropped (all epochs, \
             `history_filter_usage.jsonl`; 0% leaves the row identical to its unfiltered twin): {}.",
            filtered.join("; ")
        ));
    }
    let missing = reference::missing_rows(setting.dataset, table, &present);
    if !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .map(|r| format!("{} {} = {} (Max Len {})", r.paper_row, r.metric, r.value, r.max_len))
            .collect();
        notes.push(format!("The paper also reports rows this study has not run yet: {}.", list.join("; ")));
    }
    Table { name: name.into(), title: format!("{what} — {}", setting.label), header, rows, notes }
}

fn steps_table(setting: &Setting, parts: &[&(Part, Summary)], compute: &Compute) -> Table {
    let mut header: Vec<String> = ["Max Len", "T", "method"].map(String::from).to_vec();
    header.extend(METRICS.iter().map(|(_, t)| t.to_string()));
    header.extend(["env steps", "updates", "DSRM pretraining s", "paper Len"].map(String::from));
    let mut rows = Vec::new();
    for (part, summary) in parts {
        let mut at: Vec<(usize, String)> = Vec::new();
        if let (Some(t), true) = (setting.headline_steps, summary.rows.contains_key(&setting.file.headline)) {
            at.push((t, setting.file.headline.clone()));
        }
        for (row, info) in &summary.methods {
            if info.family == setting.file.steps_family {
                if let Some(t) = info.params.values().next().and_then(serde_json::Value::as_u64) {
                    at.push((t as usize, row.clone()));
                }
            }
        }
        if at.len() < 2 {
            continue;
        }
        at.sort();
        for (t, row) in at {
            let mut cells = vec![Cell::Num(part.max_len as f64), Cell::Num(t as f64), Cell::Text(row.clone())];
            cells.extend(METRICS.iter().map(|(m, _)| metric(summary, &row, m)));
            cells.extend(compute_cells(compute, &part_name(part), &row));
            cells.push(
                compute
                    .get(&(part_name(part), row.clone()))
                    .map_or(Cell::Missing, |c| Cell::Num((c.mean.dsrm_s * 10.0).round() / 10.0)),
            );
            cells.push(reference::lookup_steps(setting.dataset, part.max_len, t).map_or(Cell::Missing, Cell::Num));
            rows.push(cells);
        }
    }
    Table {
        name: "steps".into(),
        title: format!("Diffusion steps T of DSRM-HRL — {}", setting.label),
        header,
        rows,
        notes: vec![
            format!(
                "Mode {MODE}, test users, mean ± 95% CI over seeds {:?}; every row has the same RL budget. The DSRM \
                 pretraining (seconds, per run) is counted apart from it. Purification runs all T reverse steps.",
                setting.seeds
            ),
            format!("Data: {}.", setting.data_line()),
        ],
    }
}

fn cost_table(setting: &Setting, parts: &[&(Part, Summary)], compute: &Compute) -> Table {
    let episodes = setting.file.budget.paper_episodes as f64;
    let header = [
        "Max Len",
        "method",
        "schedule",
        "train episodes per run",
        "train s per run",
        "env steps/s",
        &format!("s per {} episodes", setting.file.budget.paper_episodes),
        "DSRM pretraining s",
        "paper s",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::new();
    for (part, summary) in parts.iter().take(1) {
        for row in plain_rows(setting, summary) {
            let Some(c) = compute.get(&(part_name(part), row.clone())) else { continue };
            let m = &c.mean;
            let per_episode = (m.train_episodes > 0.0).then(|| m.train_s / m.train_episodes);
            rows.push(vec![
                Cell::Num(part.max_len as f64),
                Cell::Text(row.clone()),
                Cell::Text(setting.schedule(&row)),
                Cell::Num(m.train_episodes.round()),
                Cell::Num((m.train_s * 100.0).round() / 100.0),
                if m.train_s > 0.0 && m.env_steps > 0.0 {
                    Cell::Num((m.env_steps / m.train_s).round())
                } else {
                    Cell::Missing
                },
                per_episode.map_or(Cell::Missing, |s| Cell::Num((s * episodes).round())),
                Cell::Num((m.dsrm_s * 10.0).round() / 10.0),
                paper(setting, part.max_len, Ref::Cost, &row, "seconds"),
            ]);
        }
    }
    let idle = if setting.jobs == 1 {
        "one job at a time".to_string()
    } else {
        format!("{} jobs at a time (not an idle machine: rerun with --jobs 1 for Table 4's conditions)", setting.jobs)
    };
    Table {
        name: "table4".into(),
        title: format!("Table 4: training cost — {}", setting.label),
        header,
        rows,
        notes: vec![
            format!(
                "Seconds of collection and updates (evaluation excluded), measured per run on this machine with \
                 {idle}; \"s per {} episodes\" extrapolates each run's measured seconds per training episode. \
                 Offline rows (BCQ) play no episode. DSRM pretraining is counted apart. The paper's seconds are \
                 on its own hardware.",
                setting.file.budget.paper_episodes
            ),
            format!("Data: {}.", setting.data_line()),
        ],
    }
}

/// What the study's finished learned runs cost, per part and in all: job-hours (one job = one training
/// process on one core) of training, evaluation and DSRM pretraining, summed over every run, sweep points and
/// the sensitivity parts included, and the runs' CPU hours where they recorded them. The measured side of the
/// study's wall-time goal.
fn study_cost_table(setting: &Setting, parts: &[(Part, Summary)], compute: &Compute) -> Table {
    let header = [
        "part",
        "Max Len",
        "learned runs",
        "training h",
        "evaluation h",
        "DSRM pretraining h",
        "job-hours",
        "CPU-timed runs",
        "CPU h",
    ]
    .map(String::from)
    .to_vec();
    let hours = |s: f64| Cell::Num((s / 36.0).round() / 100.0);
    // Sums over runs: (runs, training s, evaluation s, DSRM s, CPU-timed runs, CPU s).
    type Sums = (usize, f64, f64, f64, usize, f64);
    let add = |a: Sums, b: Sums| (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3, a.4 + b.4, a.5 + b.5);
    let cells = |(runs, train, eval, dsrm, cpu_runs, cpu): Sums| {
        vec![
            Cell::Num(runs as f64),
            hours(train),
            hours(eval),
            hours(dsrm),
            hours(train + eval + dsrm),
            Cell::Num(cpu_runs as f64),
            if cpu_runs == 0 { Cell::Missing } else { hours(cpu) },
        ]
    };
    let mut rows = Vec::new();
    let mut all: Sums = (0, 0.0, 0.0, 0.0, 0, 0.0);
    for (part, _) in parts {
        let name = part_name(part);
        let mut sum: Sums = (0, 0.0, 0.0, 0.0, 0, 0.0);
        for (_, c) in compute.iter().filter(|((p, _), _)| *p == name) {
            let n = c.runs as f64;
            let eval = (c.mean.wall_s - c.mean.train_s).max(0.0);
            let row = (
                c.runs,
                c.mean.train_s * n,
                eval * n,
                c.mean.dsrm_spent_s * n,
                c.cpu_runs,
                c.mean.cpu_s * c.cpu_runs as f64,
            );
            sum = add(sum, row);
        }
        if sum.0 == 0 {
            continue;
        }
        all = add(all, sum);
        rows.push([vec![Cell::Text(name), Cell::Num(part.max_len as f64)], cells(sum)].concat());
    }
    if rows.len() > 1 {
        rows.push([vec![Cell::Text("all".into()), Cell::Missing], cells(all)].concat());
    }
    let total = all.1 + all.2 + all.3;
    let jobs = setting.jobs.max(1) as f64;
    let at_jobs = if setting.jobs == 1 { "1 job".to_string() } else { format!("{} jobs", setting.jobs) };
    let mut cpu_note = format!(
        "CPU h: the CPU seconds of the runs' processes (`cpu_s` of `timing.jsonl`: user + system, every thread, \
         each process's set-up and DSRM pretraining included), which unlike the wall-clock columns do not grow \
         when jobs share the cores: {} of the {} runs recorded them (runs made before the field existed did not).",
        all.4, all.0
    );
    if all.4 > 0 {
        cpu_note.push_str(&format!(
            " At {at_jobs} on as many cores, the timed runs need at least {:.2} h of elapsed time.",
            all.5 / 3600.0 / jobs
        ));
    }
    Table {
        name: "cost".into(),
        title: format!("Study cost: measured job-hours — {}", setting.label),
        header,
        rows,
        notes: vec![
            format!(
                "Summed over the finished learned runs (`timing.jsonl`: each epoch's training and evaluation; \
                 `dsrm_timing.json`: the DSRM stage, once per stage: a run that reused a stage trained by another \
                 row adds none), as measured on this machine (per-run seconds grow with the \
                 load and through pauses). Not counted: each run's set-up (loading the data, the MF world model), the completion of the \
                 ground truth, DORL's DeepFM ensemble and the heuristic rows. At {at_jobs} at a time on as many \
                 cores, the finished runs alone take at least {:.2} h of elapsed time.",
                total / 3600.0 / jobs
            ),
            cpu_note,
            format!("Data: {}.", setting.data_line()),
        ],
    }
}

fn sensitivity_table(setting: &Setting, parts: &[(Part, Summary)]) -> Option<Table> {
    let default = parts.iter().find(|(p, _)| p.threshold.is_none() && p.max_len == 30)?;
    let others: Vec<&(Part, Summary)> = parts.iter().filter(|(p, _)| p.threshold.is_some()).collect();
    if others.is_empty() {
        return None;
    }
    let mut at: Vec<(u32, &(Part, Summary))> = others.iter().map(|ps| (ps.0.threshold.unwrap_or(1), *ps)).collect();
    let default_theta = dsrm_sim::Preset::DsrmHrlPaper.settings().popularity_rule.map_or(1, |p| p.threshold);
    at.push((default_theta, default));
    at.sort_by_key(|(t, _)| *t);
    let mut header: Vec<String> = ["θ_p", "method"].map(String::from).to_vec();
    header.extend(METRICS.iter().map(|(_, t)| t.to_string()));
    let mut rows = Vec::new();
    for method in &setting.file.sensitivity.methods {
        for (theta, (_, summary)) in &at {
            if !summary.rows.contains_key(method) {
                continue;
            }
            let mut cells = vec![Cell::Num(f64::from(*theta)), Cell::Text(method.clone())];
            cells.extend(METRICS.iter().map(|(m, _)| metric(summary, method, m)));
            rows.push(cells);
        }
    }
    Some(Table {
        name: "sensitivity".into(),
        title: format!("Sensitivity to θ_p (Max Len 30) — {}", setting.label),
        header,
        rows,
        notes: vec![format!(
            "θ_p = {default_theta} is the default, fixed before any result; the other values are reported, never \
             used to choose anything. Mode {MODE}, test users, mean ± 95% CI over seeds {:?}. Data: {}.",
            setting.seeds,
            setting.data_line()
        )],
    })
}

/// `out/report.md`: the setting, every table, the verdicts and the plots, in one page.
pub fn write_report(
    out: &Path,
    setting: &Setting,
    tables: &[Table],
    verdicts: &[Verdict],
    partial: &[String],
) -> Result<()> {
    let b = &setting.file.budget;
    let mut s = format!("# dsrm study paper — {}\n\n", setting.label);
    for line in partial {
        s += &format!("**{line}.**\n\n");
    }
    if setting.synthetic {
        s += "**These results are on SYNTHETIC data in KuaiRec format, not KuaiRec results.** The paper's figures \
              beside them are KuaiRec's and are not comparable.\n\n";
    }
    s += &format!(
        "- Seeds {:?}; Max Len {:?}; mode {MODE}; test users (the validation users choose each run's epoch).\n\
         - Budget per learned row: {} environment steps in {} epochs, {} gradient updates per 1,000 steps on \
         minibatches of {} (paced; rows marked \"own schedule\" keep their own passes and batch). Every learned row \
         reads the same state tracker; rows marked \"own … encoder\" add an encoder of their own beside it.\n\
         - Code version {}; study file `study.toml`; each part's experiment file in `configs/`.\n\n",
        setting.seeds,
        setting.file.max_len,
        b.env_steps,
        b.epochs,
        b.updates_per_1k_steps,
        b.batch_size,
        dsrm_train::CODE_VERSION
    );
    for t in tables {
        s += &t.markdown();
        s += &format!("\nFiles: `tables/{0}.md`, `tables/{0}.csv`.\n\n", t.name);
    }
    s += &super::verdicts::markdown(verdicts);
    s += "\n## Plots\n\n";
    let mut plots: Vec<String> = std::fs::read_dir(out.join("plots"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    plots.retain(|p| p.ends_with(".png"));
    plots.sort();
    for p in plots {
        s += &format!("![{p}](plots/{p})\n\n");
    }
    s += "Each part's full report (every metric and mode): `max-len-*/report/report.html`.\n";
    dsrm_files::write_atomic(&out.join("report.md"), s.as_bytes())?;
    Ok(())
}
