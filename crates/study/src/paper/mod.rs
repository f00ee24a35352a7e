//! `dsrm study paper`: the paper's protocol as one resumable command (`docs/protocol.md` §12).
//!
//! ```text
//! file  <- configs/study/paper.toml (compiled in) or --config; --smoke applies its [smoke] table
//! for each Max Len L:                        (presets dsrm-hrl-paper / dsrm-hrl-paper-50)
//!     methods <- the file's methods at L, each learned one given the equal-compute budget (schedule.rs)
//!     RUN/max-len-L/  <- dsrm experiment (methods x seeds; resumable)
//! for each extra θ_p of the sensitivity:     (Max Len 30, a few rows)
//!     RUN/theta-p-θ/  <- dsrm experiment
//! RUN/tables/     <- table2, table3, steps, table4, cost, sensitivity (.md, .csv), compute per row and the study's
//!                    job-hours (accounting.rs)
//! RUN/verdicts.*  <- the paper's claims, one-sided Welch tests, Holm-corrected per table (verdicts.rs)
//! RUN/plots/      <- Len and R_cum against AD_share and 1 − Gini (plots.rs)
//! RUN/report.md   <- all of it with the paper's reported figures beside (reference.rs); each experiment's own
//!                    report in RUN/max-len-L/report/
//! ```
//!
//! Every table reads mode NX_0 (no repeated item, the session ends only by the user's leaving or Max Len) and
//! the first selection of `[eval]`, on the test users of each seed.

pub mod accounting;
pub mod plots;
pub mod reference;
pub mod schedule;
pub mod tables;
pub mod verdicts;

use crate::config::DataConfig;
use crate::experiment::{self, ExperimentFile, ExperimentRequest, MethodConfig, StageSeeds};
use crate::progress::{note, Progress};
use crate::world_model::WorldModelConfig;
use anyhow::{bail, Context, Result};
use dsrm_data::Dataset;
use dsrm_eval::summary::Summary;
use dsrm_eval::EvalConfig;
use dsrm_policy::heuristics::HeuristicKind;
use dsrm_sim::world::WorldConfig;
use dsrm_sim::{EnvConfig, Preset};
use dsrm_train::TrainConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The study as shipped (`configs/study/paper.toml`), compiled in so the binary runs anywhere.
pub const PAPER_CONFIG: &str = include_str!("../../../../configs/study/paper.toml");

/// The mode every table reads.
pub const MODE: &str = "NX_0";

/// The study file. Unknown keys are errors (with line and column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperFile {
    pub seeds: Vec<u64>,
    pub max_len: Vec<usize>,
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// The row the paper's claims are about.
    pub headline: String,
    /// Table 3's rows, in order.
    pub ablation: Vec<String>,
    /// The family of the diffusion-steps table (the headline row is its default T).
    pub steps_family: String,
    /// "DSRM on a baseline" (issue 15 item 7; the paper adds the DSRM to DNaIR alone): pairs [row with the
    /// DSRM stage, the same method without]; each pair's claims (the DSRM raises Len and R_cum and lowers
    /// AD_share) form their own Holm family, and the rows with the stage stay out of Table 2's claims.
    #[serde(default)]
    pub dsrm_on: Vec<[String; 2]>,
    #[serde(default)]
    pub data: DataConfig,
    /// How the data set becomes a world (Coat's window and distance, ...); the environment is the paper's.
    #[serde(default)]
    pub world: WorldConfig,
    #[serde(default)]
    pub eval: EvalConfig,
    pub budget: schedule::Budget,
    pub sensitivity: Sensitivity,
    /// What `--smoke` replaces (a file without it cannot run as a smoke test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoke: Option<Smoke>,
    #[serde(default)]
    pub world_model: WorldModelConfig,
    /// Whose seeds the rows' DSRM stages take (`run` in the shipped study: each seed trains its own stage).
    #[serde(default, skip_serializing_if = "StageSeeds::is_fixed")]
    pub stage_seeds: StageSeeds,
    pub methods: Vec<PaperMethod>,
}

fn default_validation_fraction() -> f64 {
    0.2
}

/// `[sensitivity]`: θ_p values besides the preset's, and the rows run at each (Max Len 30).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensitivity {
    pub thresholds: Vec<u32>,
    pub methods: Vec<String>,
}

/// `[smoke]`: what `--smoke` replaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smoke {
    pub seeds: Vec<u64>,
    pub max_len: Vec<usize>,
    pub synthetic_size: String,
    pub env_steps: u64,
    pub epochs: usize,
    pub eval_episodes: usize,
    pub parallel_envs: usize,
    pub thresholds: Vec<u32>,
    /// Dotted paths set in every method that has the parent table.
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
}

/// One row family of the study: a method of `dsrm experiment` plus where it runs and on what schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperMethod {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heuristic: Option<HeuristicKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<TrainConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world_model: Option<WorldModelConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<BTreeMap<String, Vec<toml::Value>>>,
    /// `"own"`: keep the method's own passes and batch (labelled); default: the study's equal-compute schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<schedule::ScheduleKind>,
    /// Only at these Max Lens (default: all of the study's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<Vec<usize>>,
}

impl PaperFile {
    /// Parses a study file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let file: PaperFile = toml::from_str(text).with_context(|| format!("study file {origin}"))?;
        file.check().with_context(|| format!("study file {origin}"))?;
        Ok(file)
    }

    fn check(&self) -> Result<()> {
        if self.seeds.is_empty() || self.max_len.is_empty() || self.methods.is_empty() {
            bail!("needs at least one seed, one max_len and one method");
        }
        if let Some(l) = self.max_len.iter().find(|&&l| l == 0) {
            bail!("max_len = {l}: needs at least 1");
        }
        let names: Vec<&str> = self.methods.iter().map(|m| m.name.as_str()).collect();
        let pairs = self.dsrm_on.iter().flatten();
        for wanted in self
            .ablation
            .iter()
            .chain([&self.headline, &self.steps_family])
            .chain(&self.sensitivity.methods)
            .chain(pairs)
        {
            if !names.contains(&wanted.as_str()) {
                bail!("{wanted:?} is named in the tables but is no method of the file");
            }
        }
        self.budget.check()?;
        Ok(())
    }

    /// The `--smoke` version: the `[smoke]` table's data, seeds, Max Lens, budget and settings.
    pub fn smoke(mut self) -> Result<Self> {
        let s = self.smoke.clone().context("--smoke: the study file has no [smoke] table")?;
        self.seeds = s.seeds;
        self.max_len = s.max_len;
        self.data.synthetic_size = s.synthetic_size;
        self.budget.env_steps = s.env_steps;
        self.budget.epochs = s.epochs;
        self.eval.episodes = s.eval_episodes;
        self.sensitivity.thresholds = s.thresholds;
        for m in &mut self.methods {
            if let Some(t) = &mut m.train {
                t.parallel_envs = s.parallel_envs;
            }
            schedule::set_present(m, &s.set).with_context(|| format!("[smoke] set, method {:?}", m.name))?;
        }
        Ok(self)
    }

    /// The methods that run at Max Len `len`, as `dsrm experiment` methods with the budget applied.
    pub fn methods_at(&self, len: usize, only: Option<&[String]>) -> Result<Vec<MethodConfig>> {
        self.methods
            .iter()
            .filter(|m| m.max_len.as_ref().is_none_or(|l| l.contains(&len)))
            .filter(|m| only.is_none_or(|names| names.contains(&m.name)))
            .map(|m| schedule::apply(m, &self.budget).with_context(|| format!("method {:?}", m.name)))
            .collect()
    }

    /// The `dsrm experiment` file of one part of the study.
    pub fn experiment(&self, env: EnvConfig, methods: Vec<MethodConfig>) -> ExperimentFile {
        ExperimentFile {
            seeds: self.seeds.clone(),
            data: self.data.clone(),
            env,
            world: self.world.clone(),
            eval: self.eval.clone(),
            world_model: self.world_model.clone(),
            heuristics: Default::default(),
            validation_fraction: self.validation_fraction,
            stage_seeds: self.stage_seeds,
            methods,
        }
    }
}

/// The environment at Max Len `len`: the paper's presets (30, 50), or `dsrm-hrl-paper` with that cap.
pub fn env_at(len: usize) -> EnvConfig {
    match len {
        30 => EnvConfig::from(Preset::DsrmHrlPaper),
        50 => EnvConfig::from(Preset::DsrmHrlPaper50),
        other => EnvConfig { max_turn: Some(other), ..EnvConfig::from(Preset::DsrmHrlPaper) },
    }
}

/// How to run the study (the flags of `dsrm study paper`).
#[derive(Debug, Clone)]
pub struct PaperRequest {
    /// A study file instead of the compiled-in `configs/study/paper.toml`.
    pub config: Option<PathBuf>,
    pub out: PathBuf,
    /// The data set's directory; `None`: the file's data (by default the cached synthetic KuaiRec).
    pub data: Option<PathBuf>,
    pub dataset: Option<Dataset>,
    pub max_len: Option<Vec<usize>>,
    pub seeds: Option<Vec<u64>>,
    pub jobs: Option<usize>,
    pub smoke: bool,
    /// Only rebuild the tables, verdicts, plots and report from the parts' finished results (no training;
    /// the runs keep the code version they were made with, which their folders record).
    pub tables_only: bool,
    /// Train only these parts (`max-len-30`, `theta-p-0`, ...; all of the run's when `None`); the tables read
    /// every part, finished or not.
    pub parts: Option<Vec<String>>,
    /// The `dsrm` executable whose `dsrm train --resume` children train the learned rows.
    pub train_exe: PathBuf,
}

/// One experiment of the study: its directory under the run, and what it varies.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub dir: PathBuf,
    pub max_len: usize,
    /// θ_p when it differs from the preset's.
    pub threshold: Option<u32>,
}

/// What the study wrote, for the CLI to print.
#[derive(Debug)]
pub struct PaperOutcome {
    pub out: PathBuf,
    pub tables: Vec<tables::Table>,
    pub verdicts: Vec<verdicts::Verdict>,
    pub notes: Vec<String>,
}

/// The study file of `req`, smoke and command-line replacements applied.
pub fn load(req: &PaperRequest) -> Result<PaperFile> {
    let mut file = match &req.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            PaperFile::parse(&text, &path.display().to_string())?
        }
        None => PaperFile::parse(PAPER_CONFIG, "configs/study/paper.toml (built in)")?,
    };
    if req.smoke {
        file = file.smoke()?;
    }
    if let Some(dataset) = req.dataset {
        file.data.dataset = dataset;
    }
    if let Some(dir) = &req.data {
        file.data.dir = Some(dir.clone());
    }
    if let Some(seeds) = &req.seeds {
        if seeds.is_empty() {
            bail!("--seeds needs at least one seed");
        }
        file.seeds = seeds.clone();
    }
    if let Some(lens) = &req.max_len {
        if lens.is_empty() || lens.contains(&0) {
            bail!("--max-len needs one or more lengths >= 1, e.g. 30,50");
        }
        file.max_len = lens.clone();
    }
    file.check()?;
    Ok(file)
}

/// Runs (or resumes) the study of `req`.
pub fn run(req: &PaperRequest, progress: Progress) -> Result<PaperOutcome> {
    let out = &req.out;
    let saved = out.join("study.toml");
    let mut notes_saved = Vec::new();
    // `file` lists every part the tables read; `run_lens` the Max Lens this call trains (none with --tables-only).
    let (file, run_lens) = if req.tables_only {
        // The study as it ran, not as today's flags would make it.
        let text = std::fs::read_to_string(&saved)
            .with_context(|| format!("--tables-only: reading {} (run the study first)", saved.display()))?;
        (PaperFile::parse(&text, &saved.display().to_string())?, Vec::new())
    } else {
        let requested = load(req)?;
        let before = std::fs::read_to_string(&saved).ok().and_then(|t| PaperFile::parse(&t, "").ok());
        let (file, note) = merge_saved(before, &requested);
        notes_saved.extend(note);
        std::fs::create_dir_all(out.join("configs")).with_context(|| format!("creating {}", out.display()))?;
        dsrm_files::write_atomic(&saved, toml::to_string_pretty(&file)?.as_bytes())?;
        (file, requested.max_len)
    };
    for line in &notes_saved {
        note(progress, line.clone());
    }
    let jobs = req.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);

    let mut parts = Vec::new();
    for &len in &file.max_len {
        parts.push((Part { dir: out.join(format!("max-len-{len}")), max_len: len, threshold: None }, None));
    }
    if file.max_len.contains(&30) {
        for &theta in &file.sensitivity.thresholds {
            let dir = out.join(format!("theta-p-{theta}"));
            parts.push((Part { dir, max_len: 30, threshold: Some(theta) }, Some(file.sensitivity.methods.clone())));
        }
    }
    let chosen = chosen_parts(req.parts.as_deref(), &parts, &run_lens)?;
    let trains = |p: &Part| chosen.contains(&p.dir);
    for (part, only) in parts.iter().filter(|(p, _)| trains(p)) {
        let mut env = env_at(part.max_len);
        env.popularity_threshold = part.threshold;
        let experiment = file.experiment(env, file.methods_at(part.max_len, only.as_deref())?);
        let name = part.dir.file_name().expect("a named folder").to_string_lossy().into_owned();
        let config = out.join("configs").join(format!("{name}.toml"));
        dsrm_files::write_atomic(&config, toml::to_string_pretty(&experiment)?.as_bytes())?;
        note(progress, format!("study paper: {name} ({} methods before sweeps)", experiment.methods.len()));
        let request = ExperimentRequest {
            config,
            out: part.dir.clone(),
            jobs: Some(jobs),
            seeds: None,
            methods: None,
            train_exe: req.train_exe.clone(),
            data: None,
            executor: Default::default(),
        };
        experiment::run(&request, progress).with_context(|| format!("the study's part {name}"))?;
    }
    // A part this call trained is finished. --tables-only, and a call over some of the Max Lens for the parts it
    // did not train, read a finished part's results.json and, for a part still training, its finished runs
    // (labelled partial everywhere the tables go). A part is finished when every run its experiment plans has
    // finished: a results.json alone may come from `dsrm experiment --methods` over some of its rows.
    let mut read: Vec<(Part, Summary)> = Vec::new();
    let mut partial: Vec<String> = Vec::new();
    for (p, _) in parts {
        if trains(&p) {
            let summary = read_summary(&p.dir)?;
            read.push((p, summary));
            continue;
        }
        let started = p.dir.join("experiment.toml").is_file();
        match started.then(|| experiment::finished_summary(&p.dir)).transpose()?.flatten() {
            Some((summary, done, planned)) if done < planned => {
                let name = p.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                partial.push(format!(
                    "PARTIAL: part {name} is still training; its rows come from the {done} of {planned} runs that had \
                     finished (a row's n is its finished seeds; a missing row has none yet)"
                ));
                read.push((p, summary));
            }
            _ if p.dir.join("results.json").is_file() => {
                let summary = read_summary(&p.dir)?;
                read.push((p, summary));
            }
            Some((summary, _, _)) => read.push((p, summary)),
            None => {}
        }
    }
    if read.is_empty() {
        bail!("{}: no part has a finished run to build tables from", out.display());
    }
    let setting = tables::Setting::of(&file, jobs, &read)?;
    let compute = accounting::collect(&read)?;
    let written = tables::write_all(out, &setting, &read, &compute)?;
    let verdicts = verdicts::judge(&setting, &read);
    verdicts::write(out, &verdicts, &partial)?;
    let notes = plots::write(out, &setting, &read)?;
    for (part, _) in read.iter().filter(|(p, _)| p.dir.join("results.json").is_file()) {
        // Each finished part's full report (every metric and mode); its own notes stay in it.
        crate::report::write(&part.dir, None, dsrm_report::Reference::Origin)?;
    }
    tables::write_report(out, &setting, &written, &verdicts, &partial)?;
    Ok(PaperOutcome { out: out.clone(), tables: written, verdicts, notes: [notes_saved, partial, notes].concat() })
}

/// The parts this call trains: those of the Max Lens it runs (`run_lens`), or of them the ones `--parts` names.
/// A name that is not one of the study's parts is an error that lists them.
fn chosen_parts(
    names: Option<&[String]>,
    parts: &[(Part, Option<Vec<String>>)],
    run_lens: &[usize],
) -> Result<Vec<PathBuf>> {
    let name = |p: &Part| p.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let runnable: Vec<&Part> = parts.iter().map(|(p, _)| p).filter(|p| run_lens.contains(&p.max_len)).collect();
    let Some(names) = names else { return Ok(runnable.iter().map(|p| p.dir.clone()).collect()) };
    let mut chosen = Vec::new();
    for wanted in names {
        match runnable.iter().find(|p| name(p) == *wanted) {
            Some(p) => chosen.push(p.dir.clone()),
            None => bail!(
                "--parts: {wanted:?} is not a part of this run; its parts: {}",
                runnable.iter().map(|p| name(p)).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    Ok(chosen)
}

/// The study file to save in a folder whose `study.toml` was `saved`. A call over some of the Max Lens (`--max-len
/// 50` after a run at 30 and 50) keeps the other lengths listed, so the tables and `--tables-only` still read
/// their parts, when the two files differ in nothing else. A file that differs in anything else replaces the
/// saved one (the parts of the other lengths were made under other settings); the note names the lengths
/// dropped from the tables.
fn merge_saved(saved: Option<PaperFile>, requested: &PaperFile) -> (PaperFile, Option<String>) {
    let Some(saved) = saved else { return (requested.clone(), None) };
    let mut merged = saved.max_len.clone();
    merged.extend(requested.max_len.iter().filter(|l| !saved.max_len.contains(l)));
    if (PaperFile { max_len: merged.clone(), ..requested.clone() })
        == (PaperFile { max_len: merged.clone(), ..saved.clone() })
    {
        return (PaperFile { max_len: merged, ..requested.clone() }, None);
    }
    let dropped: Vec<String> =
        saved.max_len.iter().filter(|l| !requested.max_len.contains(l)).map(|l| l.to_string()).collect();
    let note = (!dropped.is_empty()).then(|| {
        format!(
            "study paper: this study file differs from the one this folder was run with, so it replaces it; the \
             tables no longer read Max Len {} (their parts stay on disk; rerun with --max-len to include them)",
            dropped.join(", ")
        )
    });
    (requested.clone(), note)
}

/// An experiment's `results.json`.
fn read_summary(dir: &Path) -> Result<Summary> {
    let path = dir.join("results.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests;
