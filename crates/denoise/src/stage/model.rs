//! Steps 2–4: split the users, pair each state with its clean target, pretrain the denoiser on the pairs,
//! freeze it, save and load the stage.

use super::clean::{clean_targets, TargetReport};
use super::frozen::{
    debiased_targets, pretrain_tracker, replay, split_users, FrozenTracker, ReplayedStates, UserSplit,
};
use super::purified::{Memo, PurifiedTracker};
use super::{CleanTarget, DsrmStageConfig, Result, StageError, StageEvent, FORMAT};
use crate::{Denoiser, DenoiserConfig, EpochLog, FitReport};
use dsrm_nn::checkpoint;
use dsrm_nn::tch::Tensor;
use dsrm_sim::World;
use dsrm_state::{PretrainReport, StateTracker, TrackerConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::Mutex;

// ─────────────────────────────────── 2. pretrain, freeze, save ───────────────────────────────────

/// A trained (frozen) DSRM stage: the tracker it was trained on and the denoiser, as checkpoint parts.
#[derive(Debug)]
pub struct DsrmModel {
    pub(super) tracker_cfg: TrackerConfig,
    pub(super) condition_window: usize,
    /// What the denoiser was trained to map states to.
    pub target: CleanTarget,
    pub(super) n_items: usize,
    pub(super) pretrained: Option<Tensor>,
    pub(super) tracker_tensors: Vec<(String, Tensor)>,
    pub(super) denoiser_tensors: Vec<(String, Tensor)>,
    pub(super) denoiser_meta: serde_json::Value,
    /// What was trained (teacher first for `distilled`; empty for `identity`).
    pub reports: Vec<FitReport>,
    /// Replayed states used for training and validation.
    pub rows: (i64, i64),
    /// The one user split (train / validation / held out) and its seed; `None` in stages saved before it was
    /// recorded.
    pub split: Option<UserSplit>,
    /// Where the clean targets came from and what was dropped (`None` in stages saved before it existed).
    pub target_report: Option<TargetReport>,
    /// The tracker's next-item pretraining (step 0), when it had one.
    pub tracker_pretrain: Option<PretrainReport>,
    /// Extra metadata saved with the model (provenance: config, seed, data hashes).
    pub provenance: serde_json::Value,
    /// λ_D and the seed for the trackers this model hands out ([`Self::fine_tune_jointly`]; not saved: the
    /// pretrained stage is the same whatever the run does with it).
    pub(super) joint: Option<(f64, u64)>,
}

impl DsrmModel {
    /// Replays `world`'s training log through the frozen `tracker_cfg` tracker (reading `pretrained`) and
    /// trains `cfg.denoiser` on the states. Deterministic for the configs (one libtorch thread; hold
    /// `dsrm_nn::runtime::exclusive()` in multi-threaded tests).
    pub fn fit(
        cfg: &DsrmStageConfig,
        tracker_cfg: &TrackerConfig,
        world: &World,
        pretrained: Option<&Tensor>,
        progress: &mut dyn FnMut(StageEvent),
    ) -> Result<Self> {
        cfg.validate()?;
        let n_items = world.spec.n_items();
        // The tracker's random start row comes from this seed, so the stage is a function of its config.
        dsrm_nn::runtime::seed(cfg.seed);
        let mut frozen =
            FrozenTracker::build(tracker_cfg, cfg.condition_window(), n_items, pretrained, dsrm_nn::runtime::device())?;
        let tracker_pretrain = pretrain_tracker(&mut frozen, tracker_cfg, pretrained, world, cfg, progress)?;
        let mut model = Self::train_on(cfg, tracker_cfg, frozen, pretrained, world, None, progress)?;
        model.tracker_pretrain = tracker_pretrain;
        Ok(model)
    }

    /// This stage refitted on `world`'s log (the feedback loop's round r, `docs/feedback-loop.md`): the same
    /// frozen tracker and item table (so a state keeps its meaning for the agent reading it), the rows replayed
    /// from the new log, new clean targets and user split as [`Self::fit`] makes them, and the denoiser trained
    /// for `cfg`'s epochs *from this stage's weights* ([`crate::refit`]: ddpm, ddim, flow; identity is rebuilt).
    /// `cfg` must describe this stage (same tracker window, target and denoiser kind).
    pub fn refit(&self, cfg: &DsrmStageConfig, world: &World, progress: &mut dyn FnMut(StageEvent)) -> Result<Self> {
        cfg.validate()?;
        if cfg.condition_window() != self.condition_window || cfg.target() != self.target {
            return Err(StageError::Config(format!(
                "refit: the stage was trained with condition_window {} towards {:?}, the config gives {} and {:?}",
                self.condition_window,
                self.target,
                cfg.condition_window(),
                cfg.target()
            )));
        }
        if world.spec.n_items() != self.n_items {
            return Err(StageError::Config(format!(
                "refit: the stage was trained for {} items, the world has {}",
                self.n_items,
                world.spec.n_items()
            )));
        }
        dsrm_nn::runtime::seed(cfg.seed);
        let mut frozen = FrozenTracker::build(
            &self.tracker_cfg,
            self.condition_window,
            self.n_items,
            self.pretrained.as_ref(),
            dsrm_nn::runtime::device(),
        )?;
        checkpoint::restore("tracker", frozen.tracker.var_store_mut(), &self.tracker_tensors)?;
        frozen.sync_summary()?;
        let init = (&self.denoiser_tensors[..], &self.denoiser_meta);
        let mut refitted =
            Self::train_on(cfg, &self.tracker_cfg, frozen, self.pretrained.as_ref(), world, Some(init), progress)?;
        refitted.provenance = self.provenance.clone();
        refitted.tracker_pretrain = self.tracker_pretrain.clone();
        Ok(refitted)
    }

    /// Steps 1–4 of [`Self::fit`] with a built tracker; `init` is the denoiser training continues from.
    fn train_on(
        cfg: &DsrmStageConfig,
        tracker_cfg: &TrackerConfig,
        mut frozen: FrozenTracker,
        pretrained: Option<&Tensor>,
        world: &World,
        init: Option<(&[(String, Tensor)], &serde_json::Value)>,
        progress: &mut dyn FnMut(StageEvent),
    ) -> Result<Self> {
        let n_items = world.spec.n_items();
        let range = world.spec.rewards.range();
        frozen.set_reward_range(range.0, range.1)?;

        // 1. Replay; 2. split the users once (train / validation / held out); subsample the rows of the
        //    training and validation users.
        let replayed = replay(&frozen, world)?;
        let split = split_users(&replayed.users, cfg.validation_fraction, cfg.holdout_fraction, cfg.seed)?;
        let mut keep: Vec<usize> =
            (0..replayed.users.len()).filter(|&r| split.side_of(replayed.users[r]) != 2).collect();
        if cfg.max_states > 0 && keep.len() > cfg.max_states {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            rng.set_stream(1);
            keep.shuffle(&mut rng);
            keep.truncate(cfg.max_states);
            keep.sort_unstable();
        }
        let d = frozen.tracker.state_dim();
        // 3. The clean target of every kept row (rows without one are dropped).
        let index = |rows: &[usize]| Tensor::f_from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>());
        let (targets, keep, target_report) = match cfg.target() {
            CleanTarget::Observed => (None, keep.clone(), observed_report("observed", keep.len())),
            CleanTarget::Debiased => {
                let t = debiased_targets(&replayed, world, d)?.f_index_select(0, &index(&keep)?)?;
                (Some(t), keep.clone(), observed_report("debiased", keep.len()))
            }
            CleanTarget::Clean => {
                let (t, kept, report) =
                    clean_targets(&frozen, tracker_cfg, pretrained, world, &replayed, &keep, cfg.next_positives)?;
                (Some(t), kept, report)
            }
        };
        let users: Vec<u32> = keep.iter().map(|&r| replayed.users[r]).collect();
        let states = replayed.states.f_index_select(0, &index(&keep)?)?;
        let mut distinct = users.clone();
        distinct.sort_unstable();
        distinct.dedup();
        progress(StageEvent::Replayed { states: users.len(), users: distinct.len() });
        let (mut train_rows, mut valid_rows) = (Vec::new(), Vec::new());
        for (i, &u) in users.iter().enumerate() {
            if split.side_of(u) == 1 {
                valid_rows.push(i as i64)
            } else {
                train_rows.push(i as i64)
            }
        }
        if train_rows.is_empty() || valid_rows.is_empty() {
            return Err(StageError::Config(format!(
                "the DSRM needs training and validation rows, got {} and {} (users {}, target {:?})",
                train_rows.len(),
                valid_rows.len(),
                distinct.len(),
                cfg.target()
            )));
        }
        let pick = |x: &Tensor, r: &[i64]| -> Result<Tensor> { Ok(x.f_index_select(0, &Tensor::f_from_slice(r)?)?) };
        let (train, valid) = (pick(&states, &train_rows)?, pick(&states, &valid_rows)?);

        // 4. Pretrain the denoiser on (condition, target) pairs, then freeze it (every denoiser is frozen once
        //    built).
        let denoiser_cfg = with_condition(&cfg.denoiser, d, cfg.condition_window(), targets.is_some())?;
        let mut report_epoch = |e: &EpochLog| progress(StageEvent::Epoch(e.clone()));
        let split_targets = match &targets {
            None => None,
            Some(t) => Some((pick(t, &train_rows)?, pick(t, &valid_rows)?)),
        };
        let built = match (&split_targets, init) {
            (None, None) => crate::build(&denoiser_cfg, &train, &valid, &mut report_epoch)?,
            (Some((train_t, valid_t)), None) => {
                crate::build_towards(&denoiser_cfg, &train, train_t, &valid, valid_t, &mut report_epoch)?
            }
            (t, Some(init)) => {
                let t = t.as_ref().map(|(a, b)| (a, b));
                crate::refit(&denoiser_cfg, init, &train, &valid, t, &mut report_epoch)?
            }
        };
        let (denoiser_tensors, denoiser_meta) = built.denoiser.checkpoint();
        Ok(Self {
            tracker_cfg: tracker_cfg.clone(),
            condition_window: cfg.condition_window(),
            target: cfg.target(),
            n_items,
            pretrained: pretrained.map(|p| p.detach().copy()),
            tracker_tensors: copies(checkpoint::named("tracker", frozen.tracker.var_store())),
            denoiser_tensors: copies(denoiser_tensors),
            denoiser_meta,
            reports: built.reports,
            rows: (train_rows.len() as i64, valid_rows.len() as i64),
            split: Some(split),
            target_report: Some(target_report),
            tracker_pretrain: None,
            provenance: serde_json::Value::Null,
            joint: None,
        })
    }

    /// Writes the stage to one atomic, checksummed file (`dsrm_nn::checkpoint`), with [`Self::provenance`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = copies_ref(&self.tracker_tensors);
        tensors.extend(self.denoiser_tensors.iter().map(|(k, v)| (format!("denoiser/{k}"), v.shallow_clone())));
        if let Some(p) = &self.pretrained {
            tensors.push(("pretrained".into(), p.shallow_clone()));
        }
        let meta = serde_json::json!({
            "format": FORMAT,
            "tracker": self.tracker_cfg,
            "condition_window": self.condition_window,
            "n_items": self.n_items,
            "denoiser": self.denoiser_meta,
            "reports": self.reports,
            "rows": { "train": self.rows.0, "valid": self.rows.1 },
            "target": self.target,
            "split": self.split,
            "target_report": self.target_report,
            "provenance": self.provenance,
        });
        let mut meta = meta;
        if let Some(report) = &self.tracker_pretrain {
            meta["tracker_pretrain"] = serde_json::to_value(report)?;
        }
        Ok(checkpoint::save(path, &tensors, &meta)?)
    }

    /// Reads a stage written by [`Self::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let (tensors, meta) = checkpoint::load(path)?;
        let bad = |detail: String| StageError::Log { path: path.to_path_buf(), detail };
        if meta["format"] != FORMAT {
            return Err(bad(format!("not a DSRM stage ({FORMAT}) checkpoint: format {}", meta["format"])));
        }
        let field = |key: &str| meta.get(key).cloned().ok_or_else(|| bad(format!("metadata lacks {key}")));
        let parse = |key: &str| -> Result<serde_json::Value> { field(key) };
        let tracker_cfg: TrackerConfig = serde_json::from_value(parse("tracker")?).map_err(|e| bad(e.to_string()))?;
        let reports: Vec<FitReport> = serde_json::from_value(parse("reports")?).map_err(|e| bad(e.to_string()))?;
        let count = |key: &str| parse(key).ok().and_then(|v| v.as_u64()).ok_or_else(|| bad(format!("bad {key}")));
        let (condition_window, n_items) = (count("condition_window")? as usize, count("n_items")? as usize);
        let (mut tracker_tensors, mut denoiser_tensors, mut pretrained) = (Vec::new(), Vec::new(), None);
        for (name, t) in tensors {
            if name == "pretrained" {
                pretrained = Some(t);
            } else if let Some(rest) = name.strip_prefix("denoiser/") {
                denoiser_tensors.push((rest.to_string(), t));
            } else {
                tracker_tensors.push((name, t));
            }
        }
        // Stages saved before option B existed have no `target`: they are option A.
        let target: CleanTarget = match meta.get("target") {
            Some(t) => serde_json::from_value(t.clone()).map_err(|e| bad(format!("target: {e}")))?,
            None => CleanTarget::Observed,
        };
        let model = Self {
            tracker_cfg,
            condition_window,
            target,
            n_items,
            pretrained,
            tracker_tensors,
            denoiser_tensors,
            denoiser_meta: parse("denoiser")?,
            reports,
            rows: (meta["rows"]["train"].as_i64().unwrap_or(0), meta["rows"]["valid"].as_i64().unwrap_or(0)),
            split: serde_json::from_value(meta.get("split").cloned().unwrap_or_default())
                .map_err(|e| bad(format!("split: {e}")))?,
            target_report: serde_json::from_value(meta.get("target_report").cloned().unwrap_or_default())
                .map_err(|e| bad(format!("target_report: {e}")))?,
            tracker_pretrain: serde_json::from_value(meta.get("tracker_pretrain").cloned().unwrap_or_default())
                .map_err(|e| bad(format!("tracker_pretrain: {e}")))?,
            provenance: meta["provenance"].clone(),
            joint: None,
        };
        model.tracker().map_err(|e| bad(format!("cannot rebuild the stage: {e}")))?;
        Ok(model)
    }

    /// Replays `world`'s training log through the stage's frozen tracker, as [`Self::fit`] did: the denoiser's
    /// inputs (o_t ⊕ the summary, if any), for analyses such as `dsrm dsrm fidelity`.
    pub fn replay(&self, world: &World) -> Result<ReplayedStates> {
        let mut tracker = self.tracker()?;
        let range = world.spec.rewards.range();
        tracker.frozen.set_reward_range(range.0, range.1)?;
        replay(&tracker.frozen, world)
    }

    /// The clean targets s^(0) of rows `rows` of `replay`'s output, built as [`Self::fit`] builds them for
    /// `target = "clean"` ([`super::clean`]), whatever target this stage was trained towards: `[n_kept, d]`, the
    /// kept rows (rows without a target left out) and the report. The fidelity probe scores every
    /// representation by its distance to them. The next-positives target's wider tracker is built without the
    /// pretrained table here (its weights are copied from the stage's when the shapes match, else the stage's
    /// own window is used).
    pub fn clean_targets(
        &self,
        world: &World,
        replayed: &ReplayedStates,
        rows: &[usize],
        k: usize,
    ) -> Result<(Tensor, Vec<usize>, TargetReport)> {
        let mut tracker = self.tracker()?;
        let range = world.spec.rewards.range();
        tracker.frozen.set_reward_range(range.0, range.1)?;
        clean_targets(&tracker.frozen, &self.tracker_cfg, None, world, replayed, rows, k)
    }

    /// Width of o_t (the denoiser's output).
    pub fn state_dim(&self) -> Result<i64> {
        Ok(self.tracker()?.state_dim())
    }

    /// The tracker config the stage was trained with.
    pub fn tracker_config(&self) -> &TrackerConfig {
        &self.tracker_cfg
    }

    /// Catalogue size the stage was trained for.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// The frozen denoiser (a fresh copy).
    pub fn denoiser(&self) -> Result<Box<dyn Denoiser>> {
        Ok(crate::from_checkpoint(&self.denoiser_tensors, &self.denoiser_meta)?)
    }

    /// From now on [`Self::tracker`] hands out trackers whose denoiser is fine-tuned with the agent, weighing
    /// L_DSRM by `lambda` (λ_D > 0; 0 keeps them frozen). Only a `ddpm` denoiser trained towards the observed
    /// state can be: an RL batch carries no clean target, so L_DSRM is the option-A loss, which would pull a
    /// denoiser trained towards a clean target back towards o_t.
    pub fn fine_tune_jointly(&mut self, lambda: f64, seed: u64) -> Result<()> {
        self.joint = None;
        if lambda != 0.0 {
            if self.target != CleanTarget::Observed {
                return Err(joint_needs_observed(lambda));
            }
            crate::JointDdpm::from_checkpoint(&self.denoiser_tensors, &self.denoiser_meta, lambda, seed)?;
            self.joint = Some((lambda, seed));
        }
        Ok(())
    }

    /// A fresh [`PurifiedTracker`]: the frozen tracker (weights restored from the stage) and the denoiser
    /// (trainable under [`Self::fine_tune_jointly`]).
    pub fn tracker(&self) -> Result<PurifiedTracker> {
        let device = dsrm_nn::runtime::device();
        let mut frozen = FrozenTracker::build(
            &self.tracker_cfg,
            self.condition_window,
            self.n_items,
            self.pretrained.as_ref(),
            device,
        )?;
        checkpoint::restore("tracker", frozen.tracker.var_store_mut(), &self.tracker_tensors)?;
        frozen.sync_summary()?;
        let denoiser = self.denoiser()?;
        let input = frozen.tracker.state_dim() * if frozen.summary.is_some() { 2 } else { 1 };
        if denoiser.input_dim() != input || denoiser.output_dim() != frozen.tracker.state_dim() {
            return Err(StageError::Config(format!(
                "denoiser {} maps {} -> {}, the tracker gives {input} -> {}",
                denoiser.name(),
                denoiser.input_dim(),
                denoiser.output_dim(),
                frozen.tracker.state_dim()
            )));
        }
        let name = match self.tracker_cfg {
            TrackerConfig::Avg(_) => "dsrm-avg",
            TrackerConfig::Gru(_) => "dsrm-gru",
            TrackerConfig::Sasrec(_) => "dsrm-sasrec",
        };
        let joint = match self.joint {
            Some((lambda, seed)) => {
                Some(crate::JointDdpm::from_checkpoint(&self.denoiser_tensors, &self.denoiser_meta, lambda, seed)?)
            }
            None => None,
        };
        let memo = Mutex::new(Memo::new(denoiser.as_ref())?);
        Ok(PurifiedTracker { frozen, denoiser, joint, name, memo })
    }
}

pub(super) fn joint_needs_observed(lambda: f64) -> StageError {
    StageError::Config(format!(
        "[train.dsrm] joint_lambda = {lambda}: joint fine-tuning keeps the denoiser on the observed-state loss \
         (option A: an RL batch has no clean target), so it needs target = \"observed\", not the clean target \
         (the default for a diffusion denoiser); set it in [train.dsrm]"
    ))
}

/// The denoiser config with its `cond_dim` set for a history summary of width `state_dim` (0 when
/// `condition_window` is 0), and, when it learns an explicit target (`towards`), its network conditioned on
/// the observed state (`observed_condition`): the (target, condition) contract.
pub(super) fn with_condition(
    cfg: &DenoiserConfig,
    state_dim: i64,
    condition_window: usize,
    towards: bool,
) -> Result<DenoiserConfig> {
    let cond = if condition_window > 0 { state_dim } else { 0 };
    let mut cfg = cfg.clone();
    let set = |c: &mut crate::DdpmConfig| (c.cond_dim, c.observed_condition) = (cond, towards);
    match &mut cfg {
        DenoiserConfig::Ddpm(c) => set(c),
        DenoiserConfig::Ddim(c) => set(&mut c.ddpm),
        DenoiserConfig::Distilled(c) => set(&mut c.teacher),
        DenoiserConfig::Flow(c) => (c.cond_dim, c.observed_condition) = (cond, towards),
        DenoiserConfig::Identity(_) | DenoiserConfig::Vae(_) if cond > 0 => {
            return Err(StageError::Config(format!(
                "condition_window needs a diffusion or flow denoiser, not {}",
                cfg.kind()
            )))
        }
        DenoiserConfig::Identity(_) | DenoiserConfig::Vae(_) => {}
    }
    Ok(cfg)
}

/// The target report of the ablations (no target rows dropped).
fn observed_report(source: &str, rows: usize) -> TargetReport {
    let rule = match source {
        "observed" => "the observed state itself (option A, DiffRec)",
        _ => "the user's inverse-popularity-weighted mean state over the whole log, one vector per user (option B)",
    };
    TargetReport {
        source: source.into(),
        rule: rule.into(),
        rows,
        dropped_no_positive: 0,
        k: None,
        equal_to_observed: if source == "observed" { rows } else { 0 },
    }
}

pub(super) fn copies(tensors: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    tensors.into_iter().map(|(k, v)| (k, v.detach().copy())).collect()
}

pub(super) fn copies_ref(tensors: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    tensors.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect()
}
