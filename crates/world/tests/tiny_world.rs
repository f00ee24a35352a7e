//! The world models end to end on the tiny synthetic KuaiRec world (60 environment users x 200 videos, a
//! training log of ~12 k rows from 400 users): training, grid outputs, checkpoints, determinism, and the
//! simulated rewards built on them.
//!
//! Note on held-out cells: in this world (as in real KuaiRec) the environment users' big-matrix rows are on
//! videos outside the catalogue, so `World::train` has no row for them and every environment cell is
//! held out; what the models can learn for those users is the item side (quality, tags, duration).

use dsrm_nn::tch;
use dsrm_sim::{RewardModel, World};
use dsrm_world::entropy::DORL_WINDOWS;
use dsrm_world::{
    DeepFm, DeepFmConfig, EnsembleConfig, EntropyMap, Features, MfReward, OutputLink, SimulatedReward, TrainingPairs,
    UserModelEnsemble, WorldPenalty,
};
use std::sync::{Arc, OnceLock};

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("kuairec");
        let cfg = dsrm_data::synth::SynthConfig::for_size(dsrm_data::synth::SynthSize::Tiny);
        dsrm_data::synth::generate(&cfg, 0, &out, &mut |_, _, _| {}).unwrap();
        let opts = dsrm_data::kuairec::LoadOptions { check_official_counts: false, ..Default::default() };
        let data = dsrm_data::kuairec::load(&out, &opts).unwrap();
        World::kuairec(&data, dsrm_sim::Preset::DorlPaper.settings(), &Default::default()).unwrap()
    })
}

/// Small and fast, but enough steps to learn: the anchors' batch of 4096 would give ~9 steps per epoch here.
fn quick() -> EnsembleConfig {
    EnsembleConfig {
        n_models: 2,
        model: DeepFmConfig { epochs: 4, batch_size: 256, learning_rate: 3e-3, ..DeepFmConfig::default() },
        ..EnsembleConfig::default()
    }
}

fn train(cfg: &EnsembleConfig, seed: u64) -> UserModelEnsemble {
    tch::set_num_threads(1);
    UserModelEnsemble::train(world(), cfg, seed, &mut |_, _, _| {}).unwrap()
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
fn features_follow_the_world_and_map_the_pseudo_tag() {
    let w = world();
    let f = Features::from_world(w).unwrap();
    assert_eq!((f.n_env_users, f.n_env_items), (w.spec.n_users(), w.spec.n_items()));
    assert_eq!(f.tag_shift, 1, "KuaiRec tags start at 0: the anchors' +1");
    assert_eq!(f.n_tag_fields, w.item_tags_full.iter().map(Vec::len).max().unwrap());
    assert_eq!(f.tag_slots(0)[0], i64::from(w.item_tags[0][0]) + 1);
    assert_eq!(f.item_embedding_width(8), 8 * (1 + f.n_tag_fields) + 1);

    // KuaiRand-style pseudo-tag −1 on item 0: it gets row 1, distinct from the empty-slot row 0.
    let mut k = w.clone();
    k.item_tags_full[0] = vec![-1];
    let f = Features::from_world(&k).unwrap();
    assert_eq!(f.tag_shift, 2);
    assert_eq!(f.tag_slots(0)[0], 1);
    assert!(f.tag_slots(0)[1..].iter().all(|&t| t == 0));
    assert_eq!(f.tag_vocab as i64, i64::from(*k.item_tags_full.iter().flatten().max().unwrap()) + 3);
}

#[test]
fn deepfm_training_loss_decreases() {
    tch::set_num_threads(1);
    let w = world();
    let f = Features::from_world(w).unwrap();
    let pairs = TrainingPairs::sample(&w.train, 3, 0).unwrap();
    let cfg = DeepFmConfig { epochs: 4, batch_size: 256, learning_rate: 3e-3, ..DeepFmConfig::default() };
    let link = OutputLink::for_targets(&w.train.target);
    assert_eq!(link, OutputLink::Identity, "capped watch ratios up to 5");
    let mut model = DeepFm::new(&f, &cfg, link, 7).unwrap();
    let mut seen = Vec::new();
    let history = model.fit(&pairs, &mut |epoch, loss| seen.push((epoch, loss))).unwrap();
    assert_eq!(seen.len(), 4);
    assert!(history.iter().all(|l| l.is_finite()));
    eprintln!("deepfm losses {history:?}");
    assert!(history[3] < history[0] - 0.1, "pointneg loss per pair should fall: {history:?}");
}

#[test]
fn ensemble_predicts_held_out_truth_and_respects_the_variance_clamp() {
    let w = world();
    let e = train(&quick(), 0);
    let (n_users, n_items) = (w.spec.n_users(), w.spec.n_items());
    assert_eq!((e.pred().len(), e.max_var().len()), (n_users * n_items, n_users * n_items));
    assert_eq!(e.history().len(), 2);

    // Every environment cell is held out (no training row for environment users).
    let env_rows = w.train.user.iter().filter(|&&u| (u as usize) < n_users).count();
    assert_eq!(env_rows, 0);
    let mut truth = Vec::with_capacity(n_users * n_items);
    for u in 0..n_users as u32 {
        for i in 0..n_items as u32 {
            truth.push(w.spec.rewards.reward(u, i));
        }
    }
    let pred: Vec<f64> = e.pred().iter().map(|&p| f64::from(p)).collect();
    let r = pearson(&pred, &truth);
    eprintln!("held-out correlation {r:.3}, losses {:?}", e.history());
    // For scale, on this world: the oracle per-item mean of the truth reaches 0.42, the per-item mean
    // training target 0.35, a popularity-shrunk mean (what pointneg's negatives teach) 0.19; we see ~0.22.
    assert!(r > 0.1, "correlation of the mean prediction with the held-out truth: {r}");

    // exp(ℓ) with ℓ soft-clamped to [−10, 0.5].
    let (lo, hi) = ((-10f32).exp(), 0.5f32.exp());
    assert!(e.max_var().iter().all(|&v| v >= lo * 0.999 && v <= hi * 1.001));

    let emb = e.item_embeddings();
    let f = Features::from_world(w).unwrap();
    assert_eq!(emb.size(), vec![n_items as i64, f.item_embedding_width(8) as i64]);
}

#[test]
fn save_then_load_gives_identical_predictions_and_refuses_other_data() {
    let w = world();
    let cfg = EnsembleConfig { n_models: 2, model: DeepFmConfig { epochs: 1, ..quick().model }, ..quick() };
    let e = train(&cfg, 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ensemble.ckpt");
    e.save(&path).unwrap();

    let back = UserModelEnsemble::load(&path, w).unwrap();
    assert_eq!(back.pred(), e.pred());
    assert_eq!(back.max_var(), e.max_var());
    assert_eq!((back.seed(), back.config(), back.history()), (3, &cfg, e.history()));
    assert!(back.item_embeddings().equal(&e.item_embeddings()));
    // The restored members reproduce the stored grid.
    let again = back.predict_grid(w).unwrap();
    assert_eq!(again.pred(), e.pred());
    assert_eq!(again.max_var(), e.max_var());

    let mut other = w.clone();
    other.train_full.target[0] += 1.0;
    let err = UserModelEnsemble::load(&path, &other).unwrap_err().to_string();
    assert!(err.contains("trained on"), "{err}");
}

#[test]
fn an_incremental_refit_learns_the_new_rows_keeps_a_record_and_is_seeded() {
    use dsrm_world::IncrementalRefit;
    let w = world();
    let base = train(&quick(), 5);
    let dir = tempfile::tempdir().unwrap();
    let previous = dir.path().join("round-0.bin");
    base.save(&previous).unwrap();

    // A round served every environment user its first 10 catalogue items, all watched to the cap (5.0); the
    // environment users have no training row before (module note).
    let (n_users, items) = (w.spec.n_users() as u32, 10u32);
    let served: Vec<(u32, Vec<u32>, Vec<f64>)> =
        (0..n_users).map(|u| (u, (0..items).collect(), vec![5.0; items as usize])).collect();
    let grown = w.with_logged_episodes(served.iter().map(|(u, i, r)| (*u, &i[..], &r[..])));
    let new_rows = dsrm_models::Interactions {
        n_users: w.train_full.n_users,
        n_items: w.train_full.n_items,
        user: served.iter().flat_map(|(u, i, _)| i.iter().map(move |_| *u)).collect(),
        item: served.iter().flat_map(|(_, i, _)| i.clone()).collect(),
        target: vec![5.0; (n_users * items) as usize],
    };
    let refit = IncrementalRefit { epochs: 5, replay: 1.0 };
    tch::set_num_threads(1);
    let run = || UserModelEnsemble::continue_on(&previous, &grown, &new_rows, &refit, 9, &mut |_, _, _| {}).unwrap();
    let after = run();

    // The served cells move up towards 5, clearly more than the cells of the items nobody was served.
    let n_items = w.spec.n_items();
    let mean_over = |pred: &[f32], served: bool| {
        let cells: Vec<f64> = (0..n_users as usize)
            .flat_map(|u| (0..n_items).map(move |i| (u, i)))
            .filter(|&(_, i)| (i < items as usize) == served)
            .map(|(u, i)| f64::from(pred[u * n_items + i]))
            .collect();
        cells.iter().sum::<f64>() / cells.len() as f64
    };
    let served_gain = mean_over(after.pred(), true) - mean_over(base.pred(), true);
    let other_change = mean_over(after.pred(), false) - mean_over(base.pred(), false);
    assert!(served_gain > 0.2 && served_gain > 3.0 * other_change.abs(), "{served_gain} vs {other_change}");

    // The ensemble now belongs to the grown log and says how it got there.
    assert_eq!(after.data(), &dsrm_world::ensemble::DataId::of(&grown).unwrap());
    let record = &after.refits()[0];
    assert_eq!((record.new_rows, record.replay_rows, record.epochs), (600, 600, 5));
    assert_eq!(record.from_data, base.data().hash);
    assert!(after.history().iter().all(|h| h.len() == 4 + 5), "{:?}", after.history());
    let path = dir.path().join("round-1.bin");
    after.save(&path).unwrap();
    let back = UserModelEnsemble::load(&path, &grown).unwrap();
    assert_eq!((back.pred(), back.refits()), (after.pred(), after.refits()));
    // The previous file belongs to the old log: loading it for the grown one is refused, continuing it is not.
    assert!(UserModelEnsemble::load(&previous, &grown).is_err());

    // Seeded: the same inputs give the same ensemble, another seed another one.
    assert_eq!(run().pred(), after.pred());
    let other = UserModelEnsemble::continue_on(&previous, &grown, &new_rows, &refit, 10, &mut |_, _, _| {}).unwrap();
    assert_ne!(other.pred(), after.pred());
    // Rows of another shape, or settings that cannot refit, are errors.
    let wrong = dsrm_models::Interactions { n_items: new_rows.n_items + 1, ..new_rows.clone() };
    let err = UserModelEnsemble::continue_on(&previous, &grown, &wrong, &refit, 9, &mut |_, _, _| {}).unwrap_err();
    assert!(err.to_string().contains("new rows of"), "{err}");
    let bad = IncrementalRefit { epochs: 0, ..refit };
    assert!(UserModelEnsemble::continue_on(&previous, &grown, &new_rows, &bad, 9, &mut |_, _, _| {}).is_err());
}

#[test]
fn training_is_deterministic_for_a_seed_and_any_number_of_workers() {
    let cfg = EnsembleConfig { n_models: 2, model: DeepFmConfig { epochs: 1, ..quick().model }, ..quick() };
    let a = train(&cfg, 11);
    let b = train(&EnsembleConfig { workers: 2, ..cfg.clone() }, 11);
    assert_eq!(a.pred(), b.pred());
    assert_eq!(a.max_var(), b.max_var());
    assert_eq!(a.history(), b.history());
    assert!(a.item_embeddings().equal(&b.item_embeddings()));
    let c = train(&cfg, 12);
    assert_ne!(a.pred(), c.pred());
}

#[test]
fn a_resumable_training_keeps_finished_members_and_matches_an_uninterrupted_one() {
    use std::os::unix::fs::MetadataExt;
    tch::set_num_threads(1);
    let w = world();
    let cfg = EnsembleConfig { n_models: 2, model: DeepFmConfig { epochs: 1, ..quick().model }, ..quick() };
    let whole = train(&cfg, 5);
    let dir = tempfile::tempdir().unwrap();
    let members = dir.path().join("members");
    let resumable = |seed: u64, reports: &mut usize| {
        UserModelEnsemble::train_resumable(w, &cfg, seed, &members, &mut |_, _, _| *reports += 1).unwrap()
    };
    let mut reports = 0;
    let first = resumable(5, &mut reports);
    assert_eq!((first.pred(), first.history()), (whole.pred(), whole.history()));
    assert_eq!(reports, 2);
    let file = |m: usize| members.join(format!("member-{m}.bin"));
    let inode = |m: usize| std::fs::metadata(file(m)).unwrap().ino();

    // Killed after member 0: member 0 is loaded (its file untouched, its epochs still reported), member 1
    // trained again, and the ensemble is the uninterrupted one, bit for bit.
    let kept = inode(0);
    std::fs::remove_file(file(1)).unwrap();
    let mut reports = 0;
    let resumed = resumable(5, &mut reports);
    assert_eq!(inode(0), kept, "member 0 was trained again");
    assert!(file(1).exists());
    assert_eq!(reports, 2);
    assert_eq!((resumed.pred(), resumed.max_var()), (whole.pred(), whole.max_var()));
    assert_eq!(resumed.history(), whole.history());

    // A member made with another seed is not reused: it is trained again and replaced.
    let other = resumable(6, &mut 0);
    assert_ne!(inode(0), kept);
    assert_ne!(other.pred(), whole.pred());
    // A corrupt member file is trained again, not an error.
    std::fs::write(file(0), b"not a checkpoint").unwrap();
    assert_eq!(resumable(6, &mut 0).pred(), other.pred());
}

#[test]
fn simulated_rewards_on_the_world() {
    let w = world();
    let entropy = Arc::new(EntropyMap::build(&w.train, &DORL_WINDOWS).unwrap());
    assert!(!entropy.is_empty());
    let (e_min, e_max) = entropy.bounds();
    assert!(0.0 < e_min && e_min <= e_max && e_max <= 2.0 + 1e-12, "{e_min} {e_max}");

    let e = train(&EnsembleConfig { n_models: 2, model: DeepFmConfig { epochs: 1, ..quick().model }, ..quick() }, 5);
    for penalty in [WorldPenalty::Mbpo, WorldPenalty::Mopo, WorldPenalty::Dorl] {
        let r = SimulatedReward::for_world(w, e.predictions(), Arc::clone(&entropy), penalty).unwrap();
        let (lo, hi) = r.range();
        assert_eq!(lo, 0.0);
        let mut history = Vec::new();
        for step in 0..10u32 {
            let item = (step * 37) % w.spec.n_items() as u32;
            let v = r.reward(step % 7, item, &history);
            assert!((0.0..=hi + 1e-9).contains(&v), "{penalty:?}: reward {v} outside [0, {hi}]");
            history.push(item);
        }
        assert!(r.describe().contains(penalty.name()));
    }

    let mf = MfReward::fit(w, &dsrm_models::MfConfig { epochs: 3, ..Default::default() }).unwrap();
    let (_, hi) = mf.range();
    assert!(hi > 0.0);
    for u in 0..w.spec.n_users() as u32 {
        let v = mf.reward(u, u % 5, &[]);
        assert!((0.0..=hi + 1e-12).contains(&v));
    }
}
