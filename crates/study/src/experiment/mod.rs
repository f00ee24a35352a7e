//! `dsrm experiment`'s file and run: methods x seeds, one results table with mean ± 95% CI per mode and metric.
//!
//! Heuristic baselines are evaluated here, on each seed's TEST users (the same seeded validation/test split
//! the trainer uses), so every method meets the same users. RL methods run as `dsrm train` child processes (of the
//! executable the caller names)
//! (libtorch's random generator is process-wide, so in-process parallel training would not be reproducible),
//! each in `RUN/<method>/seed-<s>/` with `--resume`: rerunning an interrupted experiment continues every
//! unfinished run from its last checkpoint and reuses finished ones. At most `jobs` children run at once.
//! A DeepFM world model (`reward = mbpo | mopo | dorl | ips`) is trained once per distinct ensemble setting and
//! shared by every RL run that uses it: the experiment's own as `RUN/world_model.bin`, a method's own
//! `[methods.world_model]` (MBPO / MOPO / DORL / IPS next to agents on another world model) under
//! `RUN/world-models/<ensemble>-<hash>/`. MBPO, MOPO and DORL read the same ensemble (they differ only in the
//! penalty), so they share one; IPS trains its own, inverse-exposure weighted.
//!
//! A method may carry a `sweep` (see [`sweep`]): it expands into one method per combination, and
//! the results record each row's family and parameters. `provenance.json` says what data the run used.

//!
//! * `mod.rs`: the experiment file, its methods and the run;
//! * [`sweep`]: expanding a method's sweep into one method per combination;
//! * [`runs`]: one (method, seed) job: heuristics in-process, RL agents as resumable `dsrm train` runs.

pub mod runs;
pub mod sweep;

use crate::config::DataConfig;
use crate::eval::selection_name;
use crate::loading;
use crate::progress::{begin, note, Event, Progress};
use crate::provenance::{data_label, Provenance, Seeds};
use crate::train::TrainFile;
use crate::world_model::{reward_model, MfCache, WorldModelConfig};
use anyhow::{bail, Context, Result};
use dsrm_eval::summary::{MethodInfo, Summary};
use dsrm_eval::{EvalConfig, MetricInputs};
use dsrm_metrics::MetricSet;
use dsrm_policy::heuristics::{HeuristicConfig, HeuristicKind};
use dsrm_sim::world::WorldConfig;
use dsrm_sim::{EnvConfig, World};
use dsrm_train::TrainConfig;
use runs::{ensemble_dir, finished_run, heuristic_job, read_train_metrics, spawn_training, stale_reason, training_job};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use sweep::Expanded;

/// One method of the experiment: a heuristic baseline or an RL agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodConfig {
    /// Row name in the results table.
    pub name: String,
    /// A heuristic baseline (`random`, `most-popular`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heuristic: Option<HeuristicKind>,
    /// An RL agent: the `[train]` section of `dsrm train` (its `seed` is replaced by each experiment seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<TrainConfig>,
    /// This RL method's `[world_model]` instead of the experiment's (e.g. `reward = "dorl"` next to agents on
    /// the quick MF world model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world_model: Option<WorldModelConfig>,
    /// Dotted path into this table -> values; one method per combination (cartesian product).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<BTreeMap<String, Vec<toml::Value>>>,
    /// `[methods.loop]`: this method's own feedback-loop settings; read by `dsrm loop` only.
    #[serde(default, rename = "loop", skip_serializing_if = "Option::is_none")]
    pub loop_settings: Option<crate::feedback_loop::MethodLoop>,
}

/// The experiment file. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub env: EnvConfig,
    #[serde(default)]
    pub world: WorldConfig,
    #[serde(default)]
    pub eval: EvalConfig,
    #[serde(default)]
    pub world_model: WorldModelConfig,
    #[serde(default)]
    pub heuristics: HeuristicConfig,
    /// Fraction of users held out for model selection (the rest are the test users every method is scored on).
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// Whose seeds a learned row's DSRM stage takes ([`StageSeeds`]; default `fixed`, the stage's own).
    #[serde(default, skip_serializing_if = "StageSeeds::is_fixed")]
    pub stage_seeds: StageSeeds,
    pub methods: Vec<MethodConfig>,
}

fn default_validation_fraction() -> f64 {
    0.2
}

/// Whose seeds a learned row's DSRM stage (`[train.dsrm]`) is trained with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageSeeds {
    /// The seeds written in `[train.dsrm]` (its split and subsample, the denoiser's training, the tracker's
    /// pretraining): one stage shared by every seed of a row, so the intervals over seeds hold the agent's
    /// variance given that stage, not the stage's own.
    #[default]
    Fixed,
    /// The run's seed: each seed trains its own stage, so a row's intervals hold the stage's variance too (the
    /// paper study's setting). Rows of one seed that share the stage settings still share its training.
    Run,
}

impl StageSeeds {
    pub fn is_fixed(&self) -> bool {
        *self == StageSeeds::Fixed
    }

    /// Gives `train`'s DSRM stage the run's `seed` under `Run` (its split and subsample, the denoiser's training,
    /// the tracker's pretraining when on); leaves it as written under `Fixed`.
    pub fn apply(self, train: &mut TrainConfig, seed: u64) {
        if let (StageSeeds::Run, Some(stage)) = (self, train.dsrm.as_mut()) {
            stage.seed = seed;
            stage.denoiser = stage.denoiser.with_seed(seed);
            if stage.tracker_pretrain.enabled() {
                stage.tracker_pretrain.seed = seed;
            }
        }
    }
}

impl ExperimentFile {
    /// Reads and checks an experiment file; errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: ExperimentFile = toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
        if file.seeds.is_empty() || file.methods.is_empty() {
            bail!("{}: needs at least one seed and one method", path.display());
        }
        file.expanded_methods(path)?;
        Ok(file)
    }

    /// The methods to run, sweeps expanded; `path` is the file they came from, for errors.
    pub fn expanded_methods(&self, path: &Path) -> Result<Vec<Expanded>> {
        let methods = sweep::expand(path, &self.methods)?;
        for m in &methods {
            if m.method.heuristic.is_some() == m.method.train.is_some() {
                bail!("{}: method {:?} needs exactly one of `heuristic` or `train`", path.display(), m.method.name);
            }
            if m.method.heuristic.is_some() && m.method.world_model.is_some() {
                bail!("{}: method {:?}: `world_model` is for RL methods (`train`)", path.display(), m.method.name);
            }
            if m.method.loop_settings.is_some() {
                bail!("{}: method {:?}: `[methods.loop]` is read by `dsrm loop` only", path.display(), m.method.name);
            }
        }
        Ok(methods)
    }
}

/// What a finished (method, seed) leaves for the table: selection -> mode -> metrics.
pub type JobMetrics = BTreeMap<String, BTreeMap<String, MetricSet>>;

/// How to run an experiment file (the flags of `dsrm experiment`).
#[derive(Debug, Clone)]
pub struct ExperimentRequest {
    /// The experiment file.
    pub config: PathBuf,
    /// The run directory.
    pub out: PathBuf,
    /// Concurrent training processes (default: the number of cores).
    pub jobs: Option<usize>,
    /// These seeds instead of the file's.
    pub seeds: Option<Vec<u64>>,
    /// Only these methods (names or sweep families).
    pub methods: Option<Vec<String>>,
    /// The `dsrm` executable whose `dsrm train --resume` children train the RL methods.
    pub train_exe: PathBuf,
    /// The data set's directory (`--data`), replacing the file's `[data] dir`.
    pub data: Option<PathBuf>,
    /// Where the training runs execute: child processes here, or Ray tasks.
    pub executor: Executor,
}

/// Where an experiment's training runs execute. Either way each runs the same `dsrm train --resume` on its
/// `job.toml`, so the results are the same bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Executor {
    /// `dsrm train` children on this machine, `jobs` at a time.
    #[default]
    Local,
    /// One Ray task per run (`python -m dsrm_hrl.ray_executor`, the Python package's executor): on the cluster at
    /// `address`, or on a local Ray instance started for the experiment; `python` has Ray and `dsrm_hrl`.
    Ray { address: Option<String>, python: PathBuf },
}

/// One results table of the headline selection: its title, evaluation mode and summary.
pub struct ResultTable {
    pub title: String,
    /// The mode's key (`FB`, `NX_0`, ...).
    pub mode: String,
    pub summary: Summary,
}

/// Runs (or resumes) the experiment of `args`; writes `results{,_<sel>}.{csv,json}`, `results.md`,
/// `experiment.toml`, `provenance.json` and one folder per method and seed, and returns the headline
/// selection's tables, one per mode.
pub fn run(args: &ExperimentRequest, progress: Progress) -> Result<Vec<ResultTable>> {
    let mut file = ExperimentFile::load(&args.config)?;
    if let Some(dir) = &args.data {
        file.data.dir = Some(dir.clone());
    }
    if let Some(seeds) = &args.seeds {
        if seeds.is_empty() {
            bail!("--seeds needs at least one seed");
        }
        file.seeds = seeds.clone();
    }
    let all = file.expanded_methods(&args.config)?;
    let mut expanded = all.clone();
    if let Some(only) = &args.methods {
        if let Some(unknown) = only.iter().find(|n| !expanded.iter().any(|e| &e.method.name == *n || &e.family == *n)) {
            bail!("--methods: {} has no method or family {unknown:?}", args.config.display());
        }
        expanded.retain(|e| only.iter().any(|n| *n == e.method.name || *n == e.family));
    }
    let methods: Vec<&MethodConfig> = expanded.iter().map(|e| &e.method).collect();
    // One libtorch thread in this process: a shared ensemble trains here with `workers` threads of its own,
    // and libtorch's default (one OpenMP thread per core, per worker) oversubscribes the cores.
    dsrm_nn::runtime::init(1, 0);
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    dsrm_files::write_atomic(&out.join("experiment.toml"), toml::to_string_pretty(&file)?.as_bytes())?;
    let world = loading::load_world_from(&file.data, &file.env, &file.world, progress)?;
    let inputs = MetricInputs::new(&world, file.eval.mcd_dominant);
    let method_info = method_info(&expanded);
    provenance(&file, &world, &method_info).write(&out.join("provenance.json"))?;

    // Each RL method's world model; an ensemble is trained once per setting and shared by every run using it.
    let mut world_models: BTreeMap<String, WorldModelConfig> = BTreeMap::new();
    for m in methods.iter().filter(|m| m.train.is_some()) {
        let wm = match world_model_of(out, m, &file)? {
            (wm, None) => wm,
            (wm, Some(dir)) => {
                // Trained here only when missing: loading a finished ensemble just to drop it would cost a full
                // read of its grids per method (MBPO, MOPO and DORL share one).
                note(progress, format!("preparing the user-model ensemble for {} in {}", m.name, dir.display()));
                reward_model(&wm, &world, &dir, true, false, MfCache::Use, progress)?;
                world_model_of(out, m, &file)?.0
            }
        };
        world_models.insert(m.name.clone(), wm);
    }

    let mut results: Vec<(String, u64, JobMetrics)> = Vec::new();
    // Heuristics, in-process (cheap).
    for m in methods.iter().filter(|m| m.heuristic.is_some()) {
        for &seed in &file.seeds {
            let kind = m.heuristic.expect("filtered");
            let metrics = heuristic_job(&world, &inputs, kind, &file, seed)?;
            let dir = out.join(&m.name).join(format!("seed-{seed}"));
            dsrm_files::write_json(&dir.join("metrics.json"), &metrics)?;
            results.push((m.name.clone(), seed, metrics));
        }
    }
    // RL agents, as resumable `dsrm train` children.
    let rl_jobs: Vec<(&MethodConfig, u64)> =
        methods.iter().filter(|m| m.train.is_some()).flat_map(|&m| file.seeds.iter().map(move |&s| (m, s))).collect();
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
    begin(progress, "training", Some(rl_jobs.len() as u64));
    // A run that already finished under exactly this job's config is read, not restarted: a `dsrm train
    // --resume` child would reload the data set only to find nothing left to do.
    let mut pending = Vec::new();
    for &(m, seed) in &rl_jobs {
        let (dir, job) = training_job(&file, &world_models[&m.name], m, seed, out);
        if finished_run(&dir, &job) {
            results.push((m.name.clone(), seed, read_train_metrics(&dir)?));
            progress(Event::Advance(1));
        } else {
            pending.push((m, seed, dir, job));
        }
    }
    let conflicts: Vec<String> = pending
        .iter()
        .filter_map(|(_, _, dir, job)| stale_reason(dir, job).map(|why| format!("{}: made with {why}", dir.display())))
        .collect();
    if !conflicts.is_empty() {
        progress(Event::End);
        bail!(
            "{} run folder(s) hold runs made with a different configuration than this file now gives them, or by \
             other code, so they can be neither read nor resumed:\n  {}\n\
             Move or delete them to train them again, or pass another --out.",
            conflicts.len(),
            conflicts.join("\n  ")
        );
    }
    if pending.len() < rl_jobs.len() {
        let done = rl_jobs.len() - pending.len();
        note(progress, format!("{done} of {} runs already finished; reading them", rl_jobs.len()));
    }
    match &args.executor {
        Executor::Local => {
            // A pool of `jobs` children: the next run starts as soon as any finishes (runs of one study differ
            // by 20x in length, so waiting for a whole batch would idle cores).
            let mut queue = pending.iter();
            let mut running: Vec<(std::process::Child, &PendingRun)> = Vec::new();
            loop {
                while running.len() < jobs {
                    let Some(run) = queue.next() else { break };
                    running.push((spawn_training(&args.train_exe, &run.2, &run.3)?, run));
                }
                if running.is_empty() {
                    break;
                }
                let mut done = None;
                for (i, (child, _)) in running.iter_mut().enumerate() {
                    if let Some(status) = child.try_wait()? {
                        done = Some((i, status));
                        break;
                    }
                }
                let Some((i, status)) = done else {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    continue;
                };
                let (_, (m, seed, dir, _)) = running.swap_remove(i);
                if !status.success() {
                    // The others stop too (each resumes from its last checkpoint on a rerun).
                    for (mut child, _) in running {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    bail!("training {} seed {seed} failed; see {}", m.name, dir.join("train.log").display());
                }
                results.push((m.name.clone(), *seed, read_train_metrics(dir)?));
                progress(Event::Advance(1));
            }
        }
        Executor::Ray { address, python } => {
            let dirs: Vec<(&Path, &TrainFile)> = pending.iter().map(|(_, _, d, j)| (d.as_path(), j)).collect();
            runs::run_on_ray(out, &dirs, &args.train_exe, address.as_deref(), python, progress)?;
            for (m, seed, dir, _) in &pending {
                results.push((m.name.clone(), *seed, read_train_metrics(dir)?));
            }
        }
    }
    progress(Event::End);
    // With --methods, the other methods' rows that earlier invocations made stay in the results: their finished
    // runs are read (under this config and code only) and the heuristics that ran are recomputed, so training a
    // subset never drops rows from `results.*`.
    if args.methods.is_some() {
        let others = all.iter().map(|e| &e.method).filter(|m| !methods.iter().any(|x| x.name == m.name));
        for m in others {
            for &seed in &file.seeds {
                let dir = out.join(&m.name).join(format!("seed-{seed}"));
                if let Some(kind) = m.heuristic.filter(|_| dir.join("metrics.json").is_file()) {
                    let metrics = heuristic_job(&world, &inputs, kind, &file, seed)?;
                    dsrm_files::write_json(&dir.join("metrics.json"), &metrics)?;
                    results.push((m.name.clone(), seed, metrics));
                } else if m.train.is_some() {
                    let Some(wm) = finished_world_model(out, m, &file) else { continue };
                    let (dir, job) = training_job(&file, &wm, m, seed, out);
                    if finished_run(&dir, &job) {
                        results.push((m.name.clone(), seed, read_train_metrics(&dir)?));
                    }
                }
            }
        }
    }
    // One order whatever finished first or was read back: the file's methods, then seeds.
    let position = |name: &str| all.iter().position(|e| e.method.name == name).unwrap_or(usize::MAX);
    results.sort_by_key(|(name, seed, _)| (position(name), *seed));

    let label = if world.is_synthetic() { "SYNTHETIC KuaiRec-format data" } else { world.dataset.as_str() };
    let mut markdown = format!(
        "# dsrm experiment: {label}, preset {}, seeds {:?}, {} test episodes per mode (test users)\n\n",
        file.env.preset.name(),
        file.seeds,
        file.eval.episodes
    );
    let mut tables = Vec::new();
    for (i, &selection) in file.eval.selections.iter().enumerate() {
        let sel = selection_name(selection);
        let mut summary = Summary::from_runs(results.iter().flat_map(|(method, _, m)| {
            m.get(sel)
                .into_iter()
                .flat_map(move |modes| modes.iter().map(move |(mode, ms)| (method.as_str(), mode.as_str(), ms)))
        }));
        summary.methods = method_info.clone();
        let suffix = if i == 0 { String::new() } else { format!("_{sel}") };
        dsrm_files::write_atomic(&out.join(format!("results{suffix}.csv")), summary.to_csv().as_bytes())?;
        dsrm_files::write_json(&out.join(format!("results{suffix}.json")), &summary)?;
        for mode in file.eval.modes() {
            let title = format!("{label} — {sel} actions, mode {mode}");
            markdown += &format!("## {title}\n\n{}\n", summary.to_markdown(&mode.key()));
            if i == 0 {
                tables.push(ResultTable { title, mode: mode.key(), summary: summary.clone() });
            }
        }
    }
    dsrm_files::write_atomic(&out.join("results.md"), markdown.as_bytes())?;
    Ok(tables)
}

/// The runs of a started experiment in `out` that have finished, as its headline selection's summary, for reading
/// a long experiment before it ends (`dsrm study paper --tables-only` on an unfinished part). A heuristic counts
/// when its `metrics.json` is there, an RL run when its `summary.json` has every epoch of its saved `config.toml`
/// and its metrics are written. Returns the summary with the finished and planned run counts; `None` when no run
/// has finished. Nothing is trained or written.
pub fn finished_summary(out: &Path) -> Result<Option<(Summary, usize, usize)>> {
    let path = out.join("experiment.toml");
    let file = ExperimentFile::load(&path)?;
    let expanded = file.expanded_methods(&path)?;
    let sel = selection_name(file.eval.selections.first().copied().unwrap_or(dsrm_policy::Selection::Sampled));
    let mut results: Vec<(String, JobMetrics)> = Vec::new();
    let mut planned = 0;
    for e in &expanded {
        for &seed in &file.seeds {
            planned += 1;
            let dir = out.join(&e.method.name).join(format!("seed-{seed}"));
            let metrics = dir.join("metrics.json");
            if e.method.heuristic.is_some() && metrics.is_file() {
                let text =
                    std::fs::read_to_string(&metrics).with_context(|| format!("reading {}", metrics.display()))?;
                let job: JobMetrics =
                    serde_json::from_str(&text).with_context(|| format!("reading {}", metrics.display()))?;
                results.push((e.method.name.clone(), job));
            } else if e.method.train.is_some() && runs::completed(&dir) {
                results.push((e.method.name.clone(), read_train_metrics(&dir)?));
            }
        }
    }
    if results.is_empty() {
        return Ok(None);
    }
    let mut summary = Summary::from_runs(results.iter().flat_map(|(method, m)| {
        m.get(sel)
            .into_iter()
            .flat_map(move |modes| modes.iter().map(move |(mode, ms)| (method.as_str(), mode.as_str(), ms)))
    }));
    summary.methods = method_info(&expanded);
    Ok(Some((summary, results.len(), planned)))
}

/// Each swept method's family and parameters (methods not from a sweep are left out).
fn method_info(expanded: &[Expanded]) -> BTreeMap<String, MethodInfo> {
    expanded
        .iter()
        .filter(|e| !e.params.is_empty())
        .map(|e| {
            let params = e.params.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()));
            (e.method.name.clone(), MethodInfo { family: e.family.clone(), params: params.collect() })
        })
        .collect()
}

/// The world model `method`'s finished runs were trained in, as their jobs name it; `None` when it needs an
/// ensemble that was never trained here (then none of its runs can have finished).
fn finished_world_model(out: &Path, method: &MethodConfig, file: &ExperimentFile) -> Option<WorldModelConfig> {
    match world_model_of(out, method, file).ok()? {
        (wm, None) => Some(wm),
        (_, Some(_)) => None,
    }
}

/// A method's world model (its own table, else the file's). One that reads an ensemble points at the trained
/// ensemble of its setting (one folder per setting, shared by every method using it); when that ensemble is not
/// trained yet, the second value is its folder.
fn world_model_of(
    out: &Path,
    method: &MethodConfig,
    file: &ExperimentFile,
) -> Result<(WorldModelConfig, Option<PathBuf>)> {
    let mut wm = method.world_model.clone().unwrap_or_else(|| file.world_model.clone());
    if wm.reward.uses_ensemble() && wm.checkpoint.is_none() {
        let dir = ensemble_dir(out, &wm, &file.world_model)?;
        let saved = dir.join("world_model.bin");
        if !saved.exists() {
            return Ok((wm, Some(dir)));
        }
        wm.checkpoint = Some(std::fs::canonicalize(saved)?);
    }
    Ok((wm, None))
}

/// A run still to train: its method, seed, folder and job.
type PendingRun<'a> = (&'a MethodConfig, u64, PathBuf, TrainFile);

/// What the experiment ran on, for `dsrm report`'s labels: data (synthetic or real, with hashes), seeds,
/// versions, and each swept method's family and parameters.
fn provenance<'a>(
    file: &ExperimentFile,
    world: &'a World,
    methods: &'a BTreeMap<String, MethodInfo>,
) -> Provenance<'a> {
    Provenance {
        dataset: Some(&world.dataset),
        synthetic: Some(world.is_synthetic()),
        label: Some(data_label(world)),
        preset: Some(file.env.preset.name()),
        seeds: Some(Seeds::List(file.seeds.clone())),
        selections: Some(file.eval.selections.iter().map(|&s| selection_name(s)).collect()),
        force_length: Some(file.eval.force_length),
        episodes: Some(file.eval.episodes),
        methods: Some(methods),
        data: Some(&world.provenance),
        ..Provenance::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_experiment_parses_and_bad_methods_are_refused() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/experiments/default.toml");
        let file = ExperimentFile::load(&path).unwrap();
        assert_eq!(file.seeds.len(), 5);
        assert!(file.methods.iter().any(|m| m.train.is_some()) && file.methods.iter().any(|m| m.heuristic.is_some()));
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "seeds = [1]\n[[methods]]\nname = \"x\"\n").unwrap();
        assert!(format!("{:#}", ExperimentFile::load(&bad).unwrap_err()).contains("exactly one"));
        std::fs::write(&bad, "seeds = [1]\nseed = 2\n[[methods]]\nname = \"x\"\nheuristic = \"random\"\n").unwrap();
        assert!(format!("{:#}", ExperimentFile::load(&bad).unwrap_err()).contains("unknown field"));
    }

    #[test]
    fn the_agents_table_shares_one_ensemble_between_mbpo_mopo_and_dorl() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/experiments/agents.toml");
        let file = ExperimentFile::load(&path).unwrap();
        let out = Path::new("RUN");
        let dir_of = |name: &str| {
            let m = file.methods.iter().find(|m| m.name == name).unwrap();
            let wm = m.world_model.clone().unwrap_or_else(|| file.world_model.clone());
            assert!(wm.reward.uses_ensemble(), "{name}");
            ensemble_dir(out, &wm, &file.world_model).unwrap()
        };
        let deepfm = dir_of("mbpo");
        assert!(deepfm.starts_with("RUN/world-models") && deepfm.to_string_lossy().contains("deepfm-"));
        assert_eq!(dir_of("mopo"), deepfm, "the penalty does not change the ensemble");
        assert_eq!(dir_of("dorl"), deepfm);
        let ips = dir_of("ips");
        assert!(ips.to_string_lossy().contains("ips-") && ips != deepfm);
        // The experiment's own ensemble stays at the run's root.
        let own = WorldModelConfig { reward: crate::world_model::RewardKind::Dorl, ..Default::default() };
        assert_eq!(ensemble_dir(out, &own, &own).unwrap(), out);
        let names: Vec<&str> = file.methods.iter().map(|m| m.name.as_str()).collect();
        for agent in ["a2c", "ppo", "dqn", "sac", "bcq", "cql", "crr", "sqn", "ips", "reward-shaping", "fcpo"] {
            assert!(names.contains(&agent), "{agent} is in the table");
        }
        // A heuristic cannot carry a world model.
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            "seeds = [1]\n[[methods]]\nname = \"x\"\nheuristic = \"random\"\n[methods.world_model]\nreward = \"mf\"\n",
        )
        .unwrap();
        assert!(format!("{:#}", ExperimentFile::load(&bad).unwrap_err()).contains("for RL methods"));
    }

    #[test]
    fn under_run_stage_seeds_each_seed_trains_its_own_dsrm_stage() {
        let text = "seeds = [1, 2]\n[[methods]]\nname = \"dsrm-ppo\"\n[methods.train.algorithm]\nkind = \"ppo\"\n\
                    [methods.train.dsrm]\nseed = 7\n[methods.train.dsrm.denoiser]\nkind = \"ddpm\"\n\
                    [methods.train.dsrm.denoiser.train]\nseed = 7\n";
        let mut file: ExperimentFile = toml::from_str(text).unwrap();
        assert_eq!(file.stage_seeds, StageSeeds::Fixed, "the default keeps the stage's own seeds");
        let stage_of = |file: &ExperimentFile, seed: u64| {
            let (_, job) = training_job(file, &file.world_model, &file.methods[0], seed, Path::new("RUN"));
            let stage = job.train.dsrm.unwrap();
            let dsrm_denoise::DenoiserConfig::Ddpm(ddpm) = &stage.denoiser else { panic!("a ddpm stage") };
            (stage.seed, Some(ddpm.train.seed))
        };
        assert_eq!(stage_of(&file, 1), (7, Some(7)));
        assert_eq!(stage_of(&file, 2), (7, Some(7)), "fixed: one stage for every seed");
        file.stage_seeds = StageSeeds::Run;
        assert_eq!(stage_of(&file, 1), (1, Some(1)));
        assert_eq!(stage_of(&file, 2), (2, Some(2)), "run: the stage takes the run's seed");
        // Written only when not the default, so earlier experiment files keep their identity.
        assert!(toml::to_string(&file).unwrap().contains("stage_seeds = \"run\""));
        file.stage_seeds = StageSeeds::Fixed;
        assert!(!toml::to_string(&file).unwrap().contains("stage_seeds"));
        // The shipped paper study trains one stage per seed.
        let paper = crate::paper::PaperFile::parse(crate::paper::PAPER_CONFIG, "paper.toml").unwrap();
        assert_eq!(paper.stage_seeds, StageSeeds::Run);
    }
}
