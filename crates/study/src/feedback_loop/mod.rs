//! `dsrm loop`'s file and run: the feedback-loop study (the rich-get-richer loop).
//!
//! For each method and seed, starting from the data set's training log and its users:
//!
//! ```text
//! log_0   = the training log (or a seeded share of it, `initial_log_fraction`)
//! users_0 = the data set's ground truth under the method's mechanisms (dsrm_sim::mechanisms: conformity,
//!           interest drift, satiation; all off unless set; the preset's abandonment rule is the environment's)
//! for round r = 0 .. R-1:
//!     fit the method on log_r
//!         heuristic: refit on log_r (most-popular counts, MF factors, ...)
//!         RL agent:  refit the world model (and the DSRM stage, when configured) on log_r, then train the
//!                    agent in it; with `warm_start` the agent instead continues from round r-1's deployed
//!                    (validation-selected) epoch for `epochs_per_round` epochs, and its DSRM stage continues
//!                    from round r-1's for `stage_refit_epochs` denoiser epochs on log_r (same tracker)
//!     deploy it: serve `served_episodes` episodes to users drawn from all users, in the environment of users_r
//!                (their current truth), NX_0, sampled actions (or the method's `[methods.loop] selection`);
//!                an RL agent deploys its validation-selected epoch, the one `dsrm train` reports (best
//!                validation NX_0 R_tra, ties: the earliest), not its last
//!     log_{r+1}   = log_r + the served interactions, each with its *logged* reward: the true one, plus
//!                   β · z_i under conformity (z_i: the item's standardised log exposure in log_r)
//!     users_{r+1} = users_r after consuming what was served (drift, satiation)
//!     record the round's measures (measures.rs)                                   -> rounds.jsonl
//! ```
//!
//! Metrics are computed against the original data's inputs (popularity, long-tail split), so rounds are
//! comparable; true utility against the users' current truth. Every round of every (method, seed) leaves
//! `round-<r>/served.jsonl` (true and logged rewards) and `round-<r>/round.json`; rerunning the command reuses
//! finished rounds (replaying their served interactions into the log and the users) and resumes an
//! interrupted agent from its checkpoint. An agent's round keeps every trained epoch's checkpoint in
//! `round-<r>/agent/epochs/<e>/` (the trainer keeps only the last one) and deploys the selected one from
//! there; with `warm_start` the selection ranges over the epochs the round itself trained (scored in the
//! round's environment; an earlier round's score was measured in another, its weights trained on another DSRM
//! stage's states), so every round deploys a policy of its own.
//!
//! Output: `OUT/loop/<method>/rounds.jsonl` (one line per seed and round, for `dsrm report`),
//! `OUT/loop/summary.{csv,md}` (mean ± 95% CI over seeds per method and round), `OUT/loop.toml`,
//! `OUT/loop/provenance.json`. `--smoke` runs the file's `[smoke]` version (tiny synthetic set, fewer seeds,
//! rounds and episodes).

mod measures;

use crate::config::DataConfig;
use crate::eval::build_heuristic;
use crate::experiment::{MethodConfig, StageSeeds};
use crate::loading;
use crate::paper::schedule::{pace_online, ScheduleKind};
use crate::progress::{begin, note, Event, Progress};
use crate::provenance::{Provenance, Seeds, WorldSummary};
use crate::world_model::{reward_model, MfCache, WorldModelConfig};
use anyhow::{bail, Context, Result};
use dsrm_eval::{evaluate, EvalConfig, EvalRun, MetricInputs, Mode};
use dsrm_models::Interactions;
use dsrm_policy::heuristics::HeuristicConfig;
use dsrm_policy::{Policy, Selection};
use dsrm_report::RoundRecord;
use dsrm_sim::mechanisms::conformity;
use dsrm_sim::world::WorldConfig;
use dsrm_sim::{EnvConfig, Mechanisms, Population, World};
use dsrm_train::{ProgressEvent, TrainConfig, TrainSummary};
use dsrm_world::{IncrementalRefit, UserModelEnsemble};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The loop file. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopFile {
    pub seeds: Vec<u64>,
    /// Rounds of deploy -> log -> refit.
    pub rounds: usize,
    /// Episodes served per round (each one a user drawn uniformly from all users).
    pub served_episodes: usize,
    /// How an RL agent is updated each round. `false` (default): everything is refitted on the round's log
    /// (world model, DSRM stage, and the agent from scratch for `train.epochs`). `true`: the agent continues
    /// from the previous round for `epochs_per_round` more epochs in the refitted world model, and keeps its
    /// round-0 DSRM stage.
    #[serde(default)]
    pub warm_start: bool,
    /// Training epochs per round with `warm_start`, from the previous round's deployed epoch (round 0 trains
    /// `train.epochs`).
    #[serde(default = "one")]
    pub epochs_per_round: usize,
    /// With `warm_start`: the DSRM stage of an agent that has one is refitted every round on the round's log,
    /// continuing from the previous round's stage for this many denoiser epochs (its tracker and item table stay
    /// round 0's, so the states the agent learned on keep their meaning; `DsrmModel::refit`). 0 keeps round 0's
    /// stage for every round.
    #[serde(default = "two")]
    pub stage_refit_epochs: usize,
    /// Share of the data set's training log the loop starts from ((user, item) pairs kept by a seeded hash).
    /// With the whole log (1.0) a round's served interactions are a drop in a large log; a smaller start lets
    /// the loop's own data weigh in, as on a young platform or a fresh catalogue.
    #[serde(default = "whole")]
    pub initial_log_fraction: f64,
    /// `[ensemble_refit]`: how a DeepFM-ensemble world model (DORL's) is refitted in the rounds after the first.
    /// Default: from scratch on the round's whole log, as in round 0.
    #[serde(default, skip_serializing_if = "EnsembleRefit::is_default")]
    pub ensemble_refit: EnsembleRefit,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub env: EnvConfig,
    #[serde(default)]
    pub world: WorldConfig,
    /// The RL agents' per-epoch evaluation (validation/test users).
    #[serde(default)]
    pub eval: EvalConfig,
    #[serde(default)]
    pub world_model: WorldModelConfig,
    #[serde(default)]
    pub heuristics: HeuristicConfig,
    /// The loop's mechanisms (all off by default); a method's `[methods.loop] mechanisms` replaces them.
    #[serde(default)]
    pub mechanisms: Mechanisms,
    /// `[schedule]`: equal gradient updates for every learned method (each round already gets the same
    /// environment steps). Absent: each method keeps its own passes and batch size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<LoopSchedule>,
    /// What `--smoke` replaces (a file without it cannot run as a smoke test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoke: Option<LoopSmoke>,
    /// Whose seeds a learned method's DSRM stage takes (as in an experiment file; default `fixed`).
    #[serde(default, skip_serializing_if = "StageSeeds::is_fixed")]
    pub stage_seeds: StageSeeds,
    pub methods: Vec<MethodConfig>,
}

/// `[schedule]` of a loop file: the paper study's equal-update schedule (`paper::schedule`) without its budget of
/// steps, since a loop's steps are its methods' `steps_per_epoch` per round. Applied to every learned method
/// when the file is loaded, so `loop.toml` and each method's identity show the settings it trains with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopSchedule {
    /// Gradient updates per 1,000 environment steps (HRL: split evenly between its two levels).
    pub updates_per_1k_steps: f64,
    /// Minibatch size of every update.
    pub batch_size: usize,
    /// Every learned method (its own schedule or not) blocks the items its episode has shown, in training and
    /// in every evaluation (`dsrm_agents::shown`), as the paper study's `[budget] mask_shown`. Off, each keeps
    /// its own setting.
    #[serde(default)]
    pub mask_shown: bool,
}

/// `[ensemble_refit]` of a loop file. An MF world model is always refitted from scratch (seconds); this table is
/// about the DeepFM ensemble, whose fit from scratch costs 6–8 min per round and seed on full-size
/// synthetic KuaiRec (`docs/benchmarks.md` §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleRefit {
    /// `"scratch"` (default): the ensemble is trained anew on the round's whole log, like round 0's.
    /// `"incremental"`: the previous round's members continue on the rows served since, plus replayed rows of
    /// the whole log, for `epochs` passes (`dsrm_world::refit`).
    #[serde(default)]
    pub mode: RefitMode,
    /// Incremental: passes over the new and replayed rows. Default 1.
    #[serde(default = "one")]
    pub epochs: usize,
    /// Incremental: replayed rows of the whole log per new row. Default 1.
    #[serde(default = "whole")]
    pub replay: f64,
}

/// How [`EnsembleRefit`] refits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefitMode {
    #[default]
    Scratch,
    Incremental,
}

impl Default for EnsembleRefit {
    fn default() -> Self {
        Self { mode: RefitMode::Scratch, epochs: 1, replay: 1.0 }
    }
}

impl EnsembleRefit {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The incremental refit's settings.
    fn incremental(&self) -> IncrementalRefit {
        IncrementalRefit { epochs: self.epochs, replay: self.replay }
    }
}

/// `[methods.loop]`: one method's own loop settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodLoop {
    /// This method's mechanisms instead of the loop's (`mechanisms = {}`: every mechanism off, the static
    /// control).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanisms: Option<Mechanisms>,
    /// How the deployment picks items (`"sampled"`, the default, or `"argmax"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
    /// `"own"`: this learned method keeps its own passes and batch under the loop's `[schedule]` (label it so
    /// in what you report); default: the loop's schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleKind>,
}

/// `[smoke]`: what `--smoke` replaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopSmoke {
    pub seeds: Vec<u64>,
    pub rounds: usize,
    pub served_episodes: usize,
    pub synthetic_size: String,
    pub eval_episodes: usize,
    /// Dotted paths set in every method that has the parent table (e.g. `"train.epochs" = 1`).
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
}

fn one() -> usize {
    1
}

fn two() -> usize {
    2
}

fn whole() -> f64 {
    1.0
}

impl LoopFile {
    /// Reads and checks a loop file and puts its learned methods on its `[schedule]`; errors name the file,
    /// line and column.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut file: LoopFile = toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
        if file.seeds.is_empty() || file.methods.is_empty() || file.rounds == 0 || file.served_episodes == 0 {
            bail!("{}: needs seeds, methods, rounds >= 1 and served_episodes >= 1", path.display());
        }
        if !(file.initial_log_fraction > 0.0 && file.initial_log_fraction <= 1.0) {
            bail!("{}: initial_log_fraction must lie in (0, 1], got {}", path.display(), file.initial_log_fraction);
        }
        file.mechanisms.validate().with_context(|| path.display().to_string())?;
        file.ensemble_refit
            .incremental()
            .validate()
            .with_context(|| format!("{}: [ensemble_refit]", path.display()))?;
        for m in &file.methods {
            if m.heuristic.is_some() == m.train.is_some() {
                bail!("{}: method {:?} needs exactly one of `heuristic` or `train`", path.display(), m.name);
            }
            if let Some(mechanisms) = m.loop_settings.as_ref().and_then(|l| l.mechanisms.as_ref()) {
                mechanisms.validate().with_context(|| format!("{}: method {:?}", path.display(), m.name))?;
            }
        }
        file.apply_schedule().with_context(|| path.display().to_string())?;
        Ok(file)
    }

    /// The `--smoke` version: the `[smoke]` table's data, seeds, rounds, episodes and settings.
    pub fn smoke(mut self) -> Result<Self> {
        let s = self.smoke.clone().context("--smoke: the loop file has no [smoke] table")?;
        self.seeds = s.seeds;
        self.rounds = s.rounds;
        self.served_episodes = s.served_episodes;
        self.data.synthetic_size = s.synthetic_size;
        self.data.dir = None;
        self.eval.episodes = s.eval_episodes;
        for m in &mut self.methods {
            crate::paper::schedule::set_present(m, &s.set)
                .with_context(|| format!("[smoke] set, method {:?}", m.name))?;
        }
        Ok(self)
    }

    /// Puts every learned method not marked `schedule = "own"` on `[schedule]`; a learner with no equal-update
    /// schedule is refused rather than run on other terms.
    fn apply_schedule(&mut self) -> Result<()> {
        let Some(s) = self.schedule.clone() else { return Ok(()) };
        if !(s.updates_per_1k_steps.is_finite() && s.updates_per_1k_steps > 0.0) || s.batch_size == 0 {
            bail!(
                "[schedule]: needs updates_per_1k_steps > 0 and batch_size >= 1, got {} and {}",
                s.updates_per_1k_steps,
                s.batch_size
            );
        }
        for m in &mut self.methods {
            if let (true, Some(t)) = (s.mask_shown, m.train.as_mut()) {
                t.algorithm.set_mask_shown(true);
            }
            let own = m.loop_settings.as_ref().and_then(|l| l.schedule) == Some(ScheduleKind::Own);
            let Some(t) = m.train.as_mut().filter(|_| !own) else { continue };
            if !pace_online(&mut t.algorithm, s.batch_size, s.updates_per_1k_steps) {
                bail!(
                    "[schedule]: method {:?} ({}) has no equal-update schedule in the loop (A2C, PPO, FCPO, HRL, \
                     TD3, DNaIR, SAC4IR and MoFIR do); give it `[methods.loop] schedule = \"own\"` to run it on its own",
                    m.name,
                    t.algorithm.name()
                );
            }
        }
        Ok(())
    }

    /// The world model an RL `method` trains in, refitted every round: its own `[methods.world_model]` (DORL's
    /// ensemble), else the loop's.
    pub fn world_model_of<'a>(&'a self, method: &'a MethodConfig) -> &'a WorldModelConfig {
        method.world_model.as_ref().unwrap_or(&self.world_model)
    }

    /// The mechanisms of `method`: its own, else the loop's.
    pub fn mechanisms_of<'a>(&'a self, method: &'a MethodConfig) -> &'a Mechanisms {
        method.loop_settings.as_ref().and_then(|l| l.mechanisms.as_ref()).unwrap_or(&self.mechanisms)
    }
}

/// A served episode, as stored in `served.jsonl`: its true rewards and, when they differ (conformity), the
/// logged ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Served {
    user: u32,
    items: Vec<u32>,
    rewards: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    logged: Option<Vec<f64>>,
}

impl Served {
    /// The rewards that join the log.
    fn logged(&self) -> &[f64] {
        self.logged.as_deref().unwrap_or(&self.rewards)
    }
}

/// Runs (or resumes) the loop of the file `config` in `run_dir/loop/`, writing `run_dir/loop.toml`, each
/// method's `rounds.jsonl`, `summary.{csv,md}` and `provenance.json`; returns the summary as Markdown. `data`
/// (`--data`) replaces the file's `[data] dir`; `smoke` runs the file's `[smoke]` version; `methods` keeps only
/// the named methods.
pub fn run(config: &Path, req: &LoopRequest, run_dir: &Path, progress: Progress) -> Result<String> {
    let mut file = LoopFile::load(config)?;
    if req.smoke {
        file = file.smoke().with_context(|| config.display().to_string())?;
    }
    if let Some(names) = req.methods {
        if let Some(unknown) = names.iter().find(|n| !file.methods.iter().any(|m| &m.name == *n)) {
            bail!("--methods: {} has no method {unknown:?}", config.display());
        }
        file.methods.retain(|m| names.contains(&m.name));
    }
    if let Some(dir) = req.data {
        file.data.dir = Some(dir.to_path_buf());
    }
    let ensembles: Vec<&str> = file
        .methods
        .iter()
        .filter(|m| m.train.is_some() && file.world_model_of(m).reward.uses_ensemble())
        .map(|m| m.name.as_str())
        .collect();
    if !ensembles.is_empty() {
        let line = match file.ensemble_refit.mode {
            RefitMode::Scratch => format!(
                "note: the loop refits the world model every round; a DeepFM ensemble ({}) takes long from scratch, \
                 `[ensemble_refit] mode = \"incremental\"` continues it on each round's new rows",
                ensembles.join(", ")
            ),
            RefitMode::Incremental => format!(
                "note: the DeepFM ensembles ({}) are trained in round 0 and then continued on each round's new rows \
                 ({} pass(es), {} replayed rows per new row)",
                ensembles.join(", "),
                file.ensemble_refit.epochs,
                file.ensemble_refit.replay
            ),
        };
        note(progress, line);
    }
    let out = run_dir.join(dsrm_report::LOOP_DIR);
    // Finished rounds are reused, so rounds made under other settings must not be: refuse them before loading
    // anything or overwriting the folder's files.
    let identities: Vec<String> =
        file.methods.iter().map(|m| Ok(toml::to_string_pretty(&method_identity(&file, m)?)?)).collect::<Result<_>>()?;
    let stale: Vec<String> = file
        .methods
        .iter()
        .zip(&identities)
        .map(|(m, identity)| (out.join(&m.name), identity))
        .filter(|(dir, identity)| {
            let read = |text: &str| toml::from_str::<toml::Value>(text).ok();
            match std::fs::read_to_string(dir.join(IDENTITY_FILE)) {
                Ok(saved) => read(&saved) != read(identity),
                // Rounds with no record of what made them (written before loops recorded it) are not reused.
                Err(_) => dir.join(format!("seed-{}", file.seeds.first().copied().unwrap_or(1))).exists(),
            }
        })
        .map(|(dir, _)| dir.display().to_string())
        .collect();
    if !stale.is_empty() {
        bail!(
            "{} loop folder(s) hold rounds made with different settings than this file now gives them (a method's \
             settings, a loop setting or a default changed since) or by other code (method.toml's code_version), so \
             their rounds cannot be reused:\n  {}\n\
             Move or delete them to run them again, or pass another --out.",
            stale.len(),
            stale.join("\n  ")
        );
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    dsrm_files::write_atomic(&run_dir.join("loop.toml"), toml::to_string_pretty(&file)?.as_bytes())?;
    dsrm_nn::runtime::init(1, 0);
    let world = loading::load_world_from(&file.data, &file.env, &file.world, progress)?;
    let inputs = MetricInputs::new(&world, file.eval.mcd_dominant);
    provenance(&file, &world)?.write(&out.join("provenance.json"))?;

    begin(progress, "feedback loop", Some((file.methods.len() * file.seeds.len() * file.rounds) as u64));
    let mut all: BTreeMap<String, Vec<RoundRecord>> = BTreeMap::new();
    for (method, identity) in file.methods.iter().zip(&identities) {
        let method_dir = out.join(&method.name);
        std::fs::create_dir_all(&method_dir).with_context(|| format!("creating {}", method_dir.display()))?;
        dsrm_files::write_atomic(&method_dir.join(IDENTITY_FILE), identity.as_bytes())?;
        let mut lines = Vec::new();
        for &seed in &file.seeds {
            let dir = out.join(&method.name).join(format!("seed-{seed}"));
            let records = run_method(&file, &world, &inputs, method, seed, &dir, progress)?;
            lines.extend(records);
        }
        let text: String =
            lines.iter().map(|r| serde_json::to_string(r).map(|l| l + "\n")).collect::<Result<_, _>>()?;
        dsrm_files::write_atomic(&dsrm_report::rounds::rounds_path(run_dir, &method.name), text.as_bytes())?;
        all.insert(method.name.clone(), lines);
    }
    progress(Event::End);
    let (csv, markdown) = summarise(&all, &file, &world);
    dsrm_files::write_atomic(&out.join("summary.csv"), csv.as_bytes())?;
    dsrm_files::write_atomic(&out.join("summary.md"), markdown.as_bytes())?;
    Ok(markdown)
}

/// How to run a loop file (the flags of `dsrm loop`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopRequest<'a> {
    /// `--data`: the data set's directory, replacing the file's `[data] dir`.
    pub data: Option<&'a Path>,
    /// `--smoke`: the file's `[smoke]` version.
    pub smoke: bool,
    /// `--methods`: only these methods.
    pub methods: Option<&'a [String]>,
}

/// Where a method's loop folder records the settings its rounds were made with.
const IDENTITY_FILE: &str = "method.toml";

/// Which epoch of an RL agent a round serves. Part of a method's identity: rounds made when the loop served the
/// last epoch (before 2026-12-06; their `method.toml` has no `deploys`), or when a warm round could serve an
/// earlier round's epoch (`deploys = "validation-selected epoch"`), are refused, not mixed with these.
const DEPLOYS: &str = "validation-selected epoch among the round's own";

/// What a method's rounds depend on: the code that made them (`dsrm_train::CODE_VERSION`), the epoch a round
/// deploys ([`DEPLOYS`]) and the loop file without its seeds, round count and other methods (more seeds or rounds
/// extend a loop), plus the method itself.
fn method_identity(file: &LoopFile, method: &MethodConfig) -> Result<toml::Value> {
    let own = LoopFile { seeds: Vec::new(), rounds: 0, smoke: None, methods: vec![method.clone()], ..file.clone() };
    let mut identity = toml::Table::new();
    identity.insert("code_version".into(), dsrm_train::CODE_VERSION.into());
    identity.insert("deploys".into(), DEPLOYS.into());
    identity.insert("loop".into(), toml::Value::try_from(own)?);
    Ok(toml::Value::Table(identity))
}

/// All rounds of one (method, seed), reusing finished rounds; each round advances the loop's progress.
fn run_method(
    file: &LoopFile,
    world0: &World,
    inputs: &MetricInputs,
    method: &MethodConfig,
    seed: u64,
    dir: &Path,
    progress: Progress,
) -> Result<Vec<RoundRecord>> {
    let mut world = world0.with_log_fraction(file.initial_log_fraction, seed);
    let mechanisms = file.mechanisms_of(method);
    mechanisms.apply_abandonment(&mut world.spec).with_context(|| format!("method {:?}", method.name))?;
    let mut users = Population::new(&world0.spec.rewards, &world0.item_tags, mechanisms, seed)
        .with_context(|| format!("{}: the loop's users", method.name))?;
    let selection = method.loop_settings.as_ref().and_then(|l| l.selection).unwrap_or(Selection::Sampled);
    let mut records = Vec::new();
    // What the previous round served (the rows its log gained), for an incremental refit of an ensemble.
    let mut previous_served: Vec<Served> = Vec::new();
    for round in 0..file.rounds {
        world.spec.rewards = users.truth().clone();
        let round_dir = dir.join(format!("round-{round}"));
        let record_path = round_dir.join("round.json");
        let served_path = round_dir.join("served.jsonl");
        let (record, served, next) = if record_path.exists() && served_path.exists() {
            let record: RoundRecord = read_json(&record_path)?;
            let served = read_served(&served_path)?;
            let next = logged_world(&world, &served);
            (record, served, next)
        } else {
            let new_rows = served_rows(&world, &previous_served);
            let (mut fitted, deployed_epoch) = fit(file, &world, &new_rows, method, seed, round, dir, progress)
                .with_context(|| format!("{} seed {seed} round {round}", method.name))?;
            let (trajectories, metrics) = deploy(file, &world, inputs, fitted.policy(), selection, seed, round);
            if let Some(e) = fitted.take_error() {
                bail!("{} seed {seed} round {round}: the agent failed while serving: {e}", method.name);
            }
            // Conformity: what joins the log is the reward the users report, inflated by the item's exposure in
            // the log so far; the true reward is kept beside it.
            let z = match mechanisms.conformity > 0.0 {
                true => Some(conformity::standardised_log_exposure(&conformity::log_counts(
                    &world.train.item,
                    world.spec.n_items(),
                ))),
                false => None,
            };
            let served: Vec<Served> = trajectories
                .into_iter()
                .map(|(user, items, rewards)| Served {
                    logged: z.as_ref().map(|z| conformity::logged(&items, &rewards, z, mechanisms.conformity)),
                    user,
                    items,
                    rewards,
                })
                .collect();
            let next = logged_world(&world, &served);
            let mut record = measures::round_record(&world, &next, inputs, &metrics, &served, seed, round);
            record.deployed_epoch = deployed_epoch;
            let text: String =
                served.iter().map(|s| serde_json::to_string(s).map(|l| l + "\n")).collect::<Result<_, _>>()?;
            dsrm_files::write_atomic(&served_path, text.as_bytes())?;
            dsrm_files::write_json(&record_path, &record)?;
            (record, served, next)
        };
        progress(Event::Message(format!("{} seed {seed} round {round}: Gini {:.3}", method.name, record.gini)));
        progress(Event::Advance(1));
        records.push(record);
        users.consume(served.iter().map(|s| (s.user, &s.items[..])));
        world = next;
        previous_served = served;
    }
    Ok(records)
}

/// The rows `served` added to `world`'s log (logged rewards), in `world.train_full`'s shape.
fn served_rows(world: &World, served: &[Served]) -> Interactions {
    let mut rows =
        Interactions { n_users: world.train_full.n_users, n_items: world.train_full.n_items, ..Default::default() };
    for s in served {
        for (&item, &reward) in s.items.iter().zip(s.logged()) {
            rows.user.push(s.user);
            rows.item.push(item);
            rows.target.push(reward);
        }
    }
    rows
}

/// `world` after `served` joined its log with the logged rewards.
fn logged_world(world: &World, served: &[Served]) -> World {
    world.with_logged_episodes(served.iter().map(|s| (s.user, &s.items[..], s.logged())))
}

/// A round's agent folder keeps each trained epoch's checkpoint in `epochs/<e>/`.
const EPOCHS_DIR: &str = "epochs";
/// The trainer's checkpoint file (the last epoch's).
const CHECKPOINT: &str = "checkpoint.bin";

/// Copies `from` (a checkpoint) to `epochs_dir/<epoch>/checkpoint.bin`, atomically.
fn keep_checkpoint(from: &Path, epochs_dir: &Path, epoch: usize) -> Result<()> {
    let to = epochs_dir.join(epoch.to_string()).join(CHECKPOINT);
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    dsrm_files::write_atomic(&to, &bytes).with_context(|| format!("writing {}", to.display()))
}

/// The method fitted on this round's log, ready to serve, and for an RL agent the epoch it deploys: the
/// validation-selected one of [`TrainSummary::selected_epoch`]. `new_rows` are the rows the log gained in the
/// previous round (an incremental ensemble refit trains on them).
#[allow(clippy::too_many_arguments)]
fn fit(
    file: &LoopFile,
    world: &World,
    new_rows: &Interactions,
    method: &MethodConfig,
    seed: u64,
    round: usize,
    dir: &Path,
    progress: Progress,
) -> Result<(Fitted, Option<usize>)> {
    if let Some(kind) = method.heuristic {
        return Ok((Fitted::Heuristic(build_heuristic(world, kind, &file.heuristics, seed)?), None));
    }
    let mut cfg: TrainConfig = method.train.clone().expect("an RL method");
    cfg.seed = seed;
    file.stage_seeds.apply(&mut cfg, seed);
    cfg.eval = file.eval.clone();
    // A checkpoint after every epoch, each kept under `epochs/` (not part of a run's identity: the same results).
    cfg.checkpoint_every = 1;
    let run_dir = dir.join(format!("round-{round}")).join("agent");
    let epochs_dir = run_dir.join(EPOCHS_DIR);
    let resumed = run_dir.join(CHECKPOINT).exists();
    if file.warm_start && round > 0 {
        // Continue the previous round's *deployed* agent, its validation-selected epoch e (weights, optimiser, and
        // the log, which the trainer cuts back to e on resuming), in the refitted world model, for exactly
        // `epochs_per_round` epochs (e + 1 ..= e + epochs_per_round), so every round costs the same; its DSRM
        // stage, if any, continues from the previous round's on this round's log (`stage_refit_epochs`; 0 keeps
        // round 0's).
        let previous = dir.join(format!("round-{}", round - 1)).join("agent");
        let summary: TrainSummary = read_json(&previous.join("summary.json"))?;
        let epoch = summary.selected_epoch;
        cfg.epochs = epoch + file.epochs_per_round;
        // The round deploys one of its own epochs, scored on this round's validation users in this round's
        // environment (drifted users, refitted world model and stage); an earlier round's score was measured in
        // another, and its weights were trained on another stage's states.
        cfg.select_from_epoch = epoch + 1;
        if !run_dir.join(CHECKPOINT).exists() {
            std::fs::create_dir_all(&run_dir)?;
            let selected = previous.join(EPOCHS_DIR).join(epoch.to_string()).join(CHECKPOINT);
            keep_checkpoint(&selected, &epochs_dir, epoch)?;
            for name in ["log.jsonl", "timing.jsonl", "dsrm.bin", "code_version"] {
                let from = previous.join(name);
                if from.exists() {
                    std::fs::copy(&from, run_dir.join(name)).with_context(|| format!("copying {}", from.display()))?;
                }
            }
            if let Some(stage) = cfg.dsrm.as_ref().filter(|_| file.stage_refit_epochs > 0) {
                let label = format!("{} seed {seed} round {round}", method.name);
                refit_stage(stage, file.stage_refit_epochs, world, round, &run_dir, &label, progress)?;
            }
            // Last, atomically: a run folder with a checkpoint is a run to resume.
            let bytes = std::fs::read(&selected).with_context(|| format!("reading {}", selected.display()))?;
            dsrm_files::write_atomic(&run_dir.join(CHECKPOINT), &bytes)?;
        }
    }
    if resumed {
        // A run that resumes from its checkpoint may have stopped between writing it and keeping a copy: keep the
        // checkpoint's epoch now (for a finished run, the last epoch again, the same bytes).
        let path = run_dir.join(CHECKPOINT);
        let (_, meta) = dsrm_nn::checkpoint::load(&path).with_context(|| format!("reading {}", path.display()))?;
        let epoch = meta["epoch"].as_u64().with_context(|| format!("{}: no epoch in its metadata", path.display()))?;
        keep_checkpoint(&path, &epochs_dir, epoch as usize)?;
    }
    // The world model is refitted on this round's log: from scratch (never reloaded from an earlier round), or for a
    // DeepFM ensemble under `[ensemble_refit] mode = "incremental"` continued from the previous round's, written
    // here as the round's world model before `reward_model` reads it.
    let world_model = WorldModelConfig { checkpoint: None, ..file.world_model_of(method).clone() };
    if round > 0 && file.ensemble_refit.mode == RefitMode::Incremental && world_model.reward.uses_ensemble() {
        let label = format!("{} seed {seed} round {round}", method.name);
        continue_ensemble(file, world, new_rows, dir, round, &run_dir, &label, seed, progress)?;
    }
    // Round 0's log is the data set's, shared by every method and seed; later rounds' logs are one run's own.
    let mf_cache = if round == 0 { MfCache::Use } else { MfCache::Skip };
    let (reward, embeddings) =
        reward_model(&world_model, world, &run_dir, true, cfg.dsrm.is_some(), mf_cache, progress)?;
    let inputs = MetricInputs::new(world, file.eval.mcd_dominant);
    let pretrained = || embeddings.as_ref().map(|e| e.shallow_clone());
    let mut kept: Result<()> = Ok(());
    let mut keep = |event: ProgressEvent| {
        if let ProgressEvent::EpochDone { epoch, checkpointed: true, .. } = event {
            if kept.is_ok() {
                kept = keep_checkpoint(&run_dir.join(CHECKPOINT), &epochs_dir, epoch);
            }
        }
    };
    let summary = dsrm_train::train(&cfg, world, &inputs, reward.as_ref(), pretrained(), &run_dir, true, &mut keep)
        .with_context(|| format!("training in {}", run_dir.display()))?;
    kept?;
    // Deploy the epoch the trainer selected on the validation users, not the last one.
    let epoch = summary.selected_epoch;
    let deployed = epochs_dir.join(epoch.to_string());
    if !deployed.join(CHECKPOINT).exists() {
        bail!(
            "{}: the selected epoch {epoch} has no kept checkpoint (delete the round's folder to train it again)",
            deployed.display()
        );
    }
    // The DSRM stage is the run's (pretrained before RL, the same for every epoch).
    let stage = run_dir.join(dsrm_denoise::stage::RUN_FILE);
    let stage_copy = deployed.join(dsrm_denoise::stage::RUN_FILE);
    if stage.exists() && !stage_copy.exists() {
        std::fs::hard_link(&stage, &stage_copy)
            .or_else(|_| std::fs::copy(&stage, &stage_copy).map(|_| ()))
            .with_context(|| format!("copying {} to {}", stage.display(), stage_copy.display()))?;
    }
    let policy = dsrm_train::load_trained(&cfg, world, pretrained(), &deployed)?;
    Ok((Fitted::Agent(policy), Some(epoch)))
}

/// Writes `run_dir/world_model.bin`: the previous round's ensemble continued on this round's log by an incremental
/// refit on `new_rows` (`dsrm_world::refit`), seeded by (seed, round). A round that has it (resumed) keeps it.
#[allow(clippy::too_many_arguments)]
fn continue_ensemble(
    file: &LoopFile,
    world: &World,
    new_rows: &Interactions,
    dir: &Path,
    round: usize,
    run_dir: &Path,
    label: &str,
    seed: u64,
    progress: Progress,
) -> Result<()> {
    let saved = run_dir.join(WORLD_MODEL_FILE);
    if saved.exists() {
        return Ok(());
    }
    let previous = dir.join(format!("round-{}", round - 1)).join("agent").join(WORLD_MODEL_FILE);
    let refit = file.ensemble_refit.incremental();
    let passes = refit.epochs as u64;
    begin(
        progress,
        format!("{label}: continuing the user-model ensemble on {} new rows", new_rows.len()),
        Some(passes),
    );
    let continued = UserModelEnsemble::continue_on(
        &previous,
        world,
        new_rows,
        &refit,
        (seed << 16) | round as u64,
        &mut |m, e, loss| {
            progress(Event::Message(format!("model {} pass {} loss {loss:.4}", m + 1, e + 1)));
            if m == 0 {
                progress(Event::Advance(1));
            }
        },
    );
    progress(Event::End);
    let continued = continued.with_context(|| format!("{label}: continuing {}", previous.display()))?;
    std::fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    continued.save(&saved).with_context(|| format!("saving {}", saved.display()))?;
    Ok(())
}

/// Where a round's RL agent keeps its world model (`reward_model` writes and reads it there).
const WORLD_MODEL_FILE: &str = "world_model.bin";

/// Replaces `run_dir`'s DSRM stage (the previous round's) by the same stage refitted on `world`'s log for `epochs`
/// denoiser epochs, continuing from its weights (`DsrmModel::refit`; training seed: the stage's plus the round).
fn refit_stage(
    stage: &dsrm_denoise::stage::DsrmStageConfig,
    epochs: usize,
    world: &World,
    round: usize,
    run_dir: &Path,
    label: &str,
    progress: Progress,
) -> Result<()> {
    use dsrm_denoise::stage::{DsrmModel, RUN_FILE};
    if stage.joint_lambda != 0.0 || stage.checkpoint.is_some() {
        bail!(
            "stage_refit_epochs = {epochs}: a DSRM stage fine-tuned jointly (joint_lambda) or read from a checkpoint \
             is not refitted per round; set stage_refit_epochs = 0 in the loop file to keep round 0's stage"
        );
    }
    let path = run_dir.join(RUN_FILE);
    let previous = DsrmModel::load(&path).with_context(|| format!("reading {}", path.display()))?;
    let denoiser_seed = match &stage.denoiser {
        dsrm_denoise::DenoiserConfig::Ddpm(c) => c.train.seed,
        dsrm_denoise::DenoiserConfig::Ddim(c) => c.ddpm.train.seed,
        dsrm_denoise::DenoiserConfig::Flow(c) => c.train.seed,
        _ => 0,
    };
    let cfg = dsrm_denoise::stage::DsrmStageConfig {
        denoiser: stage.denoiser.with_training(epochs, denoiser_seed.wrapping_add(round as u64)),
        ..stage.clone()
    };
    let refitted = previous
        .refit(&cfg, world, &mut |_| {})
        .with_context(|| format!("refitting the DSRM stage of {}", run_dir.display()))?;
    let best = refitted.reports.first().map(|r| r.best_valid_loss).unwrap_or(f64::NAN);
    note(progress, format!("{label}: DSRM stage refitted on the round's log ({epochs} epochs, valid loss {best:.4})"));
    refitted.save(&path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A method fitted for one round.
enum Fitted {
    Heuristic(Box<dyn Policy>),
    /// A trained agent; it reports errors met while acting (see `EvalPolicy`).
    Agent(Box<dyn dsrm_agents::EvalPolicy>),
}

impl Fitted {
    fn policy(&mut self) -> &mut dyn Policy {
        match self {
            Fitted::Heuristic(p) => p.as_mut(),
            Fitted::Agent(p) => p.as_mut(),
        }
    }
    fn take_error(&self) -> Option<String> {
        match self {
            Fitted::Heuristic(_) => None,
            Fitted::Agent(p) => p.take_error(),
        }
    }
}

/// One served episode: (user, items, true rewards).
type Trajectory = (u32, Vec<u32>, Vec<f64>);

/// Serves one round of episodes: each episode's (user, items, true rewards), and the round's metrics.
fn deploy(
    file: &LoopFile,
    world: &World,
    inputs: &MetricInputs,
    policy: &mut dyn Policy,
    selection: Selection,
    seed: u64,
    round: usize,
) -> (Vec<Trajectory>, dsrm_metrics::MetricSet) {
    let eval = EvalConfig { episodes: file.served_episodes, ..file.eval.clone() };
    let run = EvalRun {
        mode: Mode::NoRepeat,
        selection,
        seed: seed.wrapping_mul(1_000_003).wrapping_add(round as u64),
        users: None,
    };
    let result = evaluate(&world.spec, inputs, policy, &eval, run);
    let served =
        result.trajectories.into_iter().map(|t| (t.episode.user, t.episode.items, t.episode.rewards)).collect();
    (served, result.metrics)
}

/// Mean ± 95% CI over seeds per (method, round), as CSV (every measure) and a Markdown table.
fn summarise(all: &BTreeMap<String, Vec<RoundRecord>>, file: &LoopFile, world: &World) -> (String, String) {
    const TABLE: [&str; 8] =
        ["Gini", "LogGini", "Homogenisation", "LongTailShare", "Coverage", "R_tra", "TrueUtility", "LoggedUtility"];
    let mut csv = String::from("method,round,metric,mean,ci95,n\n");
    let label = if world.is_synthetic() { "SYNTHETIC KuaiRec-format data" } else { world.dataset.as_str() };
    let mut md = format!(
        "# Feedback loop: {label}, seeds {:?}, {} served episodes per round (NX_0)\n\n| method | round | {} |\n|{}\n",
        file.seeds,
        file.served_episodes,
        TABLE.join(" | "),
        "---|".repeat(TABLE.len() + 2)
    );
    for (method, records) in all {
        for round in 0..file.rounds {
            let mut values: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            for r in records.iter().filter(|r| r.round == round) {
                r.metrics().into_iter().for_each(|(k, v)| values.entry(k).or_default().push(v));
            }
            for (name, v) in &values {
                let mc = dsrm_metrics::mean_ci95(v);
                csv += &format!("{method},{round},{name},{},{},{}\n", mc.mean, mc.half_width, v.len());
            }
            let cells: Vec<String> = TABLE
                .iter()
                .map(|k| values.get(k).map(|v| format!("{:.4}", dsrm_metrics::mean_ci95(v))).unwrap_or_default())
                .collect();
            md += &format!("| {method} | {round} | {} |\n", cells.join(" | "));
        }
    }
    (csv, md)
}

fn provenance<'a>(file: &LoopFile, world: &'a World) -> Result<Provenance<'a>> {
    Provenance {
        synthetic: Some(world.is_synthetic()),
        dataset: Some(&world.dataset),
        seeds: Some(Seeds::List(file.seeds.clone())),
        mode: Some(Mode::NoRepeat.key()),
        selection: Some("sampled"),
        world: Some(WorldSummary::size(world)),
        data: Some(&world.provenance),
        ..Provenance::new()
    }
    .with_config(file)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a round record", path.display()))
}

fn read_served(path: &Path) -> Result<Vec<Served>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{}:{}: expected {{\"user\", \"items\", \"rewards\"}}", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The tiny synthetic KuaiRec set, generated in `dir/tiny`.
    fn tiny_data(dir: &Path) -> PathBuf {
        let data = dir.join("tiny");
        let cfg = dsrm_data::synth::SynthConfig::for_size(dsrm_data::synth::SynthSize::Tiny);
        dsrm_data::synth::generate(&cfg, 0, &data, &mut |_, _, _| {}).unwrap();
        data
    }

    fn write_config(dir: &Path, data: &Path) -> PathBuf {
        let text = format!(
            "seeds = [1, 2]\nrounds = 3\nserved_episodes = 40\nwarm_start = true\nepochs_per_round = 1\ninitial_log_fraction = 0.5\n\
             [data]\ndataset = \"kuairec\"\ndir = {data:?}\n[eval]\nepisodes = 10\n[world_model]\nreward = \"mf\"\n\
             [[methods]]\nname = \"most-popular\"\nheuristic = \"most-popular\"\n\
             [[methods]]\nname = \"a2c\"\n[methods.train]\nepochs = 1\nsteps_per_epoch = 100\nparallel_envs = 10\n"
        );
        let path = dir.join("loop.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_example_loop_config_parses_and_bad_fractions_fail() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/loop/kuairec.toml");
        let file = LoopFile::load(&path).unwrap();
        assert!(file.methods.iter().any(|m| m.train.as_ref().is_some_and(|t| t.dsrm.is_some())));
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.toml");
        let text =
            std::fs::read_to_string(&path).unwrap().replace("initial_log_fraction = 0.02", "initial_log_fraction = 0");
        std::fs::write(&bad, text).unwrap();
        assert!(format!("{:#}", LoopFile::load(&bad).unwrap_err()).contains("initial_log_fraction"));
        // The drift studies (issue 16) run SAC4IR beside DNaIR.
        for name in ["drift.toml", "drift-coat.toml"] {
            let file = LoopFile::load(&path.with_file_name(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let kinds: Vec<&str> =
                file.methods.iter().filter_map(|m| m.train.as_ref()).map(|t| t.algorithm.name()).collect();
            assert!(kinds.contains(&"dnair") && kinds.contains(&"sac4ir"), "{name}: {kinds:?}");
        }
    }

    #[test]
    fn the_schedule_puts_every_learned_loop_method_on_the_same_updates_or_refuses_it() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/loop");
        for name in ["drift.toml", "drift-coat.toml"] {
            let file = LoopFile::load(&root.join(name)).unwrap();
            let s = file.schedule.clone().expect("the drift loops are paced");
            let mut learned = 0;
            for m in &file.methods {
                let Some(t) = &m.train else { continue };
                learned += 1;
                assert_eq!(t.algorithm.updates_per_1k_steps(), Some(s.updates_per_1k_steps), "{name} {}", m.name);
                let steps: Vec<usize> =
                    file.methods.iter().filter_map(|m| m.train.as_ref()).map(|t| t.steps_per_epoch).collect();
                assert!(steps.iter().all(|&n| n == t.steps_per_epoch), "{name}: equal steps per round");
            }
            assert!(learned >= 5, "{name}: {learned} learned methods");
        }
        // A learner with no equal-update schedule is refused, unless it keeps its own, and then it is untouched.
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(root.join("drift-coat.toml")).unwrap();
        let dqn = text.replacen("kind = \"ppo\"", "kind = \"dqn\"", 1);
        let path = dir.path().join("dqn.toml");
        std::fs::write(&path, &dqn).unwrap();
        let err = format!("{:#}", LoopFile::load(&path).unwrap_err());
        assert!(err.contains("[schedule]") && err.contains("flat-ppo") && err.contains("dqn"), "{err}");
        let own = dqn.replacen("kind = \"dqn\"", "kind = \"dqn\"\n[methods.loop]\nschedule = \"own\"", 1);
        std::fs::write(&path, own).unwrap();
        let file = LoopFile::load(&path).unwrap();
        let m = file.methods.iter().find(|m| m.name == "flat-ppo").unwrap();
        assert_eq!(m.train.as_ref().unwrap().algorithm.updates_per_1k_steps(), None);
        let bad = text.replace("batch_size = 256", "batch_size = 0");
        std::fs::write(&path, bad).unwrap();
        assert!(format!("{:#}", LoopFile::load(&path).unwrap_err()).contains("batch_size"));
        // `mask_shown` in [schedule] reaches every learned method; without it none masks.
        assert!(LoopFile::load(&root.join("drift-coat.toml"))
            .unwrap()
            .methods
            .iter()
            .filter_map(|m| m.train.as_ref())
            .all(|t| !t.algorithm.mask_shown()));
        let masked = text.replacen("batch_size = 256", "batch_size = 256\nmask_shown = true", 1);
        std::fs::write(&path, masked).unwrap();
        let file = LoopFile::load(&path).unwrap();
        let learned: Vec<_> = file.methods.iter().filter_map(|m| m.train.as_ref()).collect();
        assert!(learned.len() >= 5 && learned.iter().all(|t| t.algorithm.mask_shown()));
    }

    #[test]
    fn the_loop_deploys_the_validation_selected_epoch() {
        let _torch = dsrm_nn::runtime::exclusive();
        let dir = tempfile::tempdir().unwrap();
        let data = tiny_data(dir.path());
        let text = format!(
            "seeds = [1]\nrounds = 1\nserved_episodes = 40\n[data]\ndataset = \"kuairec\"\ndir = {data:?}\n\
             [eval]\nepisodes = 10\n[world_model]\nreward = \"mf\"\n\
             [[methods]]\nname = \"a2c\"\n[methods.train]\nepochs = 3\nsteps_per_epoch = 100\nparallel_envs = 10\n"
        );
        let config = dir.path().join("loop.toml");
        std::fs::write(&config, text).unwrap();
        let out = dir.path().join("run");
        let agent = out.join("loop/a2c/seed-1/round-0/agent");
        let read_record = || -> RoundRecord {
            let text = std::fs::read_to_string(out.join("loop/a2c/rounds.jsonl")).unwrap();
            serde_json::from_str(text.lines().next().unwrap()).unwrap()
        };
        run(&config, &LoopRequest::default(), &out, &crate::progress::quiet).unwrap();
        // The deployed epoch is the trainer's selection, and every epoch's checkpoint was kept.
        let summary: TrainSummary = read_json(&agent.join("summary.json")).unwrap();
        assert_eq!(read_record().deployed_epoch, Some(summary.selected_epoch));
        for e in 1..=3 {
            assert!(agent.join(format!("epochs/{e}/checkpoint.bin")).exists(), "epoch {e} kept");
        }

        // Make epoch 1 the validation-selected one (its validation NX_0 R_tra the best in the log; the trainer
        // selects from the log), drop the round's deployment and run the loop again: it deploys epoch 1, not
        // the last epoch 3.
        let log = std::fs::read_to_string(agent.join("log.jsonl")).unwrap();
        let lines: Vec<String> = log
            .lines()
            .map(|line| {
                let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
                let score = if v["epoch"] == 1 { 1e6 } else { -1e6 };
                v["validation"]["sampled"]["NX_0"]["R_tra"] = serde_json::json!(score);
                serde_json::to_string(&v).unwrap()
            })
            .collect();
        std::fs::write(agent.join("log.jsonl"), lines.join("\n") + "\n").unwrap();
        let round_dir = out.join("loop/a2c/seed-1/round-0");
        std::fs::remove_file(round_dir.join("round.json")).unwrap();
        std::fs::remove_file(round_dir.join("served.jsonl")).unwrap();
        run(&config, &LoopRequest::default(), &out, &crate::progress::quiet).unwrap();
        let summary: TrainSummary = read_json(&agent.join("summary.json")).unwrap();
        assert_eq!((summary.selected_epoch, summary.last_epoch), (1, 3));
        assert_eq!(read_record().deployed_epoch, Some(1));

        // What was served is epoch 1's policy, not the last epoch's.
        let file = LoopFile::load(&config).unwrap();
        let world0 = loading::load_world_from(&file.data, &file.env, &file.world, &crate::progress::quiet).unwrap();
        let inputs = MetricInputs::new(&world0, file.eval.mcd_dominant);
        let world = world0.with_log_fraction(file.initial_log_fraction, 1);
        let mut train = file.methods[0].train.clone().unwrap();
        train.seed = 1;
        train.eval = file.eval.clone();
        let served_by = |run_dir: &Path| -> Vec<Vec<u32>> {
            let mut policy = dsrm_train::load_trained(&train, &world, None, run_dir).unwrap();
            let (served, _) = deploy(&file, &world, &inputs, policy.as_mut(), Selection::Sampled, 1, 0);
            served.into_iter().map(|(_, items, _)| items).collect()
        };
        let logged: Vec<Vec<u32>> =
            read_served(&round_dir.join("served.jsonl")).unwrap().into_iter().map(|s| s.items).collect();
        assert_eq!(logged, served_by(&agent.join("epochs/1")));
        assert_ne!(logged, served_by(&agent), "the last epoch (checkpoint.bin) serves other items");
    }

    /// The positive control on tiny data: MF-greedy refitted on its own log concentrates exposure and
    /// homogenises consumption when the mechanisms are on, and does not when they are off. Removing the
    /// mechanisms (or their effect on the log or the users) fails this test.
    #[test]
    fn the_mechanisms_drive_mf_greedy_to_concentrate_and_their_absence_does_not() {
        let _torch = dsrm_nn::runtime::exclusive();
        let dir = tempfile::tempdir().unwrap();
        let data = tiny_data(dir.path());
        let text = format!(
            "seeds = [1]\nrounds = 5\nserved_episodes = 300\ninitial_log_fraction = 0.05\n\
             [data]\ndataset = \"kuairec\"\ndir = {data:?}\n[env]\npreset = \"dsrm-hrl-paper\"\n[eval]\nepisodes = 10\n\
             [mechanisms]\nconformity = 0.5\ndrift = 0.1\nsatiation = 0.3\n\
             [[methods]]\nname = \"on\"\nheuristic = \"mf-greedy\"\n[methods.loop]\nselection = \"argmax\"\n\
             [[methods]]\nname = \"off\"\nheuristic = \"mf-greedy\"\n[methods.loop]\nselection = \"argmax\"\n\
             mechanisms = {{ abandonment = false }}\n"
        );
        let config = dir.path().join("loop.toml");
        std::fs::write(&config, text).unwrap();
        let out = dir.path().join("run");
        run(&config, &LoopRequest::default(), &out, &crate::progress::quiet).unwrap();
        let read = |method: &str| -> Vec<RoundRecord> {
            let text = std::fs::read_to_string(out.join("loop").join(method).join("rounds.jsonl")).unwrap();
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
        };
        let (on, off) = (read("on"), read("off"));
        let last = |r: &[RoundRecord]| *r.last().unwrap();
        let (on, off) = (last(&on), last(&off));
        assert!(on.gini > off.gini + 0.01, "round 4 Gini: on {} off {}", on.gini, off.gini);
        let (h_on, h_off) = (on.homogenisation.unwrap(), off.homogenisation.unwrap());
        assert!(h_on > h_off + 0.05, "round 4 homogenisation: on {h_on} off {h_off}");
        // Conformity shows in the log, not in the truth: logged utility above true utility, equal without it.
        assert!(on.logged_utility.unwrap() > on.true_utility.unwrap() + 0.1);
        assert_eq!(off.logged_utility, off.true_utility);
        // Finished rounds replay the users' drift and satiation: a rerun gives the same records.
        std::fs::remove_file(out.join("loop/on/rounds.jsonl")).unwrap();
        std::fs::remove_dir_all(out.join("loop/on/seed-1/round-4")).unwrap();
        run(&config, &LoopRequest::default(), &out, &crate::progress::quiet).unwrap();
        assert_eq!(last(&read("on")), on);
    }

    #[test]
    fn a_warm_loop_refits_the_dsrm_stage_each_round_and_reads_a_methods_own_world_model() {
        let _torch = dsrm_nn::runtime::exclusive();
        let dir = tempfile::tempdir().unwrap();
        let data = tiny_data(dir.path());
        let run_with = |refit: usize| -> PathBuf {
            let config = dir.path().join(format!("loop-{refit}.toml"));
            let text = format!(
                "seeds = [1]\nrounds = 2\nserved_episodes = 20\nwarm_start = true\nstage_refit_epochs = {refit}\n\
                 [data]\ndataset = \"kuairec\"\ndir = {data:?}\n[eval]\nepisodes = 10\n[world_model]\nreward = \"mf\"\n\
                 [[methods]]\nname = \"dsrm-a2c\"\n[methods.train]\nepochs = 1\nsteps_per_epoch = 60\nparallel_envs = 10\n\
                 [methods.train.dsrm]\nmax_states = 400\n[methods.train.dsrm.denoiser]\nkind = \"ddpm\"\nhidden = [8]\n\
                 [methods.train.dsrm.denoiser.train]\nmax_epochs = 1\n\
                 [[methods]]\nname = \"dorl\"\n[methods.train]\nepochs = 1\nsteps_per_epoch = 60\nparallel_envs = 10\n\
                 [methods.world_model]\nreward = \"dorl\"\n[methods.world_model.ensemble]\nn_models = 2\n\
                 [methods.world_model.ensemble.model]\nepochs = 1\n"
            );
            std::fs::write(&config, text).unwrap();
            let out = dir.path().join(format!("run-{refit}"));
            run(&config, &LoopRequest::default(), &out, &crate::progress::quiet).unwrap();
            out
        };
        let stage = |out: &Path, round: usize| {
            std::fs::read(out.join(format!("loop/dsrm-a2c/seed-1/round-{round}/agent/dsrm.bin"))).unwrap()
        };
        let refitted = run_with(2);
        assert_ne!(stage(&refitted, 1), stage(&refitted, 0), "round 1's stage was refitted on round 1's log");
        let kept = run_with(0);
        assert_eq!(stage(&kept, 0), stage(&refitted, 0), "round 0 is the same in both");
        assert_eq!(stage(&kept, 1), stage(&kept, 0), "stage_refit_epochs = 0 keeps round 0's stage");
        // DORL's own [methods.world_model] (its ensemble), not the loop's MF, refitted in every round.
        for round in 0..2 {
            let agent = refitted.join(format!("loop/dorl/seed-1/round-{round}/agent"));
            assert!(agent.join("world_model.bin").exists(), "round {round}: no ensemble in {}", agent.display());
            let mf = refitted.join(format!("loop/dsrm-a2c/seed-1/round-{round}/agent/world_model.bin"));
            assert!(!mf.exists(), "the MF world model is not saved as an ensemble");
        }
    }

    #[test]
    fn an_incremental_ensemble_refit_continues_the_previous_rounds_members_on_the_rows_served_since() {
        let _torch = dsrm_nn::runtime::exclusive();
        let dir = tempfile::tempdir().unwrap();
        let data = tiny_data(dir.path());
        let config_with = |name: &str, refit: &str| -> PathBuf {
            let config = dir.path().join(format!("{name}.toml"));
            let text = format!(
                "seeds = [1]\nrounds = 3\nserved_episodes = 20\nwarm_start = true\n{refit}\n\
                 [data]\ndataset = \"kuairec\"\ndir = {data:?}\n[eval]\nepisodes = 10\n\
                 [[methods]]\nname = \"dorl\"\n[methods.train]\nepochs = 1\nsteps_per_epoch = 60\nparallel_envs = 10\n\
                 [methods.world_model]\nreward = \"dorl\"\n[methods.world_model.ensemble]\nn_models = 2\n\
                 [methods.world_model.ensemble.model]\nepochs = 1\n"
            );
            std::fs::write(&config, text).unwrap();
            config
        };
        // Settings that cannot refit are refused when the file is read, naming the table.
        let bad = config_with("bad", "[ensemble_refit]\nmode = \"incremental\"\nreplay = -1.0");
        let err = format!("{:#}", LoopFile::load(&bad).unwrap_err());
        assert!(err.contains("[ensemble_refit]") && err.contains("replay"), "{err}");
        let typo = config_with("typo", "[ensemble_refit]\nmode = \"incremental\"\npasses = 2");
        assert!(LoopFile::load(&typo).is_err(), "unknown keys are errors");

        let run_with = |name: &str, refit: &str| -> PathBuf {
            let out = dir.path().join(name);
            run(&config_with(name, refit), &LoopRequest::default(), &out, &crate::progress::quiet).unwrap();
            out
        };
        let scratch = run_with("scratch", "");
        let incremental = run_with("incremental", "[ensemble_refit]\nmode = \"incremental\"\nepochs = 2");
        let agent = |out: &Path, round: usize| out.join(format!("loop/dorl/seed-1/round-{round}/agent"));
        let ensemble = |out: &Path, round: usize| {
            let path = agent(out, round).join(WORLD_MODEL_FILE);
            let (_, meta) = dsrm_nn::checkpoint::load(&path).unwrap();
            (std::fs::read(&path).unwrap(), meta)
        };
        let served_rows = |out: &Path, round: usize| -> usize {
            let path = out.join(format!("loop/dorl/seed-1/round-{round}/served.jsonl"));
            read_served(&path).unwrap().iter().map(|s| s.items.len()).sum()
        };
        assert_eq!(ensemble(&scratch, 0).0, ensemble(&incremental, 0).0, "round 0 trains the same ensemble");
        assert!(ensemble(&scratch, 1).1.get("refits").is_none(), "from scratch: no refit recorded");
        for round in 1..3 {
            let (bytes, meta) = ensemble(&incremental, round);
            assert_ne!(bytes, ensemble(&scratch, round).0, "round {round}: continued, not trained anew");
            let refits = meta["refits"].as_array().unwrap();
            assert_eq!(refits.len(), round, "round {round} continues round {}'s, which continued ...", round - 1);
            let last = &refits[round - 1];
            assert_eq!(last["new_rows"].as_u64().unwrap() as usize, served_rows(&incremental, round - 1));
            assert_eq!(last["epochs"], 2);
            assert_eq!(last["from_data"], ensemble(&incremental, round - 1).1["data"]["hash"]);
            // Each member went on from where the previous round left it: 1 epoch in round 0, then 2 per round.
            assert!(meta["history"].as_array().unwrap().iter().all(|h| h.as_array().unwrap().len() == 1 + 2 * round));
        }
    }

    #[test]
    fn a_warm_started_round_continues_from_the_previous_rounds_selected_epoch() {
        let _torch = dsrm_nn::runtime::exclusive();
        let dir = tempfile::tempdir().unwrap();
        let data = tiny_data(dir.path());
        let config = dir.path().join("loop.toml");
        let write = |rounds: usize| {
            let text = format!(
                "seeds = [1]\nrounds = {rounds}\nserved_episodes = 40\nwarm_start = true\nepochs_per_round = 1\n\
                 [data]\ndataset = \"kuairec\"\ndir = {data:?}\n[eval]\nepisodes = 10\n[world_model]\nreward = \"mf\"\n\
                 [[methods]]\nname = \"a2c\"\n[methods.train]\nepochs = 2\nsteps_per_epoch = 100\nparallel_envs = 10\n"
            );
            std::fs::write(&config, text).unwrap();
        };
        let out = dir.path().join("run");
        write(1);
        run(&config, &LoopRequest::default(), &out, &crate::progress::quiet).unwrap();
        // Make round 0's selected epoch 1 of 2 (as if its validation had said so).
        let round0 = out.join("loop/a2c/seed-1/round-0/agent");
        let mut summary: serde_json::Value = read_json(&round0.join("summary.json")).unwrap();
        summary["selected_epoch"] = serde_json::json!(1);
        std::fs::write(round0.join("summary.json"), summary.to_string()).unwrap();
        // ... and give epoch 1 a validation score no later epoch can reach: round 1 must still deploy its own
        // epoch 2, since epoch 1 was scored in round 0's environment.
        let log = std::fs::read_to_string(round0.join("log.jsonl")).unwrap();
        let mut first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        for modes in first["validation"].as_object_mut().unwrap().values_mut() {
            for m in modes.as_object_mut().unwrap().values_mut() {
                m["R_tra"] = serde_json::json!(1e9);
            }
        }
        let rest: Vec<&str> = log.lines().skip(1).collect();
        std::fs::write(round0.join("log.jsonl"), format!("{first}\n{}\n", rest.join("\n"))).unwrap();
        write(2);
        run(&config, &LoopRequest::default(), &out, &crate::progress::quiet).unwrap();
        let lines = |agent: &Path| -> Vec<String> {
            std::fs::read_to_string(agent.join("log.jsonl")).unwrap().lines().map(String::from).collect()
        };
        let (before, after) = (lines(&round0), lines(&out.join("loop/a2c/seed-1/round-1/agent")));
        // Round 1 continued from epoch 1 for one epoch (epochs_per_round), whatever round 0's last epoch was.
        assert_eq!((before.len(), after.len()), (2, 2));
        assert_eq!(after[0], before[0], "epoch 1 is the one continued from");
        assert_ne!(after[1], before[1], "epoch 2 was trained again from epoch 1, in round 1's world model");
        let record: serde_json::Value = read_json(&out.join("loop/a2c/seed-1/round-1/round.json")).unwrap();
        assert_eq!(record["deployed_epoch"], 2, "round 1 deploys its own epoch, not round 0's better-scored one");
    }

    #[test]
    fn loop_runs_rounds_grows_the_log_and_resumes() {
        let _torch = dsrm_nn::runtime::exclusive();
        let dir = tempfile::tempdir().unwrap();
        let data = tiny_data(dir.path());
        let config = write_config(dir.path(), &data);
        let out = dir.path().join("run");
        run(&config, &LoopRequest::default(), &out, &crate::progress::quiet).unwrap();
        let read = |method: &str| -> Vec<RoundRecord> {
            let text = std::fs::read_to_string(out.join("loop").join(method).join("rounds.jsonl")).unwrap();
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
        };
        for method in ["most-popular", "a2c"] {
            let records = read(method);
            assert_eq!(records.len(), 6, "2 seeds x 3 rounds");
            for seed in [1, 2] {
                let rows: Vec<_> = records.iter().filter(|r| r.seed == seed).collect();
                assert!(rows.windows(2).all(|w| w[1].log_rows > w[0].log_rows), "the log grows every round");
                assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.gini) && r.coverage > 0.0));
            }
        }
        // The agent continued training: round 2 ran 1 + 2 epochs, and each round deployed the epoch the trainer
        // selected over the continued run's log (the heuristic deploys no epoch).
        let log = std::fs::read_to_string(out.join("loop/a2c/seed-1/round-2/agent/log.jsonl")).unwrap();
        assert_eq!(log.lines().count(), 3);
        for r in read("a2c") {
            let agent = out.join(format!("loop/a2c/seed-{}/round-{}/agent", r.seed, r.round));
            let summary: TrainSummary = read_json(&agent.join("summary.json")).unwrap();
            assert_eq!(r.deployed_epoch, Some(summary.selected_epoch));
            assert!(summary.selected_epoch <= r.round + 1);
            assert!(agent.join(format!("epochs/{}/checkpoint.bin", summary.selected_epoch)).exists());
        }
        assert!(read("most-popular").iter().all(|r| r.deployed_epoch.is_none()));
        // Rerunning reuses every finished round and gives the same records.
        let before = read("a2c");
        std::fs::remove_file(out.join("loop/a2c/rounds.jsonl")).unwrap();
        run(&config, &LoopRequest::default(), &out, &crate::progress::quiet).unwrap();
        assert_eq!(read("a2c"), before);
        // Rounds made when the loop served the last epoch (a method.toml without `deploys`) are refused.
        let identity = out.join("loop/a2c/method.toml");
        let saved = std::fs::read_to_string(&identity).unwrap();
        let old: String = saved.lines().filter(|l| !l.starts_with("deploys")).map(|l| format!("{l}\n")).collect();
        assert_ne!(old, saved);
        std::fs::write(&identity, old).unwrap();
        let err = format!("{:#}", run(&config, &LoopRequest::default(), &out, &crate::progress::quiet).unwrap_err());
        assert!(err.contains("1 loop folder(s)") && err.contains("a2c") && !err.contains("most-popular"), "{err}");
        std::fs::write(&identity, saved).unwrap();
        // Changed settings are refused, naming the folder, rather than reusing rounds made under the old ones.
        let text = std::fs::read_to_string(&config).unwrap().replace("steps_per_epoch = 100", "steps_per_epoch = 120");
        std::fs::write(&config, text).unwrap();
        let err = format!("{:#}", run(&config, &LoopRequest::default(), &out, &crate::progress::quiet).unwrap_err());
        assert!(err.contains("1 loop folder(s)") && err.contains("a2c") && !err.contains("most-popular"), "{err}");
        assert!(out.join("loop/summary.md").exists());
        // `dsrm report` reads what the loop wrote.
        let path = dsrm_report::rounds::rounds_path(&out, "a2c");
        let for_report = dsrm_report::rounds::read_rounds(&path).unwrap().unwrap();
        assert_eq!(for_report.len(), 6);
        assert_eq!(for_report[0].gini, before[0].gini);
    }
}
