//! End-to-end checks of [`compute`]: a fully hand-computed round, agreement with the standalone
//! functions, closed forms, serde names and validation.

use super::*;
use std::f64::consts::LN_2;

const TOL: f64 = 1e-12;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < TOL
}

/// A 5-item catalogue with every fact chosen so each metric is easy to compute by hand.
struct Fixture {
    tags: Vec<Vec<i32>>,
    dominant: Vec<bool>,
    popular: Vec<bool>,
    popularity: Vec<f64>,
    similarity: TagJaccard,
}

fn fixture() -> Fixture {
    // Tags: 0 {1, 2}, 1 {2, 3}, 2 {4}, 3 {1}, 4 {} (untagged).
    let tags = vec![vec![1, 2], vec![2, 3], vec![4], vec![1], vec![]];
    // Dominant tag set {2} -> items 0 and 1.
    let dominant = dominant_items(&tags, &[2]);
    // |P| = ⌈0.2 · 5⌉ = 1: item 0 has the most distinct pairs.
    let popular = popular_set(&[10, 3, 3, 1, 0], 0.2);
    // Items 2 and 4 unseen -> replaced by the smallest positive popularity 0.125.
    let popularity = vec![0.5, 0.25, 0.0, 0.125, 0.0];
    let similarity = TagJaccard::new(&tags);
    Fixture { tags, dominant, popular, popularity, similarity }
}

impl Fixture {
    fn ctx(&self) -> ItemContext<'_> {
        ItemContext {
            n_items: 5,
            dominant: &self.dominant,
            popular: &self.popular,
            popularity: &self.popularity,
            similarity: &self.similarity,
            item_tags: Some(&self.tags),
        }
    }
}

/// A: [0, 1, 0] rewards [1, 0, 2]; B: [2] reward [0.5]; C: [3, 4] rewards [1, 1].
fn episodes() -> Vec<Episode> {
    vec![
        Episode::new(0, vec![0, 1, 0], vec![1.0, 0.0, 2.0]),
        Episode::new(1, vec![2], vec![0.5]),
        Episode::new(2, vec![3, 4], vec![1.0, 1.0]),
    ]
}

#[test]
fn fixture_facts() {
    let f = fixture();
    assert_eq!(f.dominant, vec![true, true, false, false, false]);
    assert_eq!(f.popular, vec![true, false, false, false, false]);
    assert!(close(f.similarity.similarity(0, 1), 1.0 / 3.0));
    assert!(close(f.similarity.similarity(0, 3), 0.5));
}

#[test]
fn compute_by_hand() {
    let f = fixture();
    let m = compute(&episodes(), &f.ctx());
    // R_tra = (3 + 0.5 + 2) / 3; Length = (3 + 1 + 2) / 3 = 2; R_each = 5.5 / 6 (pooled).
    assert!(close(m.r_tra, 5.5 / 3.0));
    assert!(close(m.length, 2.0));
    assert!(close(m.r_each, 5.5 / 6.0));
    // e = [2, 1, 1, 1, 1]: 5 distinct of n = 5 -> CV 1; 5 distinct over 6 steps -> CV_turn 5/6.
    assert!(close(m.cv, 1.0));
    assert!(close(m.cv_turn, 5.0 / 6.0));
    // Dominant steps: A's three (items 0, 1, 0), none in B or C -> 3/6.
    assert!(close(m.mcd, 0.5));
    // Diversity: A pairs (0,1) 2/3, (0,0) 0, (1,0) 2/3 -> 4/9; B one item -> 1; C (3,4) 1 - 0 -> 1.
    // Mean (4/9 + 1 + 1) / 3 = 22/27.
    assert!(close(m.diversity, 22.0 / 27.0));
    // Novelty: A (ln2 + 2ln2 + ln2)/3 = 4/3 ln2; B item 2 -> floor 1/8 -> 3 ln2; C (3ln2 + 3ln2)/2.
    // Mean (4/3 + 3 + 3) / 3 ln2 = 22/9 ln2.
    assert!(close(m.novelty, 22.0 / 9.0 * LN_2));
    // Gini: sorted [1, 1, 1, 1, 2], coefficients 2k - 6 = -4, -2, 0, 2, 4 -> 4 / (5 · 6) = 2/15.
    assert!(close(m.gini, 2.0 / 15.0));
    assert!(close(m.gini_exposed_only, 2.0 / 15.0));
    // Entropy: p = 1/3, 1/6 × 4 -> H = (1/3) ln 3 + (2/3) ln 6; normalised by ln 5.
    let h = 3f64.ln() / 3.0 + 2.0 * 6f64.ln() / 3.0;
    assert!(close(m.exposure_entropy, h));
    assert!(close(m.exposure_entropy_norm, h / 5f64.ln()));
    // P = {0} holds 2 of 6 exposures: LT 2/3, popular 1/3, relatives (1/3)/(1/5) = 5/3 and (2/3)/(4/5) = 5/6.
    assert!(close(m.long_tail_share, 2.0 / 3.0));
    assert!(close(m.popular_share, 1.0 / 3.0));
    assert!(close(m.popular_relative_exposure, 5.0 / 3.0));
    assert!(close(m.long_tail_relative_exposure, 5.0 / 6.0));
    // Per-episode LT: A 1/3 (item 1), B 1, C 1 -> 7/9.
    assert!(close(m.long_tail_share_episode_mean, 7.0 / 9.0));
    assert_eq!(m.episodes, 3);
}

#[test]
fn tag_exposure_by_hand() {
    let f = fixture();
    // e = [2, 1, 1, 1, 1]; occurrences: tag 1 -> 2 + 1 = 3, tag 2 -> 2 + 1 = 3, tag 3 -> 1, tag 4 -> 1; total 8.
    let t = compute_tag_exposure(&episodes(), &f.ctx()).unwrap();
    let shares: Vec<(i32, f64)> = t.iter().map(|x| (x.tag, x.share)).collect();
    assert_eq!(shares, vec![(1, 0.375), (2, 0.375), (3, 0.125), (4, 0.125)]);
    let no_tags = ItemContext { item_tags: None, ..f.ctx() };
    assert_eq!(compute_tag_exposure(&episodes(), &no_tags), None);
}

/// A fixed-seed 64-bit LCG, so the agreement test needs no extra dependency.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn compute_equals_the_standalone_functions() {
    let n = 40usize;
    let mut rng = Lcg(7);
    let tags: Vec<Vec<i32>> = (0..n).map(|_| (0..rng.below(3)).map(|_| rng.below(6) as i32).collect()).collect();
    let dominant = dominant_items(&tags, &[0, 3]);
    let pairs: Vec<u64> = (0..n).map(|_| rng.below(20)).collect();
    let popular = popular_set(&pairs, 0.2);
    let popularity: Vec<f64> = (0..n).map(|_| rng.below(5) as f64 / 10.0).collect();
    let similarity = TagJaccard::new(&tags);
    let ctx = ItemContext {
        n_items: n,
        dominant: &dominant,
        popular: &popular,
        popularity: &popularity,
        similarity: &similarity,
        item_tags: Some(&tags),
    };
    for round in 0..20 {
        let episodes: Vec<Episode> = (0..1 + rng.below(12))
            .map(|u| {
                let len = rng.below(8) as usize; // includes empty episodes
                let items = (0..len).map(|_| rng.below(n as u64) as u32).collect();
                let rewards = (0..len).map(|_| rng.below(100) as f64 / 37.0).collect();
                Episode::new(u as u32, items, rewards)
            })
            .collect();
        ctx.validate(&episodes).unwrap();
        let m = compute(&episodes, &ctx);
        let e = exposure_counts(&episodes, n);
        let (h, hn) = exposure_entropy(&e);
        let g = group_exposure(&e, &popular);
        let expected = MetricSet {
            r_tra: r_tra(&episodes),
            r_each: r_each(&episodes),
            length: mean_length(&episodes),
            cv: cv(&e),
            cv_turn: cv_turn(&e),
            mcd: mcd(&episodes, &dominant),
            diversity: diversity(&episodes, &similarity),
            novelty: novelty(&episodes, &popularity),
            gini: gini(&e),
            gini_exposed_only: gini_exposed_only(&e),
            exposure_entropy: h,
            exposure_entropy_norm: hn,
            long_tail_share: long_tail_share(&e, &popular),
            long_tail_share_episode_mean: long_tail_share_episode_mean(&episodes, &popular),
            popular_share: g.popular_share,
            popular_relative_exposure: g.popular_relative,
            long_tail_relative_exposure: g.long_tail_relative,
            ad_share: g.ad_share(),
            ad_item: g.ad_item(),
            episodes: episodes.len(),
        };
        assert_eq!(m, expected, "round {round}");
        // AD from its definitions, written out: group shares, and mean exposure per item of each group.
        let total: u64 = e.iter().sum();
        let group = |want: bool| -> Vec<f64> {
            e.iter().enumerate().filter(|(i, _)| popular[*i] == want).map(|(_, &x)| x as f64).collect()
        };
        let (pop, tail) = (group(true), group(false));
        let sum = |g: &[f64]| g.iter().sum::<f64>();
        if total > 0 {
            let t = total as f64;
            assert!((m.ad_share - ((sum(&pop) - sum(&tail)) / t).abs()).abs() < 1e-12, "round {round}");
            let per_item = (sum(&pop) / pop.len() as f64 - sum(&tail) / tail.len() as f64).abs() / (t / n as f64);
            assert!((m.ad_item - per_item).abs() < 1e-12, "round {round}: {} vs {per_item}", m.ad_item);
        } else {
            assert_eq!((m.ad_share, m.ad_item), (0.0, 0.0));
        }
        assert!(m.values().iter().all(|v| v.is_finite()), "round {round}");
    }
}

#[test]
fn closed_forms_through_compute() {
    // n = 10, |P| = 2. Uniform: each item exactly once.
    let n = 10;
    let popular = popular_set(&[5, 4, 0, 0, 0, 0, 0, 0, 0, 0], 0.2);
    let (dominant, popularity) = (vec![false; n], vec![0.1; n]);
    let similarity = TagJaccard::new(&vec![vec![]; n]);
    let ctx = ItemContext {
        n_items: n,
        dominant: &dominant,
        popular: &popular,
        popularity: &popularity,
        similarity: &similarity,
        item_tags: None,
    };
    let uniform = vec![Episode::new(0, (0..10).collect(), vec![1.0; 10])];
    let m = compute(&uniform, &ctx);
    assert_eq!(m.gini, 0.0);
    assert!(close(m.exposure_entropy_norm, 1.0));
    assert!(close(m.long_tail_share, 0.8)); // |T| / n
    assert!(close(m.popular_relative_exposure, 1.0));
    assert!(close(m.long_tail_relative_exposure, 1.0));
    assert_eq!(m.cv, 1.0);
    assert!(close(m.ad_share, 0.6)); // |0.2 − 0.8|: the groups' sizes, not their per-item exposure
    assert!(close(m.ad_item, 0.0)); // every item shown equally often
                                    // One-hot: item 4 shown three times.
    let one_hot = vec![Episode::new(0, vec![4, 4, 4], vec![0.0; 3])];
    let m = compute(&one_hot, &ctx);
    assert!(close(m.gini, 0.9)); // (n − 1) / n
    assert_eq!(m.exposure_entropy, 0.0);
    assert_eq!(m.exposure_entropy_norm, 0.0);
    assert_eq!(m.gini_exposed_only, 0.0);
    assert_eq!(m.long_tail_share, 1.0);
    assert_eq!(m.diversity, 0.0); // every pair is the same item
    assert_eq!(m.ad_share, 1.0); // all exposure on the long tail
    assert!(close(m.ad_item, 1.25)); // |0 − 3/8| / (3/10)
}

#[test]
fn empty_input_is_all_zero_never_nan() {
    let f = fixture();
    let m = compute(&[], &f.ctx());
    assert_eq!(m, MetricSet::default());
    assert_eq!(m.episodes, 0);
    // Episodes without steps: counted, every other value 0.
    let m = compute(&[Episode::new(0, vec![], vec![]), Episode::new(1, vec![], vec![])], &f.ctx());
    assert_eq!(m.episodes, 2);
    assert!(m.values()[..17].iter().all(|&v| v == 0.0), "{m:?}");
    // An empty catalogue never panics either.
    let empty = ItemContext {
        n_items: 0,
        dominant: &[],
        popular: &[],
        popularity: &[],
        similarity: &f.similarity,
        item_tags: None,
    };
    let m = compute(&episodes(), &empty);
    assert!(m.values().iter().all(|v| v.is_finite()));
}

#[test]
fn serde_names_are_the_log_keys() {
    let m = compute(&episodes(), &fixture().ctx());
    let json = serde_json::to_string(&m).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = MetricSet::NAMES.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    // Field order in the output follows NAMES, and values() follows the fields.
    let positions: Vec<usize> = MetricSet::NAMES.iter().map(|k| json.find(&format!("\"{k}\":")).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    // serde_json's default float parser may be 1 ulp off, hence the tolerance.
    for (name, v) in m.named_values() {
        assert!(close(value[name].as_f64().unwrap(), v), "{name}");
    }
    let back: MetricSet = serde_json::from_str(&json).unwrap();
    assert!(back.values().iter().zip(m.values()).all(|(a, b)| close(*a, b)));
    assert_eq!(back.episodes, m.episodes);
}

#[test]
fn validate_reports_wiring_mistakes() {
    let f = fixture();
    let ctx = f.ctx();
    assert_eq!(ctx.validate(&episodes()), Ok(()));
    let bad_item = vec![Episode::new(0, vec![1, 5], vec![0.0; 2])];
    assert_eq!(ctx.validate(&bad_item), Err(MetricsError::ItemOutOfRange { episode: 0, step: 1, item: 5, n_items: 5 }));
    let bad_rewards = vec![Episode::new(0, vec![1], vec![])];
    assert_eq!(ctx.validate(&bad_rewards), Err(MetricsError::RewardCount { episode: 0, items: 1, rewards: 0 }));
    let short = ItemContext { popular: &f.popular[..4], ..ctx };
    let err = short.validate(&[]).unwrap_err();
    assert_eq!(err, MetricsError::ContextLength { field: "popular", expected: 5, found: 4 });
    assert!(err.to_string().contains("`popular` has 4 entries"));
    let pop = [0.5, -1.0, 0.0, 0.0, 0.0];
    let negative = ItemContext { popularity: &pop, ..ctx };
    assert_eq!(negative.validate(&[]), Err(MetricsError::Popularity { item: 1, value: -1.0 }));
    // Out-of-range ids do not panic compute either: they are steps, but not exposure.
    let m = compute(&bad_item, &ctx);
    assert_eq!(m.length, 2.0);
    assert_eq!(m.cv_turn, 1.0);
}

#[test]
fn metric_set_display_order_and_ci_aggregation() {
    // Per-seed aggregation of one metric over MetricSet values, as the evaluation crate does.
    let f = fixture();
    let sets: Vec<MetricSet> = (0..3).map(|k| compute(&episodes()[k..], &f.ctx())).collect();
    let r_tra: Vec<f64> = sets.iter().map(|s| s.r_tra).collect();
    let ci = mean_ci95(&r_tra);
    assert_eq!(ci.n, 3);
    assert!(ci.half_width > 0.0);
}
