use super::*;
use dsrm_nn::tch::Device;
use dsrm_sim::test_support::tiny_world;
use dsrm_state::{AvgConfig, TrackerConfig};

/// Drops every interaction with `item`.
struct DropItem(u32);

impl HistoryFilter for DropItem {
    fn keep(&self, _user: u32, item: u32, _reward: f32) -> bool {
        item != self.0
    }
    fn name(&self) -> &'static str {
        "drop-item"
    }
}

fn avg(window: usize, n_items: usize) -> Box<dyn StateTracker> {
    let cfg = TrackerConfig::Avg(AvgConfig { window, ..Default::default() });
    dsrm_state::build(&cfg, n_items, None, Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    a.f_sub(b).unwrap().abs().max().double_value(&[])
}

#[test]
fn the_tracker_reads_the_kept_history_as_if_the_dropped_steps_never_happened() {
    let _g = crate::test_support::lock();
    dsrm_nn::tch::manual_seed(1);
    let n_items = 10;
    let inner = avg(3, n_items);
    // The same weights twice: one behind the filter, one reading the hand-filtered history.
    let mut plain = avg(3, n_items);
    plain.var_store_mut().copy(inner.var_store()).unwrap();
    let usage = Arc::new(FilterUsage::default());
    let filtered = FilteredTracker::new(inner, Arc::new(DropItem(3)), 0).counting(usage.clone());
    assert_eq!(filtered.window(), 6);
    let histories: [(u32, &[u32], &[f64]); 3] = [
        (0, &[1, 3, 2, 3, 4], &[0.1, 0.9, 0.2, 0.8, 0.4]),
        (1, &[3, 3], &[1.0, 1.0]),
        (2, &[5, 6, 7, 8], &[0.5, 0.6, 0.7, 0.8]),
    ];
    let kept: [(u32, &[u32], &[f64]); 3] =
        [(0, &[1, 2, 4], &[0.1, 0.2, 0.4]), (1, &[], &[]), (2, &[5, 6, 7, 8], &[0.5, 0.6, 0.7, 0.8])];
    let batch = HistoryBatch::new(&histories, filtered.window(), n_items, Device::Cpu);
    let by_hand = HistoryBatch::new(&kept, 3, n_items, Device::Cpu);
    let got = filtered.try_states(&batch).unwrap();
    let want = plain.try_states(&by_hand).unwrap();
    assert!(max_diff(&got, &want) < 1e-7, "{got} vs {want}");
    // Without the filter the states differ (the test can fail).
    let unfiltered = plain.try_states(&HistoryBatch::new(&histories, 3, n_items, Device::Cpu)).unwrap();
    assert!(max_diff(&unfiltered, &want) > 1e-3);
    // The step count passed on is the episode's minus the dropped steps (user 1: nothing kept, so t = 0 and
    // the tracker sees the start row alone).
    assert_eq!(Vec::<i64>::try_from(&filtered.filtered(&batch).unwrap().steps).unwrap(), [3, 0, 4]);
    // The usage counts every interaction read (5 + 2 + 4 per batch, twice: try_states and filtered) and
    // the dropped ones (item 3: 2 + 2), then starts again.
    assert_eq!(usage.take(), (22, 8));
    assert_eq!(usage.take(), (0, 0));
}

#[test]
fn loss_based_filters_drop_at_most_their_share_of_training_clicks_and_are_deterministic() {
    let world = tiny_world();
    for kind in [FilterKind::Tce, FilterKind::Rce] {
        let cfg = HistoryFilterConfig {
            kind,
            drop_rate: 0.2,
            warmup_epochs: 2,
            beta: 0.25,
            negatives: 1,
            mf: MfConfig { dim: 8, epochs: 5, ..Default::default() },
            ..toml::from_str("kind = \"tce\"").unwrap()
        };
        let f = LossBasedFilter::fit(&cfg, world, 1).unwrap();
        let s = f.stats().clone();
        assert!(s.dropped_clicks > 0.1 && s.dropped_clicks <= 0.2, "{kind:?}: {s:?}");
        assert!(s.negatives == s.clicks && s.min_belief > 0.0 && s.min_belief < 1.0, "{s:?}");
        // keep() is the belief cut; outside the model everything is kept.
        let (u, i) = (world.train.user[0], world.train.item[0]);
        assert_eq!(f.keep(u, i, 0.0), f.belief(u, i).unwrap() >= s.min_belief);
        assert!(f.keep(u32::MAX, i, 0.0) && f.keep(u, u32::MAX, 0.0));
        // Same data, config and seed: the same filter; another seed: another user model.
        let again = LossBasedFilter::fit(&cfg, world, 1).unwrap();
        assert_eq!(again.stats(), &s);
        assert_ne!(LossBasedFilter::fit(&cfg, world, 2).unwrap().stats().min_belief, s.min_belief);
        // Through the config: the same filter, and its record is the loss-based one.
        let fitted = cfg.fit(world, 1).unwrap();
        assert_eq!(fitted.stats(), FilterStats::LossBased(s));
        assert_eq!(fitted.name(), kind.name());
    }
}

#[test]
fn the_bod_filter_drops_its_share_of_training_clicks_its_model_believes_least_and_is_deterministic() {
    let world = tiny_world();
    let cfg: HistoryFilterConfig =
        toml::from_str("kind = \"bod\"\ndrop_rate = 0.2\nbatch_size = 64\n[mf]\ndim = 8\nepochs = 5").unwrap();
    assert_eq!(cfg.kind, FilterKind::Bod);
    let f = BodFilter::fit(&cfg, world, 1).unwrap();
    let s = f.stats().clone();
    assert!(s.dropped_clicks > 0.1 && s.dropped_clicks <= 0.2, "{s:?}");
    assert!(s.negatives == s.clicks && s.min_belief > 0.0 && s.min_belief < 1.0, "{s:?}");
    // The weights are learned: not the uniform 0.5 of a generator without its outer step.
    let (u, i) = (world.train.user[0], world.train.item[0]);
    assert!(s.mean_click_weight != 0.5 && f.weight(u, i).unwrap() != 0.5, "{s:?}");
    // keep() is the belief cut; outside the model everything is kept.
    assert_eq!(f.keep(u, i, 0.0), f.belief(u, i).unwrap() >= s.min_belief);
    assert!(f.keep(u32::MAX, i, 0.0) && f.keep(u, u32::MAX, 0.0));
    let kept = (0..world.train.user.len()).filter(|&k| f.keep(world.train.user[k], world.train.item[k], 0.0)).count();
    assert!(kept < world.train.user.len() && kept > 0);
    // Same data, config and seed: the same filter; another seed: another fit.
    assert_eq!(BodFilter::fit(&cfg, world, 1).unwrap().stats(), &s);
    assert_ne!(BodFilter::fit(&cfg, world, 2).unwrap().stats().min_belief, s.min_belief);
    // Through the config: the same filter, named bod, and its record says so.
    let fitted = cfg.fit(world, 1).unwrap();
    assert_eq!(fitted.name(), "bod");
    let json = serde_json::to_value(fitted.stats()).unwrap();
    assert_eq!((json["kind"].as_str(), json["min_belief"].as_f64()), (Some("bod"), Some(s.min_belief)));
    // Without the outer step the weights stay 0.5 and the user model is another one.
    let frozen =
        BodFilter::fit(&HistoryFilterConfig { generator_learning_rate: 0.0, ..cfg.clone() }, world, 1).unwrap();
    assert_eq!(frozen.stats().mean_click_weight, 0.5);
    assert_ne!(frozen.stats().min_belief, s.min_belief);
}

#[test]
fn filter_settings_out_of_range_name_their_key() {
    let cfg: HistoryFilterConfig = toml::from_str("kind = \"tce\"").unwrap();
    assert!(cfg.problems().is_empty());
    for (text, key) in [
        ("kind = \"tce\"\ndrop_rate = 1.0", "history_filter.drop_rate"),
        ("kind = \"rce\"\nbeta = -1.0", "history_filter.beta"),
        ("kind = \"rce\"\nnegatives = 0", "history_filter.negatives"),
    ] {
        let cfg: HistoryFilterConfig = toml::from_str(text).unwrap();
        assert!(cfg.problems().iter().any(|p| p.contains(key)), "{text}: {:?}", cfg.problems());
    }
    for (text, key) in [
        ("kind = \"bod\"\nbatch_size = 0", "history_filter.batch_size"),
        ("kind = \"bod\"\ngenerator_learning_rate = -0.1", "history_filter.generator_learning_rate"),
        ("kind = \"bod\"\nholdout = 1.0", "history_filter.holdout"),
    ] {
        let cfg: HistoryFilterConfig = toml::from_str(text).unwrap();
        assert!(cfg.problems().iter().any(|p| p.contains(key)), "{text}: {:?}", cfg.problems());
        assert!(cfg.fit(tiny_world(), 1).is_err());
    }
    // BOD's defaults are the user model's (dsrm_models::BodConfig).
    let bod: HistoryFilterConfig = toml::from_str("kind = \"bod\"").unwrap();
    assert!(bod.problems().is_empty());
    assert_eq!(bod.bod(), dsrm_models::BodConfig::default());
    let err = toml::from_str::<HistoryFilterConfig>("kind = \"nope\"").unwrap_err().to_string();
    assert!(err.contains("tce") && err.contains("rce") && err.contains("bod"), "{err}");
    assert!(toml::from_str::<HistoryFilterConfig>("kind = \"tce\"\ndrop = 0.1").is_err());
    assert!(toml::from_str::<HistoryFilterConfig>("kind = \"bod\"\nbatch = 64").is_err());
}
