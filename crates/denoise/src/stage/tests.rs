use super::frozen::{replay, FrozenTracker};
use super::model::with_condition;
use super::*;
use crate::{DdpmConfig, ScheduleConfig};
use dsrm_nn::tch::{Device, Kind};
use dsrm_sim::test_support::tiny_world;
use dsrm_state::{HistoryBatch, StateTracker};

/// A DSRM that trains in a fraction of a second on the tiny world.
pub(crate) fn tiny_stage() -> DsrmStageConfig {
    let ddpm = DdpmConfig {
        hidden: vec![16],
        schedule: ScheduleConfig { steps: 3, ..Default::default() },
        train: crate::TrainConfig { max_epochs: 3, batch_size: 256, lr: 1e-3, ..Default::default() },
        ..Default::default()
    };
    // Option A without a condition, set explicitly: most tests below are about the stage's mechanics.
    DsrmStageConfig {
        denoiser: DenoiserConfig::Ddpm(ddpm),
        max_states: 3000,
        condition_window: Some(0),
        target: Some(CleanTarget::Observed),
        ..Default::default()
    }
}

fn pretrained(n: usize) -> Tensor {
    dsrm_nn::runtime::seed(11);
    Tensor::randn([n as i64, 5], (Kind::Float, Device::Cpu))
}

#[test]
fn replays_one_state_per_logged_step_and_splits_by_user() {
    let _torch = dsrm_nn::runtime::exclusive();
    let world = tiny_world();
    let frozen = FrozenTracker::build(
        &TrackerConfig::default(),
        0,
        world.spec.n_items(),
        Some(&pretrained(world.spec.n_items())),
        Device::Cpu,
    )
    .unwrap();
    let r = replay(&frozen, world).unwrap();
    assert_eq!(r.states.size(), [world.train.len() as i64, 6]);
    assert_eq!(r.users, world.train.user);
    // The first state of every sequence is the start state: equal across users.
    let first_rows: Vec<usize> = (0..r.users.len()).filter(|&i| i == 0 || r.users[i] != r.users[i - 1]).collect();
    let a = r.states.get(first_rows[0] as i64);
    assert!(first_rows.iter().all(|&i| r.states.get(i as i64).equal(&a)));
    let (train, valid) = split_by_user(&r.users, 0.25, 3).unwrap();
    assert_eq!(train.len() + valid.len(), r.users.len());
    let users_of = |rows: &[i64]| rows.iter().map(|&i| r.users[i as usize]).collect::<std::collections::BTreeSet<_>>();
    assert!(users_of(&train).is_disjoint(&users_of(&valid)), "no user on both sides");
    assert!(frozen.tracker.var_store().trainable_variables().iter().all(|v| !v.requires_grad()));
}

#[test]
fn purified_tracker_is_frozen_deterministic_and_survives_save_and_load() {
    let _torch = dsrm_nn::runtime::exclusive();
    dsrm_nn::tch::set_num_threads(1);
    let world = tiny_world();
    let n = world.spec.n_items();
    let emb = pretrained(n);
    let fit = || DsrmModel::fit(&tiny_stage(), &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
    let (a, b) = (fit(), fit());
    let batch = HistoryBatch::new(&[(0, &[1, 2, 3, 4], &[0.5, 1.0, 0.2, 2.0]), (1, &[], &[])], 3, n, Device::Cpu);
    let (ta, tb) = (a.tracker().unwrap(), b.tracker().unwrap());
    let sa = ta.states(&batch);
    assert!(sa.equal(&tb.states(&batch)), "same config and seed -> same purified states");
    assert!(!sa.equal(&ta.observed(&batch).unwrap()), "the DSRM changes the state");
    assert!(!sa.requires_grad() && ta.var_store().trainable_variables().iter().all(|v| !v.requires_grad()));
    assert_eq!((ta.state_dim(), ta.window(), ta.name()), (6, 3, "dsrm-avg"));

    let dir = tempfile::tempdir().unwrap();
    a.save(&dir.path().join("dsrm.bin")).unwrap();
    let loaded = DsrmModel::load(&dir.path().join("dsrm.bin")).unwrap();
    assert!(loaded.tracker().unwrap().states(&batch).equal(&sa));
    assert_eq!(loaded.reports, a.reports);

    // The ablation: the same frozen tracker, no purification.
    let ablation = DsrmStageConfig { denoiser: DenoiserConfig::Identity(Default::default()), ..tiny_stage() };
    let id = DsrmModel::fit(&ablation, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
    let t = id.tracker().unwrap();
    assert!(t.states(&batch).equal(&t.observed(&batch).unwrap()));

    // A history-summary condition doubles the denoiser's input.
    let cond = DsrmStageConfig { condition_window: Some(10), ..tiny_stage() };
    let c =
        DsrmModel::fit(&cond, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap().tracker().unwrap();
    let wide = HistoryBatch::new(&[(0, &[1, 2, 3, 4], &[0.5, 1.0, 0.2, 2.0])], c.window(), n, Device::Cpu);
    assert_eq!((c.window(), c.state_dim(), c.observed(&wide).unwrap().size()[1]), (10, 6, 12));
    assert_eq!(c.states(&wide).size(), [1, 6]);
}

#[test]
fn the_debiased_target_is_one_inverse_popularity_weighted_state_per_user() {
    let _torch = dsrm_nn::runtime::exclusive();
    dsrm_nn::tch::set_num_threads(1);
    let world = tiny_world();
    let n = world.spec.n_items();
    let emb = pretrained(n);
    let frozen = FrozenTracker::build(&TrackerConfig::default(), 0, n, Some(&emb), Device::Cpu).unwrap();
    let r = replay(&frozen, world).unwrap();
    let targets = debiased_targets(&r, world, 6).unwrap();
    assert_eq!(targets.size(), [r.users.len() as i64, 6]);
    // One target per user, and it is a weighted mean of that user's states (inside their range).
    let first = r.users.iter().position(|&u| u == r.users[0]).unwrap();
    let last = r.users.iter().rposition(|&u| u == r.users[0]).unwrap();
    let user_rows = r.states.narrow(0, first as i64, (last - first + 1) as i64);
    let target = targets.get(first as i64);
    assert!(targets.get(last as i64).equal(&target));
    let (lo, hi) = (user_rows.min_dim(0, false).0, user_rows.max_dim(0, false).0);
    assert!(bool::try_from(target.ge_tensor(&(lo - 1e-6)).all()).unwrap());
    assert!(bool::try_from(target.le_tensor(&(hi + 1e-6)).all()).unwrap());
    // A stage trained towards it purifies differently from option A; other kinds are refused.
    let debiased = DsrmStageConfig { target: Some(CleanTarget::Debiased), ..tiny_stage() };
    let a = DsrmModel::fit(&tiny_stage(), &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
    let b = DsrmModel::fit(&debiased, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
    let batch = HistoryBatch::new(&[(0, &[1, 2, 3], &[0.5, 1.0, 0.2])], 3, n, Device::Cpu);
    assert!(!a.tracker().unwrap().states(&batch).equal(&b.tracker().unwrap().states(&batch)));
    let vae = DsrmStageConfig { denoiser: DenoiserConfig::Vae(Default::default()), ..debiased.clone() };
    assert!(DsrmModel::fit(&vae, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).is_err());
    // DDIM and the distilled student run on a teacher trained towards the same target.
    let DenoiserConfig::Ddpm(teacher) = &tiny_stage().denoiser else { unreachable!() };
    let ddim = DenoiserConfig::Ddim(crate::DdimConfig { ddpm: teacher.clone(), k: 2 });
    let fast = DsrmStageConfig { denoiser: ddim, ..debiased.clone() };
    let c = DsrmModel::fit(&fast, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
    assert_eq!(c.reports.len(), 1);
    assert!(!c.tracker().unwrap().states(&batch).equal(&a.tracker().unwrap().states(&batch)));
}

#[test]
fn the_defaults_condition_a_diffusion_denoiser_on_history_towards_the_clean_target() {
    let ddpm = DsrmStageConfig::default();
    assert_eq!((ddpm.condition_window(), ddpm.target()), (DEFAULT_CONDITION_WINDOW, CleanTarget::Clean));
    // Kinds that read o_t alone default to neither; set explicitly they are refused (before training).
    for kind in [DenoiserConfig::Identity(Default::default()), DenoiserConfig::Vae(Default::default())] {
        let cfg = DsrmStageConfig { denoiser: kind, ..Default::default() };
        assert_eq!((cfg.condition_window(), cfg.target()), (0, CleanTarget::Observed));
        assert!(with_condition(&cfg.denoiser, 6, 3, false).is_err());
        let clean = DsrmStageConfig { target: Some(CleanTarget::Clean), ..cfg };
        assert!(clean.validate().unwrap_err().to_string().contains("needs a diffusion or flow denoiser"));
    }
    // Towards an explicit target the network reads o_t as its condition; towards o_t it must not.
    let crate::DenoiserConfig::Ddpm(c) = with_condition(&ddpm.denoiser, 6, 20, true).unwrap() else { panic!() };
    assert_eq!((c.cond_dim, c.observed_condition), (6, true));
    let crate::DenoiserConfig::Ddpm(c) = with_condition(&ddpm.denoiser, 6, 0, false).unwrap() else { panic!() };
    assert_eq!((c.cond_dim, c.observed_condition), (0, false));
    // Written resolved, so a saved config names what ran, and unset equals its default written out.
    let text = serde_json::to_string(&ddpm).unwrap();
    let window = format!(r#""condition_window":{DEFAULT_CONDITION_WINDOW}"#);
    assert!(text.contains(&window) && text.contains(r#""target":"clean""#), "{text}");
    assert!(text.contains(r#""next_positives":10"#) && !text.contains("holdout_fraction"), "{text}");
    let explicit = DsrmStageConfig {
        condition_window: Some(DEFAULT_CONDITION_WINDOW),
        target: Some(CleanTarget::Clean),
        ..ddpm.clone()
    };
    assert_eq!(explicit, ddpm);
    assert_ne!(DsrmStageConfig { condition_window: Some(0), ..ddpm.clone() }, ddpm);
    assert_ne!(DsrmStageConfig { target: Some(CleanTarget::Debiased), ..ddpm.clone() }, ddpm);
    assert_ne!(DsrmStageConfig { holdout_fraction: 0.2, ..ddpm.clone() }, ddpm);
    for (w, target) in
        [(0, CleanTarget::Debiased), (20, CleanTarget::Observed), (20, CleanTarget::Debiased), (0, CleanTarget::Clean)]
    {
        let pinned = DsrmStageConfig { condition_window: Some(w), target: Some(target), ..ddpm.clone() };
        let back: DsrmStageConfig = serde_json::from_str(&serde_json::to_string(&pinned).unwrap()).unwrap();
        assert_eq!((back.condition_window(), back.target()), (w, target));
        assert_eq!(back, pinned);
    }
    let held = DsrmStageConfig { holdout_fraction: 0.2, next_positives: 4, ..ddpm.clone() };
    let back: DsrmStageConfig = serde_json::from_str(&serde_json::to_string(&held).unwrap()).unwrap();
    assert_eq!((back.holdout_fraction, back.next_positives), (0.2, 4));
    // A config written before the clean target (W_c = 0, no target) now resolves to the clean target, and is
    // written with it, so it never matches the identity of a run made under the old meaning.
    let old: DsrmStageConfig = serde_json::from_str(r#"{"condition_window": 0}"#).unwrap();
    assert_eq!((old.condition_window(), old.target()), (0, CleanTarget::Clean));
    assert!(serde_json::to_string(&old).unwrap().contains(r#""target":"clean""#));
    // Settings that cannot run are refused with the setting's name.
    for bad in [
        DsrmStageConfig { holdout_fraction: 0.95, ..ddpm.clone() },
        DsrmStageConfig { holdout_fraction: -0.1, ..ddpm.clone() },
        DsrmStageConfig { validation_fraction: 0.0, ..ddpm.clone() },
    ] {
        assert!(bad.validate().unwrap_err().to_string().contains("holdout_fraction"));
    }
    let no_k = DsrmStageConfig { next_positives: 0, ..ddpm.clone() };
    assert!(no_k.validate().unwrap_err().to_string().contains("next_positives"));
    // Joint fine-tuning trains on the option-A loss, so it refuses the default (clean) target up front.
    let dir = tempfile::tempdir().unwrap();
    let joint = DsrmStageConfig { joint_lambda: 0.5, ..Default::default() };
    let err = prepare(&joint, &TrackerConfig::default(), tiny_world(), None, dir.path(), false, &mut |_| {});
    assert!(err.unwrap_err().to_string().contains("target = \"observed\""));
}

#[test]
fn one_user_split_holds_out_users_the_denoiser_never_sees() {
    let users: Vec<u32> = (0..40u32).flat_map(|u| std::iter::repeat_n(u, 3)).collect();
    let split = split_users(&users, 0.1, 0.25, 5).unwrap();
    assert_eq!((split.valid.len(), split.held_out.len(), split.train.len()), (4, 10, 26));
    let mut all: Vec<u32> = [&split.train[..], &split.valid, &split.held_out].concat();
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<_>>(), "every user on exactly one side");
    assert_eq!(split, split_users(&users, 0.1, 0.25, 5).unwrap(), "one seed, one split");
    assert_ne!(split.held_out, split_users(&users, 0.1, 0.25, 6).unwrap().held_out);
    assert!(
        split.held_out.iter().all(|&u| split.side_of(u) == 2) && split.valid.iter().all(|&u| split.side_of(u) == 1)
    );
    assert!(split_users(&users, 0.5, 0.5, 5).is_err() && split_users(&[1, 2], 0.1, 0.2, 5).is_err());

    // The stage trains and early-stops on the other users' rows only, and saves the split it drew.
    let _torch = dsrm_nn::runtime::exclusive();
    dsrm_nn::tch::set_num_threads(1);
    let world = tiny_world();
    let emb = pretrained(world.spec.n_items());
    let cfg = DsrmStageConfig { holdout_fraction: 0.25, max_states: 0, ..tiny_stage() };
    let model = DsrmModel::fit(&cfg, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
    let split = model.split.clone().unwrap();
    assert_eq!(split.seed, cfg.seed);
    let mut users = world.train.user.clone();
    users.dedup();
    assert_eq!(split, split_users(&users, cfg.validation_fraction, 0.25, cfg.seed).unwrap());
    assert!(!split.held_out.is_empty());
    let side_rows = |side: u8| world.train.user.iter().filter(|&&u| split.side_of(u) == side).count() as i64;
    assert_eq!(model.rows, (side_rows(0), side_rows(1)), "no held-out user's state trains or validates");
    let dir = tempfile::tempdir().unwrap();
    model.save(&dir.path().join("dsrm.bin")).unwrap();
    assert_eq!(DsrmModel::load(&dir.path().join("dsrm.bin")).unwrap().split, Some(split));
}

/// A tiny synthetic KuaiRec whose truth/ folder lives as long as the returned directory.
fn synthetic_world() -> (tempfile::TempDir, dsrm_sim::World) {
    use dsrm_data::synth::{generate, SynthConfig, SynthSize};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny");
    generate(&SynthConfig::for_size(SynthSize::Tiny), 7, &out, &mut |_, _, _| {}).unwrap();
    let data = dsrm_data::kuairec::load(&out, &Default::default()).unwrap();
    let world = dsrm_sim::World::kuairec(&data, dsrm_sim::Preset::DorlPaper.settings(), &Default::default()).unwrap();
    (dir, world)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn the_clean_target_of_synthetic_data_is_per_state_and_closer_to_the_truth_than_the_observed_state() {
    let (_dir, world) = synthetic_world();
    let _torch = dsrm_nn::runtime::exclusive();
    dsrm_nn::tch::set_num_threads(1);
    let n = world.spec.n_items();
    let emb = pretrained(n);
    let mut frozen = FrozenTracker::build(&TrackerConfig::default(), 0, n, Some(&emb), Device::Cpu).unwrap();
    let range = world.spec.rewards.range();
    frozen.set_reward_range(range.0, range.1).unwrap();
    let r = replay(&frozen, &world).unwrap();
    let rows: Vec<usize> = (0..r.users.len()).collect();
    let (targets, kept, report) =
        clean::clean_targets(&frozen, &TrackerConfig::default(), Some(&emb), &world, &r, &rows, 10).unwrap();
    assert_eq!((report.source.as_str(), kept.len(), targets.size()), ("truth", rows.len(), vec![rows.len() as i64, 6]));
    // Only the start states (no item to clean yet) equal their condition; every later state has its own target.
    let starts = r.steps.iter().filter(|&&t| t == 0).count();
    assert_eq!(report.equal_to_observed, starts);
    let observed = r.states.narrow(1, 0, 6);
    let differs: Vec<bool> = Vec::try_from((targets.eq_tensor(&observed).all_dim(1, false)).logical_not()).unwrap();
    assert!(r.steps.iter().zip(&differs).all(|(&t, &d)| d == (t > 0)), "s^(0) != s~_t for every t > 0");
    // Not one vector per user: the targets of one user's states vary.
    let first_user: Vec<i64> = (0..r.users.len()).filter(|&i| r.users[i] == r.users[0]).map(|i| i as i64).collect();
    let mine = targets.index_select(0, &Tensor::from_slice(&first_user));
    assert!(f64::try_from(mine.std_dim(0, true, false).max()).unwrap() > 1e-4);
    // The items are the same; only the ratios are the truth's: the embedding columns agree.
    assert!(targets.narrow(1, 0, 5).allclose(&observed.narrow(1, 0, 5), 1e-5, 1e-6, false));
    // Closer to the truth: the reward column of the target follows the user's true bias β_u more closely than
    // the observed one (the logged ratios carry observation noise and the big matrix's popularity bias).
    let truth = clean::SynthTruth::load(&world).unwrap();
    // μ rebuilt by the generator's formula agrees with the μ the generator wrote for the small matrix's cells.
    let small =
        std::fs::read_to_string(std::path::Path::new(&world.provenance.dir).join("truth/true_watch_ratio_small.csv"))
            .unwrap();
    let user_of: std::collections::HashMap<u32, u32> =
        world.user_ids.iter().enumerate().map(|(i, &id)| (id, i as u32)).collect();
    let item_of: std::collections::HashMap<u32, u32> =
        world.item_ids.iter().enumerate().map(|(i, &id)| (id, i as u32)).collect();
    let mut checked = 0;
    for line in small.lines().skip(1).step_by(7) {
        let f: Vec<&str> = line.split(',').collect();
        let (u, v, mu): (u32, u32, f64) = (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap());
        let (Some(&u), Some(&v)) = (user_of.get(&u), item_of.get(&v)) else { continue };
        let expected = mu.min(dsrm_sim::ground_truth::KUAIREC_REWARD_CAP);
        assert!(
            (truth.mu(u, v) - expected).abs() <= 1e-4 * expected.max(1.0),
            "user {u} item {v}: {} vs {mu}",
            truth.mu(u, v)
        );
        checked += 1;
    }
    assert!(checked > 100, "{checked} cells checked");
    // Full windows only (t >= W = 3), where the reward column is exactly the window's mean normalised ratio.
    let later: Vec<usize> = (0..r.users.len()).filter(|&i| r.steps[i] >= 3).collect();
    let column = |t: &Tensor| -> Vec<f64> { later.iter().map(|&i| t.double_value(&[i as i64, 5])).collect() };
    let mean_mu: Vec<f64> = later
        .iter()
        .map(|&i| {
            let row = r.log_rows[i];
            (row - 3..row).map(|j| truth.mu(r.users[i], world.train.item[j])).sum::<f64>() / 3.0
        })
        .collect();
    let (c_target, c_observed) = (pearson(&column(&targets), &mean_mu), pearson(&column(&observed), &mean_mu));
    assert!(
        c_target > 0.999 && c_target > c_observed + 0.05,
        "corr with the window's mean μ: {c_target} vs {c_observed}"
    );
}

#[test]
fn without_a_truth_the_clean_target_is_the_encoding_of_the_next_positives() {
    let _torch = dsrm_nn::runtime::exclusive();
    dsrm_nn::tch::set_num_threads(1);
    let mut world = tiny_world().clone();
    world.provenance.synthetic = None;
    let n = world.spec.n_items();
    let emb = pretrained(n);
    let mut frozen = FrozenTracker::build(&TrackerConfig::default(), 0, n, Some(&emb), Device::Cpu).unwrap();
    let range = world.spec.rewards.range();
    frozen.set_reward_range(range.0, range.1).unwrap();
    let r = replay(&frozen, &world).unwrap();
    let rows: Vec<usize> = (0..r.users.len()).collect();
    let (targets, kept, report) =
        clean::clean_targets(&frozen, &TrackerConfig::default(), Some(&emb), &world, &r, &rows, 2).unwrap();
    let (positive, _) = clean::positives(&world).unwrap();
    // A state keeps a target exactly when its user has a positive at or after the step it precedes.
    let has_next = |i: usize| {
        let (u, row) = (r.users[i], r.log_rows[i]);
        (row..world.train.len()).take_while(|&j| world.train.user[j] == u).any(|j| positive[j])
    };
    let expected: Vec<usize> = rows.iter().copied().filter(|&i| has_next(i)).collect();
    assert_eq!(kept, expected);
    assert_eq!(
        (report.source.as_str(), report.dropped_no_positive, report.k),
        ("next-positives", rows.len() - kept.len(), Some((2, 2)))
    );
    assert!(report.dropped_no_positive > 0 && !kept.is_empty());
    // Row by row: the encoding (window 2, the stage's weights) of the next two positives.
    let i = kept[kept.len() / 2];
    let (u, row) = (r.users[i], r.log_rows[i]);
    let next: Vec<usize> =
        (row..world.train.len()).take_while(|&j| world.train.user[j] == u).filter(|&j| positive[j]).take(2).collect();
    let items: Vec<u32> = next.iter().map(|&j| world.train.item[j]).collect();
    let rewards: Vec<f64> = next.iter().map(|&j| world.train.target[j]).collect();
    let wide = TrackerConfig::Avg(dsrm_state::AvgConfig { window: 2, ..Default::default() });
    let mut two = FrozenTracker::build(&wide, 0, n, Some(&emb), Device::Cpu).unwrap();
    two.tracker.var_store_mut().copy(frozen.tracker.var_store()).unwrap();
    two.set_reward_range(range.0, range.1).unwrap();
    let batch = HistoryBatch::new(&[(u, &items, &rewards)], 2, n, Device::Cpu);
    let expected_row = two.observe(&batch).unwrap();
    let at = kept.iter().position(|&k| k == i).unwrap() as i64;
    assert!(targets.get(at).allclose(&expected_row.get(0), 1e-5, 1e-6, false));
    assert!(!targets.get(at).equal(&r.states.get(i as i64)));
}

#[test]
fn a_stage_towards_the_clean_target_purifies_towards_it() {
    let (_dir, world) = synthetic_world();
    let _torch = dsrm_nn::runtime::exclusive();
    dsrm_nn::tch::set_num_threads(1);
    let emb = pretrained(world.spec.n_items());
    let DenoiserConfig::Ddpm(base) = tiny_stage().denoiser else { unreachable!() };
    let ddpm = crate::DdpmConfig {
        train: crate::TrainConfig { max_epochs: 60, lr: 3e-3, ..base.train.clone() },
        hidden: vec![64],
        ..base
    };
    let cfg = DsrmStageConfig {
        denoiser: DenoiserConfig::Ddpm(ddpm),
        target: None,
        condition_window: Some(0),
        holdout_fraction: 0.2,
        max_states: 0,
        ..tiny_stage()
    };
    assert_eq!(cfg.target(), CleanTarget::Clean);
    let model = DsrmModel::fit(&cfg, &TrackerConfig::default(), &world, Some(&emb), &mut |_| {}).unwrap();
    assert_eq!(model.target_report.as_ref().unwrap().source, "truth");
    assert!(model.denoiser().unwrap().name().contains("cond=o"));
    // On the held-out users, purified states are closer to their clean targets than the observed ones.
    let r = model.replay(&world).unwrap();
    let split = model.split.clone().unwrap();
    let held: Vec<usize> = (0..r.users.len()).filter(|&i| split.side_of(r.users[i]) == 2 && r.steps[i] > 0).collect();
    let (targets, kept, _) = model.clean_targets(&world, &r, &held, 10).unwrap();
    assert_eq!(kept, held);
    let x = r.states.index_select(0, &Tensor::from_slice(&held.iter().map(|&i| i as i64).collect::<Vec<_>>()));
    let purified = model.denoiser().unwrap().try_purify(&x).unwrap();
    // The clean target differs from the condition in the reward column only (same items, the truth's ratios).
    let column = |a: &Tensor| a.narrow(1, 5, 1);
    let dist = |a: &Tensor, b: &Tensor| f64::try_from(a.mse_loss(b, dsrm_nn::tch::Reduction::Mean)).unwrap();
    let (raw, after) = (dist(&column(&x), &column(&targets)), dist(&column(&purified), &column(&targets)));
    let (raw_all, after_all) = (dist(&x.narrow(1, 0, 6), &targets), dist(&purified, &targets));
    println!(
        "held-out MSE to s^(0): reward column {raw:.3e} -> {after:.3e}, all columns {raw_all:.3e} -> {after_all:.3e}"
    );
    assert!(after < raw, "held-out reward column, MSE to s^(0): observed {raw:.3e}, purified {after:.3e}");
}

#[test]
fn a_flow_stage_learns_the_same_target_and_condition_and_survives_save_and_load() {
    let (_dir, world) = synthetic_world();
    let _torch = dsrm_nn::runtime::exclusive();
    dsrm_nn::tch::set_num_threads(1);
    let emb = pretrained(world.spec.n_items());
    let flow = crate::FlowConfig {
        hidden: vec![64],
        ode_steps: 2,
        train: crate::TrainConfig { max_epochs: 60, batch_size: 256, lr: 3e-3, ..Default::default() },
        ..Default::default()
    };
    let cfg = DsrmStageConfig {
        denoiser: DenoiserConfig::Flow(flow),
        holdout_fraction: 0.2,
        condition_window: Some(0),
        max_states: 0,
        ..Default::default()
    };
    // A flow defaults to what a diffusion denoiser does: the clean target (and the 20-step history condition).
    assert_eq!(cfg.target(), CleanTarget::Clean);
    assert_eq!(DsrmStageConfig { condition_window: None, ..cfg.clone() }.condition_window(), DEFAULT_CONDITION_WINDOW);
    let model = DsrmModel::fit(&cfg, &TrackerConfig::default(), &world, Some(&emb), &mut |_| {}).unwrap();
    let denoiser = model.denoiser().unwrap();
    assert_eq!((denoiser.name().as_str(), denoiser.steps()), ("flow(K=2 cond=o)", 2));
    assert_eq!(model.reports[0].phase, "flow");
    // On the held-out users, purified states are closer to their clean targets than the observed ones.
    let r = model.replay(&world).unwrap();
    let split = model.split.clone().unwrap();
    let held: Vec<usize> = (0..r.users.len()).filter(|&i| split.side_of(r.users[i]) == 2 && r.steps[i] > 0).collect();
    let (targets, _, _) = model.clean_targets(&world, &r, &held, 10).unwrap();
    let x = r.states.index_select(0, &Tensor::from_slice(&held.iter().map(|&i| i as i64).collect::<Vec<_>>()));
    let purified = denoiser.try_purify(&x).unwrap();
    let dist = |a: &Tensor, b: &Tensor| f64::try_from(a.mse_loss(b, dsrm_nn::tch::Reduction::Mean)).unwrap();
    let (raw, after) =
        (dist(&x.narrow(1, 5, 1), &targets.narrow(1, 5, 1)), dist(&purified.narrow(1, 5, 1), &targets.narrow(1, 5, 1)));
    assert!(after < raw, "held-out reward column, MSE to s^(0): observed {raw:.3e}, flow {after:.3e}");
    // Saved and loaded with the stage, it purifies identically.
    let dir = tempfile::tempdir().unwrap();
    model.save(&dir.path().join("dsrm.bin")).unwrap();
    let loaded = DsrmModel::load(&dir.path().join("dsrm.bin")).unwrap();
    assert!(loaded.denoiser().unwrap().try_purify(&x).unwrap().equal(&purified));
    let batch = HistoryBatch::new(&[(0, &[1, 2, 3], &[0.5, 1.0, 0.2])], 3, world.spec.n_items(), Device::Cpu);
    assert!(loaded.tracker().unwrap().states(&batch).equal(&model.tracker().unwrap().states(&batch)));
}

#[test]
fn a_bad_ode_steps_is_a_config_error_naming_the_key_before_the_replay() {
    let toml_text = "[denoiser]\nkind = \"flow\"\node_steps = 0\n";
    let cfg: DsrmStageConfig = toml::from_str(toml_text).unwrap();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("[train.dsrm.denoiser]") && err.contains("ode_steps = 0"), "{err}");
    let ok: DsrmStageConfig = toml::from_str("[denoiser]\nkind = \"flow\"\node_steps = 1\n").unwrap();
    assert!(ok.validate().is_ok());
    assert!(toml::from_str::<DsrmStageConfig>("[denoiser]\nkind = \"flow\"\node_step = 1\n").is_err(), "typo");
}

#[test]
fn config_parses_with_defaults_and_rejects_unknown_keys() {
    let json = r#"{"denoiser": {"kind": "ddpm", "t_prime": 4, "schedule": {"steps": 20, "noise_scale": 0.5}}}"#;
    let cfg: DsrmStageConfig = serde_json::from_str(json).unwrap();
    let DenoiserConfig::Ddpm(d) = &cfg.denoiser else { panic!("ddpm") };
    assert_eq!((d.t_prime, d.schedule.steps, d.schedule.noise_scale, cfg.validation_fraction), (Some(4), 20, 0.5, 0.1));
    assert!(serde_json::from_str::<DsrmStageConfig>(r#"{"validation_fractoin": 0.2}"#).is_err());
    let bad = DsrmStageConfig {
        condition_window: Some(3),
        denoiser: DenoiserConfig::Identity(Default::default()),
        ..Default::default()
    };
    assert!(with_condition(&bad.denoiser, 6, bad.condition_window(), false).is_err());
    // λ_D = 0 is not written, so configs from before the option keep their identity; λ_D > 0 round-trips.
    assert!(!serde_json::to_string(&DsrmStageConfig::default()).unwrap().contains("joint_lambda"));
    let joint = DsrmStageConfig { joint_lambda: 0.5, ..Default::default() };
    let back: DsrmStageConfig = serde_json::from_str(&serde_json::to_string(&joint).unwrap()).unwrap();
    assert_eq!(back.joint_lambda, 0.5);
}

#[test]
fn the_batch_one_purified_state_is_the_libtorch_one() {
    // Distilled with a history-summary condition, the identity, and the compiled DDPM and DDIM chains: the same
    // states to rounding; a chain that draws purification noise has no batch-one form (libtorch stays).
    let _torch = dsrm_nn::runtime::exclusive();
    dsrm_nn::tch::set_num_threads(1);
    let world = tiny_world();
    let n = world.spec.n_items();
    let emb = pretrained(n);
    let DenoiserConfig::Ddpm(teacher) = &tiny_stage().denoiser else { unreachable!() };
    let quick = crate::TrainConfig { max_epochs: 2, batch_size: 256, lr: 1e-3, ..Default::default() };
    let distilled = DenoiserConfig::Distilled(crate::DistilledConfig {
        teacher: teacher.clone(),
        student: crate::StudentConfig { train: quick, ..Default::default() },
    });
    let items = [1u32, 2, 3, 4, 0, 5, 2];
    let rewards = [0.5, 1.0, 0.2, 2.0, -0.4, 0.9, 0.1];
    let ddim = DenoiserConfig::Ddim(crate::DdimConfig { ddpm: teacher.clone(), k: 2 });
    // (denoiser, condition window, towards the clean target: the chain then reads [o_t | o_t ⊕ h]).
    let cases = [
        (distilled, 6, false),
        (DenoiserConfig::Identity(Default::default()), 0, false),
        (tiny_stage().denoiser, 0, false),
        (tiny_stage().denoiser, 5, false),
        (tiny_stage().denoiser, 5, true),
        (ddim.clone(), 0, false),
        (ddim, 4, true),
    ];
    for (denoiser, condition, clean) in cases {
        let target = if clean { Some(CleanTarget::Debiased) } else { tiny_stage().target };
        let cfg = DsrmStageConfig { denoiser, condition_window: Some(condition), target, ..tiny_stage() };
        let model = DsrmModel::fit(&cfg, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
        let mut tracker = model.tracker().unwrap();
        tracker.set_reward_range(-1.0, 2.0).unwrap();
        let mut one = tracker.batch_one().unwrap().expect("a batch-one form");
        let mut out = vec![0f32; one.state_dim()];
        for t in 0..=items.len() {
            let batch = HistoryBatch::new(&[(0, &items[..t], &rewards[..t])], tracker.window(), n, Device::Cpu);
            let want = Vec::<f32>::try_from(tracker.states(&batch).flatten(0, -1)).unwrap();
            one.state(&items[..t], &rewards[..t], &mut out).unwrap();
            assert!(
                out.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5 * (1.0 + b.abs())),
                "{} t = {t}: {out:?} vs {want:?}",
                cfg.denoiser.kind()
            );
        }
    }
    let noisy = DenoiserConfig::Ddpm(crate::DdpmConfig { purify_noise: 0.5, ..teacher.clone() });
    let cfg = DsrmStageConfig { denoiser: noisy, ..tiny_stage() };
    let chain = DsrmModel::fit(&cfg, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
    assert!(chain.tracker().unwrap().batch_one().unwrap().is_none());
}

#[test]
fn a_refit_continues_from_the_stages_denoiser_on_a_new_log() {
    let _torch = dsrm_nn::runtime::exclusive();
    dsrm_nn::tch::set_num_threads(1);
    let world = tiny_world();
    let n = world.spec.n_items();
    let emb = pretrained(n);
    let cfg = DsrmStageConfig { max_states: 0, ..tiny_stage() };
    let epochs = |e: usize| {
        let DenoiserConfig::Ddpm(mut d) = cfg.denoiser.clone() else { unreachable!() };
        d.train.max_epochs = e;
        DsrmStageConfig { denoiser: DenoiserConfig::Ddpm(d), ..cfg.clone() }
    };
    let trained = DsrmModel::fit(&cfg, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
    let batch = HistoryBatch::new(&[(0, &[1, 2, 3, 4], &[0.5, 1.0, 0.2, 2.0]), (1, &[7], &[1.5])], 3, n, Device::Cpu);
    let purified = |m: &DsrmModel| m.tracker().unwrap().states(&batch);

    // The round's log: half of the old one.
    let smaller = world.with_log_fraction(0.5, 1);
    // Zero epochs: the refitted stage is the trained one (tracker and denoiser), not a fresh network.
    let kept = trained.refit(&epochs(0), &smaller, &mut |_| {}).unwrap();
    assert!(purified(&kept).equal(&purified(&trained)), "a 0-epoch refit keeps the weights it starts from");
    let fresh = DsrmModel::fit(&epochs(0), &TrackerConfig::default(), &smaller, Some(&emb), &mut |_| {}).unwrap();
    assert!(!purified(&fresh).equal(&purified(&trained)));
    assert!(kept.rows.0 < trained.rows.0, "the refit replays the new log: {:?} vs {:?}", kept.rows, trained.rows);

    // With epochs it trains on from there: its first validation loss is the trained network's, below a fresh one's.
    let refitted = trained.refit(&cfg, &smaller, &mut |_| {}).unwrap();
    let start = |m: &DsrmModel| m.reports[0].history[0].valid_loss;
    assert!(start(&refitted) < 0.5 * start(&fresh), "refit starts at {} vs fresh {}", start(&refitted), start(&fresh));
    assert!(!purified(&refitted).equal(&purified(&trained)), "and moves on the new log");

    // A config that does not describe the stage is refused, as is a kind that cannot continue from a checkpoint.
    let other = DsrmStageConfig { condition_window: Some(2), ..cfg.clone() };
    let err = trained.refit(&other, &smaller, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("condition_window"), "{err}");
}

#[test]
fn the_memo_returns_each_rows_purified_state_and_forgets_it_on_clear() {
    let _torch = dsrm_nn::runtime::exclusive();
    dsrm_nn::tch::set_num_threads(1);
    let world = tiny_world();
    let n = world.spec.n_items();
    let emb = pretrained(n);
    let cfg = DsrmStageConfig { condition_window: Some(4), target: Some(CleanTarget::Debiased), ..tiny_stage() };
    let model = DsrmModel::fit(&cfg, &TrackerConfig::default(), world, Some(&emb), &mut |_| {}).unwrap();
    let tracker = model.tracker().unwrap();
    // 40 histories, each twice in the batch (a duplicate is purified once), then a batch of 1 and one of 3.
    let rows: Vec<(u32, Vec<u32>, Vec<f64>)> = (0..80u32)
        .map(|i| {
            let (j, len) = (i % 40, (i % 40 % 6) as usize);
            let items = (0..len).map(|k| (j * 7 + k as u32 * 13) % n as u32).collect();
            (j % 9, items, (0..len).map(|k| (j as f64 * 0.37 + k as f64).sin()).collect())
        })
        .collect();
    let batch = |r: &[(u32, Vec<u32>, Vec<f64>)]| {
        let refs: Vec<(u32, &[u32], &[f64])> = r.iter().map(|(u, i, w)| (*u, &i[..], &w[..])).collect();
        HistoryBatch::new(&refs, tracker.window(), n, Device::Cpu)
    };
    let direct =
        |r: &[(u32, Vec<u32>, Vec<f64>)]| model.denoiser().unwrap().purify(&tracker.observed(&batch(r)).unwrap());
    let close = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]) < 1e-5;
    let first = tracker.states(&batch(&rows));
    assert!(close(&first, &direct(&rows)), "the memo's states are the denoiser's");
    assert!(first.narrow(0, 0, 40).equal(&first.narrow(0, 40, 40)), "a duplicate row gets the same state");
    // Remembered rows come back bit for bit, whatever batch they are in (libtorch alone is not batch-invariant).
    assert!(tracker.states(&batch(&rows[7..8])).equal(&first.narrow(0, 7, 1)));
    assert!(tracker.states(&batch(&rows[10..13])).equal(&first.narrow(0, 10, 3)));
    // After clear_cache, rows are computed afresh: a few rows by the batch-one form, to rounding.
    tracker.clear_cache();
    let alone = tracker.states(&batch(&rows[7..8]));
    assert!(close(&alone, &first.narrow(0, 7, 1)));
    let again = tracker.states(&batch(&rows));
    assert!(again.narrow(0, 7, 1).equal(&alone), "the row computed first after the clear is the one remembered");
}

#[test]
fn a_sasrec_stage_pretrains_its_encoder_on_training_users_and_keeps_it() {
    let _torch = dsrm_nn::runtime::exclusive();
    dsrm_nn::tch::set_num_threads(1);
    let world = tiny_world();
    let n = world.spec.n_items();
    let sasrec = TrackerConfig::Sasrec(dsrm_state::SasRecConfig { embedding_dim: 8, ..Default::default() });
    // Without pretraining, a frozen SASRec would be random: refused, naming the setting.
    let err = DsrmModel::fit(&tiny_stage(), &sasrec, world, None, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("[train.dsrm.tracker_pretrain]") && err.contains("sasrec"), "{err}");

    let pretrain = dsrm_state::PretrainConfig { epochs: 4, lr: 1e-2, batch_size: 64, ..Default::default() };
    let cfg = DsrmStageConfig { tracker_pretrain: pretrain.clone(), holdout_fraction: 0.2, ..tiny_stage() };
    let mut tracker_epochs = 0;
    let fit = |events: &mut usize| {
        DsrmModel::fit(&cfg, &sasrec, world, None, &mut |e| {
            if matches!(e, StageEvent::TrackerEpoch(_)) {
                *events += 1
            }
        })
        .unwrap()
    };
    let model = fit(&mut tracker_epochs);
    let report = model.tracker_pretrain.clone().expect("a pretraining report");
    assert_eq!(tracker_epochs, report.epochs.len());
    let best = &report.epochs[report.best_epoch - 1];
    assert!(best.valid_loss < report.untrained.valid_loss, "{report:?}");
    // Only training users' steps train it and only validation users' steps choose the epoch.
    let split = model.split.clone().unwrap();
    let steps_of = |users: &[u32]| world.train.user.iter().filter(|u| users.binary_search(u).is_ok()).count();
    assert_eq!((report.train_states, report.valid_states), (steps_of(&split.train), steps_of(&split.valid)));
    // The stage's frozen tracker is the pretrained encoder (not its random start), frozen, and saved with it.
    let batch = HistoryBatch::new(&[(0, &[1, 2, 3], &[0.5, 1.0, 0.2])], 3, n, Device::Cpu);
    let untrained = DsrmStageConfig {
        tracker_pretrain: dsrm_state::PretrainConfig { epochs: 1, lr: 1e-9, ..pretrain.clone() },
        ..cfg.clone()
    };
    let near_start = DsrmModel::fit(&untrained, &sasrec, world, None, &mut |_| {}).unwrap();
    let observed = model.tracker().unwrap().observed(&batch).unwrap();
    let diff = (&observed - near_start.tracker().unwrap().observed(&batch).unwrap()).abs().max().double_value(&[]);
    assert!(diff > 1e-3, "pretraining moved the encoder ({diff})");
    assert!(model.tracker().unwrap().var_store().trainable_variables().iter().all(|v| !v.requires_grad()));
    let dir = tempfile::tempdir().unwrap();
    model.save(&dir.path().join("dsrm.bin")).unwrap();
    let loaded = DsrmModel::load(&dir.path().join("dsrm.bin")).unwrap();
    assert!(loaded.tracker().unwrap().observed(&batch).unwrap().equal(&observed));
    assert_eq!(loaded.tracker_pretrain, Some(report));
    // Written only when on, so configs without it keep their identity.
    assert!(!serde_json::to_string(&tiny_stage()).unwrap().contains("tracker_pretrain"));
    assert!(serde_json::to_string(&cfg).unwrap().contains("tracker_pretrain"));
}
