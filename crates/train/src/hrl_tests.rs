//! HRL, FCPO and shaped runs through the trainer.

use super::*;
use crate::test_support::run;
use dsrm_agents::hrl::{GoalType, HrlConfig};
use dsrm_agents::{FcpoConfig, PpoConfig};

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
        run(&cfg(3), full.path(), false).unwrap();
        run(&cfg(2), split.path(), false).unwrap();
        run(&cfg(3), split.path(), true).unwrap();
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
