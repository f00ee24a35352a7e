//! The off-policy and offline learners end to end on the tiny synthetic world: they train through the
//! trainer, learn beyond random, and resume bit-identically from their checkpoints.

use crate::test_support::{random_nx0, records, run, tmp};
use crate::TrainConfig;
use dsrm_agents::dnair::DnairConfig;
use dsrm_agents::dqn::DqnConfig;
use dsrm_agents::learner::Algorithm;
use dsrm_agents::sac::SacConfig;
use dsrm_agents::sac4ir::{Sac4irConfig, Sac4irEncoder};
use dsrm_agents::td3::Td3Config;
use dsrm_eval::EvalConfig;
use dsrm_sim::test_support::tiny_world;
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

fn dqn(lr: f64) -> Algorithm {
    Algorithm::Dqn(DqnConfig {
        lr,
        tracker_lr: lr,
        batch_size: 32,
        update_per_step: 0.5,
        target_update: 50,
        buffer_size: 5_000,
        ..Default::default()
    })
}

fn sac(lr: f64) -> Algorithm {
    Algorithm::Sac(SacConfig {
        actor_lr: lr,
        critic_lr: lr,
        tracker_lr: lr,
        batch_size: 32,
        update_per_step: 0.5,
        buffer_size: 5_000,
        ..Default::default()
    })
}

fn sac4ir(lr: f64, encoder: Sac4irEncoder) -> Algorithm {
    Algorithm::Sac4ir(Sac4irConfig {
        actor_lr: lr,
        critic_lr: lr,
        alpha_lr: lr,
        tracker_lr: lr,
        encoder,
        attention_dim: 8,
        attention_window: 5,
        target_entropy_scale: 0.5,
        batch_size: 32,
        update_per_step: 0.5,
        buffer_size: 5_000,
        ..Default::default()
    })
}

fn td3(lr: f64) -> Algorithm {
    Algorithm::Td3(Td3Config {
        actor_lr: lr,
        critic_lr: lr,
        tracker_lr: lr,
        batch_size: 32,
        update_per_step: 0.5,
        buffer_size: 5_000,
        mf: dsrm_agents::item_factors::MfConfig { dim: 8, ..Default::default() },
        ..Default::default()
    })
}

fn dnair(lr: f64, beta: f64) -> Algorithm {
    Algorithm::Dnair(DnairConfig {
        lr,
        tracker_lr: lr,
        beta,
        batch_size: 32,
        update_per_step: 0.5,
        target_update: 50,
        buffer_size: 5_000,
        mf: dsrm_agents::item_factors::MfConfig { dim: 8, ..Default::default() },
        ..Default::default()
    })
}

/// Stops after `stop` epochs, then resumes to `epochs`: the files must equal an uninterrupted run's.
fn assert_resume_is_identical(alg: Algorithm, stop: usize, epochs: usize) {
    let ((_a, full), (_b, split)) = (tmp(), tmp());
    run(&tiny_cfg(alg.clone(), epochs), &full, false).unwrap();
    run(&tiny_cfg(alg.clone(), stop), &split, false).unwrap();
    run(&tiny_cfg(alg.clone(), epochs), &split, true).unwrap();
    for name in ["log.jsonl", "metrics.json", "metrics_argmax.json", "summary.json"] {
        let read = |d: &Path| std::fs::read(d.join(name)).unwrap();
        assert_eq!(read(&full), read(&split), "{}: {name}", alg.name());
    }
}

#[test]
fn dqn_learns_beyond_random_on_the_ground_truth() {
    let _torch = dsrm_nn::runtime::exclusive();
    let (_t, dir) = tmp();
    let cfg = TrainConfig { steps_per_epoch: 1500, parallel_envs: 10, ..tiny_cfg(dqn(3e-3), 5) };
    let summary = run(&cfg, &dir, false).unwrap();
    let log = records(&dir);
    let random = random_nx0(&cfg);
    let selected = summary.selected["sampled"]["NX_0"].r_tra;
    let greedy = summary.selected["argmax"]["NX_0"].r_tra;
    eprintln!(
        "dqn: train return {:.3} -> {:.3}; test NX_0 R_tra random {random:.3}, selected (epoch {}) sampled {selected:.3} argmax {greedy:.3}",
        log[0].train_return.unwrap(),
        log[log.len() - 1].train_return.unwrap(),
        summary.selected_epoch
    );
    assert!(selected > 1.3 * random, "dqn: no better than random on NX_0");
    assert!(log.iter().all(|r| r.update.grad_steps >= 1 && r.update.loss.is_finite()));
}

#[test]
fn sac_trains_and_tunes_its_temperature() {
    let _torch = dsrm_nn::runtime::exclusive();
    let (_t, dir) = tmp();
    let cfg = TrainConfig { steps_per_epoch: 1500, parallel_envs: 10, ..tiny_cfg(sac(3e-3), 3) };
    run(&cfg, &dir, false).unwrap();
    let log = records(&dir);
    let (first, last) = (&log[0], &log[log.len() - 1]);
    let alpha = last.update.extra["alpha"];
    let (before, after) = (first.train_return.unwrap(), last.train_return.unwrap());
    eprintln!("sac: train return {before:.3} -> {after:.3}; alpha {alpha:.4}");
    // Seed 3: the return rose 1.7 -> 2.3 over 5 epochs and α moved from 0.05 to 0.13 (entropy below target).
    assert!(after > before, "sac: the training return did not rise");
    assert!((alpha - 0.05).abs() > 1e-3, "sac: the temperature was not tuned");
    assert!(log.iter().all(|r| r.update.grad_steps >= 1 && r.update.loss.is_finite()));
}

#[test]
fn dqn_and_sac_resume_bit_identically() {
    let _torch = dsrm_nn::runtime::exclusive();
    for alg in [dqn(1e-3), sac(1e-3)] {
        assert_resume_is_identical(alg, 2, 3);
    }
}

#[test]
fn td3_learns_beyond_random_on_the_ground_truth() {
    let _torch = dsrm_nn::runtime::exclusive();
    let (_t, dir) = tmp();
    let cfg = TrainConfig { steps_per_epoch: 1500, parallel_envs: 10, ..tiny_cfg(td3(3e-3), 5) };
    let summary = run(&cfg, &dir, false).unwrap();
    let log = records(&dir);
    let random = random_nx0(&cfg);
    let selected = summary.selected["sampled"]["NX_0"].r_tra;
    let greedy = summary.selected["argmax"]["NX_0"].r_tra;
    eprintln!(
        "td3: train return {:.3} -> {:.3}; test NX_0 R_tra random {random:.3}, selected (epoch {}) sampled {selected:.3} argmax {greedy:.3}",
        log[0].train_return.unwrap(),
        log[log.len() - 1].train_return.unwrap(),
        summary.selected_epoch
    );
    assert!(selected > 1.3 * random && greedy > 1.3 * random, "td3: no better than random on NX_0");
    // Delayed policy updates: one actor step per `policy_delay` (2) critic steps.
    for r in &log {
        assert!(r.update.grad_steps >= 2 && r.update.loss.is_finite());
        assert!((r.update.extra["actor_steps"] - 0.5).abs() < 0.05, "{:?}", r.update.extra);
    }
}

/// Trains `alg` (paced at 40 updates per 1,000 steps) for 2 epochs in `dir` and checks it made exactly
/// ⌊steps · 40 / 1000⌋ gradient steps (TD3: critic steps; its delayed actor steps ride on them).
fn assert_paced_at_40_per_1k(alg: &Algorithm, dir: &Path) {
    run(&tiny_cfg(alg.clone(), 2), dir, false).unwrap();
    let log = records(dir);
    let steps: u64 = log.iter().map(|r| r.env_steps).sum();
    let updates: usize = log.iter().map(|r| r.update.grad_steps).sum();
    assert_eq!(updates as u64, steps * 40 / 1000, "{}: paced ⌊steps · u / 1000⌋ gradient steps", alg.name());
}

#[test]
fn td3_paced_makes_exactly_the_budgets_updates_and_resumes_bit_identically() {
    let _torch = dsrm_nn::runtime::exclusive();
    let (_t, dir) = tmp();
    let mut alg = td3(1e-3);
    if let Algorithm::Td3(c) = &mut alg {
        c.updates_per_1k_steps = Some(40.0);
    }
    assert_paced_at_40_per_1k(&alg, &dir);
    for alg in [td3(1e-3), alg] {
        assert_resume_is_identical(alg, 2, 3);
    }
}

#[test]
fn dnair_learns_beyond_random_and_its_bonus_enters_the_target() {
    let _torch = dsrm_nn::runtime::exclusive();
    let (_t, dir) = tmp();
    let cfg = TrainConfig { steps_per_epoch: 1500, parallel_envs: 10, ..tiny_cfg(dnair(3e-3, 0.4), 5) };
    let summary = run(&cfg, &dir, false).unwrap();
    let log = records(&dir);
    let random = random_nx0(&cfg);
    let selected = summary.selected["sampled"]["NX_0"].r_tra;
    let greedy = summary.selected["argmax"]["NX_0"].r_tra;
    eprintln!(
        "dnair: train return {:.3} -> {:.3}; test NX_0 R_tra random {random:.3}, selected (epoch {}) sampled {selected:.3} argmax {greedy:.3}",
        log[0].train_return.unwrap(),
        log[log.len() - 1].train_return.unwrap(),
        summary.selected_epoch
    );
    assert!(greedy > 1.3 * random, "dnair: no better than random on NX_0");
    // The bonus is β × the reward range × a mean of dn in [0, 1], n-step discounted: positive, bounded.
    let range = tiny_world().spec.rewards.range();
    for r in &log {
        let b = r.update.extra["dn_bonus"];
        assert!(b > 0.0 && b <= 0.4 * (range.1 - range.0) * (1.0 + 0.9 + 0.81), "bonus {b}");
    }
    // β = 0: no bonus. A large β steers the greedy policy towards high-dn (good, unpopular) items.
    let novelty = |beta: f64| {
        let (_u, d) = tmp();
        let s = run(&TrainConfig { algorithm: dnair(3e-3, beta), ..cfg.clone() }, &d, false).unwrap();
        assert!(beta > 0.0 || records(&d).iter().all(|r| r.update.extra["dn_bonus"] == 0.0));
        let m = &s.selected["argmax"]["NX_0"];
        eprintln!(
            "dnair β {beta}: NX_0 argmax novelty {:.3} long-tail share {:.3} R_tra {:.3}",
            m.novelty, m.long_tail_share, m.r_tra
        );
        (m.novelty, m.long_tail_share)
    };
    // Seed 3: novelty 3.67 at β 0, 4.16 at β 3 (long-tail share 0.98 -> 1.0).
    let (plain, steered) = (novelty(0.0), novelty(3.0));
    assert!(steered.0 > plain.0, "dnair: the bonus did not raise novelty ({plain:?} -> {steered:?})");
}

#[test]
fn dnair_paced_makes_exactly_the_budgets_updates_and_resumes_bit_identically() {
    let _torch = dsrm_nn::runtime::exclusive();
    let (_t, dir) = tmp();
    let mut alg = dnair(1e-3, 0.4);
    if let Algorithm::Dnair(c) = &mut alg {
        c.updates_per_1k_steps = Some(40.0);
    }
    assert_paced_at_40_per_1k(&alg, &dir);
    for alg in [dnair(1e-3, 0.4), alg] {
        assert_resume_is_identical(alg, 2, 3);
    }
}

#[test]
fn sac4ir_learns_beyond_random_and_tunes_its_temperature_towards_the_target_entropy() {
    let _torch = dsrm_nn::runtime::exclusive();
    let (_t, dir) = tmp();
    let cfg =
        TrainConfig { steps_per_epoch: 1500, parallel_envs: 10, ..tiny_cfg(sac4ir(3e-3, Sac4irEncoder::Attention), 4) };
    let summary = run(&cfg, &dir, false).unwrap();
    let log = records(&dir);
    let random = random_nx0(&cfg);
    let selected = summary.selected["sampled"]["NX_0"].r_tra;
    let greedy = summary.selected["argmax"]["NX_0"].r_tra;
    let last = &log[log.len() - 1];
    let (alpha, entropy) = (last.update.extra.get("alpha").copied().unwrap_or(f64::NAN), last.update.entropy);
    let target = 0.5 * (tiny_world().spec.n_items() as f64).ln();
    eprintln!(
        "sac4ir: train return {:.3} -> {:.3}; test NX_0 R_tra random {random:.3}, selected (epoch {}) sampled \
         {selected:.3} argmax {greedy:.3}; alpha {alpha:.4}, entropy {entropy:.3} (target {target:.3})",
        log[0].train_return.unwrap(),
        last.train_return.unwrap(),
        summary.selected_epoch
    );
    assert!(selected > 1.3 * random && greedy > 1.3 * random, "sac4ir: no better than random on NX_0");
    // α starts at 1 with a near-uniform policy (entropy above target): it falls, and the entropy nears the target.
    assert!(alpha < 0.9, "sac4ir: the temperature was not tuned ({alpha})");
    // Seed 3: α 0.65 and entropy 2.655 against the target 2.649 after 4 epochs.
    assert!((entropy - target).abs() < 0.3, "sac4ir: entropy {entropy} far from its target {target}");
    assert!(log.iter().all(|r| r.update.grad_steps >= 1 && r.update.loss.is_finite()));
}

#[test]
fn sac4ir_paced_makes_exactly_the_budgets_updates_and_resumes_bit_identically() {
    let _torch = dsrm_nn::runtime::exclusive();
    let (_t, dir) = tmp();
    let mut alg = sac4ir(1e-3, Sac4irEncoder::Attention);
    if let Algorithm::Sac4ir(c) = &mut alg {
        c.updates_per_1k_steps = Some(40.0);
    }
    assert_paced_at_40_per_1k(&alg, &dir);
    for alg in [sac4ir(1e-3, Sac4irEncoder::Tracker), alg] {
        assert_resume_is_identical(alg, 2, 3);
    }
}

fn offline_algorithms() -> Vec<Algorithm> {
    use dsrm_agents::bcq::BcqConfig;
    use dsrm_agents::cql::CqlConfig;
    use dsrm_agents::crr::CrrConfig;
    use dsrm_agents::replay::OfflineConfig;
    use dsrm_agents::sqn::SqnConfig;
    let base = OfflineConfig {
        lr: 3e-3,
        tracker_lr: 3e-3,
        batch_size: 32,
        grad_steps: 10,
        target_update: 15,
        ..Default::default()
    };
    vec![
        Algorithm::Bcq(BcqConfig { base: base.clone(), ..Default::default() }),
        Algorithm::Cql(CqlConfig { base: base.clone(), ..Default::default() }),
        Algorithm::Crr(CrrConfig { base: base.clone(), ..Default::default() }),
        Algorithm::Sqn(SqnConfig { base, ..Default::default() }),
    ]
}

#[test]
fn the_logged_buffer_is_the_log_cut_by_the_quit_rule() {
    let world = tiny_world();
    let buf = dsrm_agents::replay::ReplayBuffer::from_log(&world.train, &world.spec).unwrap();
    assert_eq!(buf.len(), world.train.len(), "every catalogue row is a transition");
    assert_eq!(buf.actions, world.train.item);
    assert!(buf.n_episodes() > world.train.user.iter().collect::<std::collections::BTreeSet<_>>().len());
    for e in 0..buf.n_episodes() {
        let items = &buf.actions[buf.starts[e]..buf.starts[e + 1]];
        // No step before the last ends the episode; the last does unless the user's sequence ends there.
        for t in 0..items.len() - 1 {
            assert!(!world.spec.done_after(&items[..t], items[t]).1, "episode {e} runs past its end at {t}");
        }
        let last_of_user = buf.starts[e + 1] == buf.len() || world.train.user[buf.starts[e + 1]] != buf.users[e];
        let (_, done) = world.spec.done_after(&items[..items.len() - 1], items[items.len() - 1]);
        assert!(done || last_of_user, "episode {e} was cut without a reason");
    }
}

#[test]
fn offline_learners_train_from_the_log_and_resume_bit_identically() {
    let _torch = dsrm_nn::runtime::exclusive();
    for alg in offline_algorithms() {
        let (_t, dir) = tmp();
        // 2 iterations of 10 gradient steps × 32 transitions per epoch.
        let cfg = TrainConfig { steps_per_epoch: 640, ..tiny_cfg(alg.clone(), 2) };
        let summary = run(&cfg, &dir, false).unwrap();
        let log = records(&dir);
        assert_eq!(log.len(), 2);
        for r in &log {
            assert_eq!(
                (r.env_steps, r.episodes, r.collections, r.update.grad_steps),
                (640, 0, 2, 20),
                "{}",
                alg.name()
            );
            assert!(r.update.loss.is_finite(), "{}", alg.name());
            assert_eq!((r.train_return, r.train_length), (None, None), "{}: no episode was played", alg.name());
        }
        assert!(summary.selected["argmax"]["NX_0"].r_tra > 0.0, "{}", alg.name());
        assert!(
            summary.training_reward.starts_with("offline: ") && summary.training_reward.contains("logged transitions"),
            "{}: {}",
            alg.name(),
            summary.training_reward
        );
        eprintln!(
            "{}: NX_0 R_tra sampled {:.3} argmax {:.3}",
            alg.name(),
            summary.selected["sampled"]["NX_0"].r_tra,
            summary.selected["argmax"]["NX_0"].r_tra
        );
    }
    for alg in offline_algorithms() {
        assert_resume_is_identical(alg, 1, 2);
    }
}

#[test]
fn off_policy_configs_parse_with_flattened_shared_settings_and_reject_unknown_keys() {
    let parse = |v: serde_json::Value| serde_json::from_value::<TrainConfig>(serde_json::json!({ "algorithm": v }));
    let cfg = parse(serde_json::json!({"kind": "cql", "lr": 0.01, "grad_steps": 7, "min_q_weight": 3.0})).unwrap();
    let Algorithm::Cql(c) = &cfg.algorithm else { panic!("{cfg:?}") };
    assert_eq!((c.base.lr, c.base.grad_steps, c.min_q_weight, c.base.batch_size), (0.01, 7, 3.0, 64));
    let back = serde_json::to_value(&cfg).unwrap();
    assert_eq!(serde_json::from_value::<TrainConfig>(back).unwrap(), cfg);
    for kind in ["dqn", "sac", "sac4ir", "td3", "dnair", "bcq", "cql", "crr", "sqn"] {
        assert!(parse(serde_json::json!({ "kind": kind })).is_ok(), "{kind}");
        let err = parse(serde_json::json!({ "kind": kind, "clip": 0.2 })).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{kind}: {err}");
    }
    let err = parse(serde_json::json!({"kind": "sqn", "act_head": "both"})).unwrap_err().to_string();
    assert!(err.contains("unknown variant"), "{err}");
}
