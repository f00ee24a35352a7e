//! MoFIR end to end on the tiny synthetic world: it learns beyond random, its front moves towards the long tail
//! as ω moves towards fairness (under a reward in conflict with fairness), `front.json` is written from the selected epoch, paced updates are exact, and a
//! resumed run writes the same files.

use crate::test_support::{mean_tracker_builder, random_nx0, records, run, tmp};
use crate::{train_with_tracker, FrontPoint, TrainConfig};
use dsrm_agents::learner::Algorithm;
use dsrm_agents::mofir::MofirConfig;
use dsrm_eval::EvalConfig;
use dsrm_eval::MetricInputs;
use dsrm_sim::test_support::tiny_world;
use dsrm_sim::RewardModel;
use std::path::Path;

fn tiny_cfg(algorithm: Algorithm, epochs: usize) -> TrainConfig {
    TrainConfig {
        algorithm,
        epochs,
        steps_per_epoch: 800,
        parallel_envs: 25,
        eval: EvalConfig { episodes: 20, ..Default::default() },
        seed: 3,
        ..Default::default()
    }
}

fn mofir(lr: f64) -> Algorithm {
    Algorithm::Mofir(MofirConfig { lr, tracker_lr: lr, batch_size: 256, ..Default::default() })
}

fn front(dir: &Path) -> Vec<FrontPoint> {
    serde_json::from_slice(&std::fs::read(dir.join("front.json")).unwrap()).unwrap()
}

#[test]
fn mofir_learns_beyond_random_and_its_front_follows_omega() {
    let _torch = dsrm_nn::runtime::exclusive();
    let (_t, dir) = tmp();
    let cfg = TrainConfig { steps_per_epoch: 1500, parallel_envs: 10, ..tiny_cfg(mofir(1e-2), 5) };
    let summary = run(&cfg, &dir, false).unwrap();
    let log = records(&dir);
    let random = random_nx0(&cfg);
    let points = front(&dir);
    let at = |k: usize, key: &str| {
        let m = &points[k].metrics["NX_0"];
        if key == "r_tra" {
            m.r_tra
        } else {
            m.long_tail_share
        }
    };
    eprintln!(
        "mofir: train return {:.3} -> {:.3}; test NX_0 R_tra random {random:.3}, selected (epoch {}) {:.3}; \
         front R_tra {:.3} / {:.3} / {:.3}, long-tail share {:.3} / {:.3} / {:.3}",
        log[0].train_return.unwrap(),
        log[log.len() - 1].train_return.unwrap(),
        summary.selected_epoch,
        summary.selected["sampled"]["NX_0"].r_tra,
        at(0, "r_tra"),
        at(1, "r_tra"),
        at(2, "r_tra"),
        at(0, "lt"),
        at(1, "lt"),
        at(2, "lt"),
    );
    // front.json: one entry per ω of eval_omegas, the selected epoch's, whose eval_omega entry is metrics.json.
    let omegas: Vec<Vec<f64>> = points.iter().map(|p| p.omega.clone()).collect();
    assert_eq!(omegas, [vec![1.0, 0.0], vec![0.5, 0.5], vec![0.0, 1.0]]);
    let selected = &log[summary.selected_epoch - 1];
    assert_eq!(selected.front, points);
    assert_eq!(points[1].metrics, summary.selected["sampled"], "ω = [0.5, 0.5] is the evaluated policy");
    assert!(log.iter().all(|r| r.front.len() == 3 && r.validation.len() == 1));
    // Learning: at ω = [1, 0] (utility only) the policy beats random on the ground truth.
    assert!(at(0, "r_tra") > 1.3 * random, "mofir: no better than random on NX_0 at ω = [1, 0]");
}

/// A training reward in conflict with fairness: 1 for a popular item, 0 for a long-tail one.
struct PopularReward(Vec<bool>);

impl RewardModel for PopularReward {
    fn reward(&self, _user: u32, item: u32, _history: &[u32]) -> f64 {
        f64::from(u8::from(self.0[item as usize]))
    }
    fn range(&self) -> (f64, f64) {
        (0.0, 1.0)
    }
    fn describe(&self) -> String {
        "1 for a popular item (test)".into()
    }
}

#[test]
fn mofir_front_moves_to_the_long_tail_as_omega_moves_to_fairness() {
    // On the tiny world the ground truth already favours long-tail items (share ≈ 0.97 at every ω), so the
    // objectives are set in conflict: utility pays for popular items only. One trained model must then give a
    // popular policy at ω = [1, 0] and a long-tail one at ω = [0, 1].
    let _torch = dsrm_nn::runtime::exclusive();
    let world = tiny_world();
    let inputs = MetricInputs::new(world, Default::default());
    let reward = PopularReward(world.popular());
    let builder = mean_tracker_builder(world.spec.n_items());
    let (_t, dir) = tmp();
    let cfg = TrainConfig { steps_per_epoch: 1500, parallel_envs: 10, ..tiny_cfg(mofir(1e-2), 4) };
    train_with_tracker(&cfg, world, &inputs, &reward, &*builder, &dir, false, &mut |_| {}).unwrap();
    let points = front(&dir);
    let share: Vec<f64> = points.iter().map(|p| p.metrics["NX_0"].long_tail_share).collect();
    eprintln!("mofir, popular reward: NX_0 long-tail share at ω = [1,0] / [.5,.5] / [0,1]: {share:.3?}");
    assert!(share[2] > share[0] + 0.2, "mofir: ω = [0, 1] did not raise the long-tail share ({share:?})");
    assert!(share[0] < share[1] && share[1] < share[2], "mofir: the front is not ordered by ω ({share:?})");
}

#[test]
fn mofir_paced_makes_exactly_the_budgets_updates_and_resumes_bit_identically() {
    let _torch = dsrm_nn::runtime::exclusive();
    let (_t, dir) = tmp();
    let mut alg = mofir(1e-3);
    if let Algorithm::Mofir(c) = &mut alg {
        c.updates_per_1k_steps = Some(40.0);
        c.batch_size = 64;
    }
    run(&tiny_cfg(alg.clone(), 2), &dir, false).unwrap();
    let log = records(&dir);
    let steps: u64 = log.iter().map(|r| r.env_steps).sum();
    let updates: usize = log.iter().map(|r| r.update.grad_steps).sum();
    assert_eq!(updates as u64, steps * 40 / 1000, "paced: ⌊steps · u / 1000⌋ gradient updates");
    for alg in [mofir(1e-3), alg] {
        let ((_a, full), (_b, split)) = (tmp(), tmp());
        run(&tiny_cfg(alg.clone(), 3), &full, false).unwrap();
        run(&tiny_cfg(alg.clone(), 2), &split, false).unwrap();
        run(&tiny_cfg(alg.clone(), 3), &split, true).unwrap();
        for name in ["log.jsonl", "metrics.json", "metrics_argmax.json", "summary.json", "front.json"] {
            let read = |d: &Path| std::fs::read(d.join(name)).unwrap();
            assert_eq!(read(&full), read(&split), "mofir: {name}");
        }
    }
}

#[test]
fn mofir_config_parses_and_rejects_unknown_keys() {
    let parse = |v: serde_json::Value| serde_json::from_value::<TrainConfig>(serde_json::json!({ "algorithm": v }));
    let cfg = parse(serde_json::json!({"kind": "mofir", "eval_omega": [0.2, 0.8]})).unwrap();
    let Algorithm::Mofir(c) = &cfg.algorithm else { panic!("{cfg:?}") };
    assert_eq!((c.eval_omega, c.eval_omegas.len()), ([0.2, 0.8], 3));
    let err = parse(serde_json::json!({"kind": "mofir", "omega": [1.0, 0.0]})).unwrap_err().to_string();
    assert!(err.contains("unknown field") && err.contains("omega"), "{err}");
    let bad = TrainConfig {
        algorithm: Algorithm::Mofir(MofirConfig { eval_omega: [1.0, 1.0], ..Default::default() }),
        ..Default::default()
    };
    let (_t, dir) = tmp();
    let err = run(&bad, &dir, false).unwrap_err().to_string();
    assert!(err.contains("eval_omega"), "{err}");
}
