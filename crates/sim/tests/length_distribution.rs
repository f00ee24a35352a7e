//! Statistical parity (`docs/protocol.md` §11.5): the episode-length distribution of a uniform-random policy is
//! computed *exactly* from the quit rule by dynamic programming over the last N items (written here from the
//! anchors' Python semantics, independently of the simulator), and the batched simulator's empirical
//! distribution must match it. With popularity-aware abandonment too (the paper's rule: on a popular item,
//! more than θ_p of the last N_p items popular), with and without the category rule.

use dsrm_sim::vec_env::rollout_random;
use dsrm_sim::{EnvSpec, PopularityQuit, QuitRule, RewardTable, TagMasks};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

const TAGS: [&[i32]; 5] = [&[0], &[1], &[0, 2], &[3], &[1, 3]];
/// The popular items of the popularity rule.
const POPULAR: [bool; 5] = [true, false, true, false, false];

/// The quit rules of one case: the category rule (window N, θ, on or off) and the popularity rule (N_p, θ_p).
#[derive(Clone, Copy)]
struct Rules {
    n: usize,
    theta: usize,
    category: bool,
    popularity: Option<(usize, usize)>,
}

/// Python: `h[t-N:t]` on a history of length t (`suffix` holds the last min(t, N) items).
fn window(suffix: &[usize], t: usize, n: usize, legacy: bool) -> Vec<usize> {
    let start = t as i64 - n as i64;
    let start = if start >= 0 {
        start as usize
    } else if legacy {
        (t as i64 + start).max(0) as usize
    } else {
        0
    };
    let first_kept = t - suffix.len();
    suffix[start - first_kept..].to_vec()
}

fn quits(window: &[usize], item: usize, theta: usize) -> bool {
    TAGS[item].iter().any(|c| window.iter().filter(|&&b| TAGS[b].contains(c)).count() > theta)
}

/// P(length = L) for L in 0..=max_turn.
fn exact_lengths(rules: Rules, max_turn: usize, legacy: bool) -> Vec<f64> {
    let Rules { n, theta, category, popularity } = rules;
    let keep = n.max(popularity.map_or(0, |(np, _)| np));
    let k = TAGS.len();
    let mut dist = vec![0.0; max_turn + 1];
    let mut states: HashMap<Vec<usize>, f64> = HashMap::from([(vec![], 1.0)]);
    for t in 0..max_turn {
        let mut next: HashMap<Vec<usize>, f64> = HashMap::new();
        for (suffix, p) in &states {
            for (a, &a_popular) in POPULAR.iter().enumerate() {
                let q = p / k as f64;
                let by_category = category && t > 0 && quits(&window(suffix, t, n, legacy), a, theta);
                let by_popularity = popularity.is_some_and(|(np, theta_p)| {
                    let last = &suffix[suffix.len().saturating_sub(np)..];
                    t > 0 && a_popular && last.iter().filter(|&&b| POPULAR[b]).count() > theta_p
                });
                let done = by_category || by_popularity || t + 1 >= max_turn;
                if done {
                    dist[t + 1] += q;
                } else {
                    let mut s = suffix.clone();
                    s.push(a);
                    if s.len() > keep {
                        s.remove(0);
                    }
                    *next.entry(s).or_default() += q;
                }
            }
        }
        states = next;
    }
    dist
}

fn spec(rules: Rules, max_turn: usize, legacy: bool) -> EnvSpec {
    let tags: Vec<Vec<i32>> = TAGS.iter().map(|t| t.to_vec()).collect();
    EnvSpec {
        rewards: RewardTable::Dense { n_users: 3, n_items: tags.len(), values: vec![1.0; 3 * tags.len()] },
        tags: TagMasks::new(&tags).unwrap(),
        quit: QuitRule::Category { window: rules.n, threshold: rules.theta as u32 },
        base_rule: rules.category,
        popularity: rules.popularity.map(|(window, threshold)| PopularityQuit {
            window,
            threshold: threshold as u32,
            popular: POPULAR.to_vec(),
        }),
        max_turn,
        legacy_window: legacy,
        random_initial_item: false,
    }
}

fn check(rules: Rules, max_turn: usize, legacy: bool) {
    let exact = exact_lengths(rules, max_turn, legacy);
    assert!((exact.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    let stats = rollout_random(&spec(rules, max_turn, legacy), 64, 600_000, &mut ChaCha8Rng::seed_from_u64(9));
    let episodes = stats.episodes as f64;
    let Rules { n, theta, category, popularity } = rules;
    for (len, &p) in exact.iter().enumerate() {
        let observed = stats.length_counts[len] as f64 / episodes;
        let sd = (p * (1.0 - p) / episodes).sqrt();
        assert!(
            (observed - p).abs() <= 5.0 * sd + 1e-9,
            "N {n} θ {theta} category {category} popularity {popularity:?} legacy {legacy}: P(L={len}) exact {p:.5}, \
             simulated {observed:.5} (sd {sd:.5})"
        );
    }
}

#[test]
fn random_policy_lengths_match_the_exact_distribution() {
    for (n, theta, max_turn, legacy) in [(4, 0, 30, true), (4, 0, 30, false), (5, 1, 12, true), (1, 0, 30, true)] {
        check(Rules { n, theta, category: true, popularity: None }, max_turn, legacy);
    }
}

#[test]
fn lengths_under_popularity_abandonment_match_the_exact_distribution() {
    // The paper's preset (DORL's category rule, N_p 4, θ_p 1) at Max Len 30 and 50, the popularity rule alone,
    // and other windows and thresholds.
    check(Rules { n: 4, theta: 0, category: true, popularity: Some((4, 1)) }, 30, true);
    check(Rules { n: 4, theta: 0, category: true, popularity: Some((4, 1)) }, 50, true);
    check(Rules { n: 4, theta: 0, category: false, popularity: Some((4, 1)) }, 30, true);
    check(Rules { n: 2, theta: 1, category: true, popularity: Some((3, 0)) }, 12, false);
    check(Rules { n: 4, theta: 0, category: false, popularity: Some((2, 2)) }, 30, true);
    // The rule shortens sessions: the same category rule without it lasts longer on average.
    let mean = |d: &[f64]| d.iter().enumerate().map(|(l, p)| l as f64 * p).sum::<f64>();
    let with = exact_lengths(Rules { n: 4, theta: 0, category: false, popularity: Some((4, 1)) }, 30, true);
    let without = exact_lengths(Rules { n: 4, theta: 0, category: false, popularity: None }, 30, true);
    assert!(
        mean(&with) < mean(&without) && (mean(&without) - 30.0).abs() < 1e-9,
        "{} vs {}",
        mean(&with),
        mean(&without)
    );
}

#[test]
fn the_shrinking_window_changes_the_distribution() {
    let rules = Rules { n: 4, theta: 0, category: true, popularity: None };
    let legacy = exact_lengths(rules, 30, true);
    let fixed = exact_lengths(rules, 30, false);
    let mean = |d: &[f64]| d.iter().enumerate().map(|(l, p)| l as f64 * p).sum::<f64>();
    assert!(mean(&legacy) > mean(&fixed), "the legacy window forgets items, so episodes last longer");
}
