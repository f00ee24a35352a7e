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
fn the_defaults_condition_a_diffusion_denoiser_on_history_towards_the_debiased_target() {
    let ddpm = DsrmStageConfig::default();
    assert_eq!((ddpm.condition_window(), ddpm.target()), (DEFAULT_CONDITION_WINDOW, CleanTarget::Debiased));
    // Kinds that read o_t alone default to neither; set explicitly they are refused (before training).
    for kind in [DenoiserConfig::Identity(Default::default()), DenoiserConfig::Vae(Default::default())] {
        let cfg = DsrmStageConfig { denoiser: kind, ..Default::default() };
        assert_eq!((cfg.condition_window(), cfg.target()), (0, CleanTarget::Observed));
        assert!(with_condition(&cfg.denoiser, 6, 3).is_err());
    }
    // Written resolved, so a saved config names what ran, and unset equals its default written out.
    let text = serde_json::to_string(&ddpm).unwrap();
    assert!(text.contains(r#""condition_window":20"#) && !text.contains("target"), "{text}");
    let explicit = DsrmStageConfig { condition_window: Some(20), target: Some(CleanTarget::Debiased), ..ddpm.clone() };
    assert_eq!(explicit, ddpm);
    assert_ne!(DsrmStageConfig { condition_window: Some(0), ..ddpm.clone() }, ddpm);
    for (w, target) in [(0, CleanTarget::Debiased), (20, CleanTarget::Observed), (20, CleanTarget::Debiased)] {
        let pinned = DsrmStageConfig { condition_window: Some(w), target: Some(target), ..ddpm.clone() };
        let back: DsrmStageConfig = serde_json::from_str(&serde_json::to_string(&pinned).unwrap()).unwrap();
        assert_eq!((back.condition_window(), back.target()), (w, target));
        assert_eq!(back, pinned);
    }
    // A config from before these defaults (W_c written as 0, option A not written) keeps its meaning.
    let old: DsrmStageConfig = serde_json::from_str(r#"{"condition_window": 0}"#).unwrap();
    assert_eq!((old.condition_window(), old.target()), (0, CleanTarget::Observed));
    let written = serde_json::to_string(&old).unwrap();
    assert!(written.contains(r#""condition_window":0"#) && !written.contains("target"), "same identity: {written}");
    // Joint fine-tuning trains on the option-A loss, so it refuses the default (debiased) target up front.
    let dir = tempfile::tempdir().unwrap();
    let joint = DsrmStageConfig { joint_lambda: 0.5, ..Default::default() };
    let err = prepare(&joint, &TrackerConfig::default(), tiny_world(), None, dir.path(), false, &mut |_| {});
    assert!(err.unwrap_err().to_string().contains("target = \"observed\""));
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
    assert!(with_condition(&bad.denoiser, 6, bad.condition_window()).is_err());
    // λ_D = 0 is not written, so configs from before the option keep their identity; λ_D > 0 round-trips.
    assert!(!serde_json::to_string(&DsrmStageConfig::default()).unwrap().contains("joint_lambda"));
    let joint = DsrmStageConfig { joint_lambda: 0.5, ..Default::default() };
    let back: DsrmStageConfig = serde_json::from_str(&serde_json::to_string(&joint).unwrap()).unwrap();
    assert_eq!(back.joint_lambda, 0.5);
}
