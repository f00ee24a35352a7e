//! HRL, FCPO and shaped runs through the trainer.

use super::*;
use crate::test_support::mean_tracker_builder;
use dsrm_agents::hrl::{GoalType, HrlConfig};
use dsrm_agents::{FcpoConfig, PpoConfig};
use dsrm_sim::test_support::tiny_world;
use dsrm_sim::GroundTruthReward;

/// Runs the trainer on the tiny world (ground-truth reward, mean tracker).
fn train_tiny(cfg: &TrainConfig, dir: &std::path::Path, resume: bool) -> TrainSummary {
    let world = tiny_world();
    let inputs = dsrm_eval::MetricInputs::new(world, Default::default());
    let reward = GroundTruthReward::new(&world.spec.rewards);
    let builder = mean_tracker_builder(world.spec.n_items());
    train_with_tracker(cfg, world, &inputs, &reward, &*builder, dir, resume, &mut |_| {}).unwrap()
}

#[test]
fn hrl_fcpo_and_shaped_runs_resume_bit_identically() {
    let _torch = dsrm_nn::runtime::exclusive();
    use dsrm_agents::learner::Algorithm;
    let small = HrlConfig { hidden: vec![16], batch_size: 256, repeat_per_collect: 2, ..Default::default() };
    let ppo = PpoConfig { batch_size: 256, hidden: vec![16], ..Default::default() };
    let cases = [
        (Algorithm::Hrl(small.clone()), None),
        (Algorithm::Hrl(HrlConfig { goal: GoalType::TargetRatio, interval: 3, ..small }), None),
        (Algorithm::Fcpo(FcpoConfig { ppo: ppo.clone(), ..Default::default() }), None),
        (Algorithm::Ppo(ppo), Some(dsrm_agents::RewardShaping::DeltaGini { lambda: 1.0 })),
    ];
    for (algorithm, reward_shaping) in cases {
        let cfg = |epochs| TrainConfig {
            algorithm: algorithm.clone(),
            reward_shaping,
            epochs,
            steps_per_epoch: 400,
            parallel_envs: 20,
            eval: dsrm_eval::EvalConfig { episodes: 10, ..Default::default() },
            seed: 5,
            ..Default::default()
        };
        let (full, split) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        train_tiny(&cfg(3), full.path(), false);
        train_tiny(&cfg(2), split.path(), false);
        train_tiny(&cfg(3), split.path(), true);
        for name in ["log.jsonl", "metrics.json", "summary.json"] {
            let read = |d: &tempfile::TempDir| std::fs::read(d.path().join(name)).unwrap();
            assert_eq!(read(&full), read(&split), "{}: {name}", algorithm.name());
        }
        let log = std::fs::read_to_string(full.path().join("log.jsonl")).unwrap();
        let key = match algorithm {
            Algorithm::Hrl(_) => "high_vf_loss",
            Algorithm::Fcpo(_) => "multiplier",
            _ => "loss",
        };
        assert!(log.contains(key), "{}: {key} not logged", algorithm.name());
    }
}
