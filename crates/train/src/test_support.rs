//! Fixtures for this crate's tests: the agents' small averaging tracker as a tracker builder, a training run on
//! the tiny world with the ground-truth reward, its log, and the random policy's score to beat.

use crate::{split_users, train_with_tracker, EpochRecord, Result, TrackerBuilder, TrainConfig, TrainSummary};
use dsrm_agents::test_support::MeanTracker;
use dsrm_eval::{evaluate, EvalRun, MetricInputs, Mode};
use dsrm_policy::Selection;
use dsrm_sim::test_support::tiny_world;
use dsrm_sim::GroundTruthReward;
use dsrm_state::StateTracker;
use std::path::{Path, PathBuf};

/// Builds [`MeanTracker`]s (8-d embeddings, window 3) for the trainer.
pub fn mean_tracker_builder(n_items: usize) -> Box<TrackerBuilder<'static>> {
    Box::new(move || Ok(Box::new(MeanTracker::new(n_items, 8, 3)) as Box<dyn StateTracker>))
}

/// Trains `cfg` on the tiny world (ground-truth reward, mean tracker) in `dir`.
pub fn run(cfg: &TrainConfig, dir: &Path, resume: bool) -> Result<TrainSummary> {
    let world = tiny_world();
    let inputs = MetricInputs::new(world, Default::default());
    let reward = GroundTruthReward::new(&world.spec.rewards);
    let builder = mean_tracker_builder(world.spec.n_items());
    train_with_tracker(cfg, world, &inputs, &reward, &*builder, dir, resume, &mut |_| {})
}

/// The epochs of `dir`'s `log.jsonl`.
pub fn records(dir: &Path) -> Vec<EpochRecord> {
    crate::run_dir::read_lines(&dir.join("log.jsonl"))
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A run directory inside a fresh temporary directory (kept alive by the first value).
pub fn tmp() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("run");
    (t, p)
}

/// NX_0 R_tra of a uniform random policy on the test users, with the trainer's evaluation seed.
pub fn random_nx0(cfg: &TrainConfig) -> f64 {
    let world = tiny_world();
    let inputs = MetricInputs::new(world, Default::default());
    let (_, test_users) = split_users(world.spec.n_users(), cfg.validation_fraction, cfg.seed).unwrap();
    let mut policy = dsrm_policy::heuristics::random::Random::default();
    let run = EvalRun { mode: Mode::NoRepeat, selection: Selection::Sampled, seed: cfg.seed, users: Some(&test_users) };
    evaluate(&world.spec, &inputs, &mut policy, &cfg.eval, run).metrics.r_tra
}
