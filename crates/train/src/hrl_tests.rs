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

#[test]
fn paced_runs_make_the_same_updates_per_step_whatever_the_learner_and_resume_identically() {
    let _torch = dsrm_nn::runtime::exclusive();
    use dsrm_agents::learner::Algorithm;
    use dsrm_agents::A2cConfig;
    let pace = Some(40.0);
    let ppo = PpoConfig { batch_size: 64, hidden: vec![16], updates_per_1k_steps: pace, ..Default::default() };
    let cases = [
        Algorithm::Ppo(ppo.clone()),
        Algorithm::A2c(A2cConfig {
            batch_size: 64,
            hidden: vec![16],
            updates_per_1k_steps: pace,
            ..Default::default()
        }),
        Algorithm::Fcpo(FcpoConfig { ppo, ..Default::default() }),
        Algorithm::Hrl(HrlConfig {
            hidden: vec![16],
            batch_size: 64,
            updates_per_1k_steps: pace,
            ..Default::default()
        }),
    ];
    for algorithm in cases {
        let cfg = |epochs| TrainConfig {
            algorithm: algorithm.clone(),
            epochs,
            steps_per_epoch: 500,
            parallel_envs: 20,
            eval: dsrm_eval::EvalConfig { episodes: 10, ..Default::default() },
            seed: 9,
            ..Default::default()
        };
        let (full, split) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        run(&cfg(3), full.path(), false).unwrap();
        // After S steps a paced run has made ⌊S · 40 / 1000⌋ updates (HRL: ⌊S · 20 / 1000⌋ at each level),
        // whatever its collections' sizes.
        let mut steps = 0u64;
        for r in crate::test_support::records(full.path()) {
            let before = steps;
            steps += r.env_steps;
            let expected = match algorithm {
                Algorithm::Hrl(_) => 2 * (steps * 20 / 1000 - before * 20 / 1000),
                _ => steps * 40 / 1000 - before * 40 / 1000,
            };
            assert_eq!(r.update.grad_steps as u64, expected, "{} epoch {}", algorithm.name(), r.epoch);
        }
        run(&cfg(2), split.path(), false).unwrap();
        run(&cfg(3), split.path(), true).unwrap();
        for name in ["log.jsonl", "metrics.json"] {
            let read = |d: &tempfile::TempDir| std::fs::read(d.path().join(name)).unwrap();
            assert_eq!(read(&full), read(&split), "{}: {name}", algorithm.name());
        }
    }
    // A pace that is not a positive number is refused.
    let bad = Algorithm::Ppo(PpoConfig { updates_per_1k_steps: Some(-1.0), ..Default::default() });
    assert!(bad.problems().iter().any(|p| p.contains("updates_per_1k_steps")));
}
