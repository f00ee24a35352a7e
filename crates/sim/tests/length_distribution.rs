//! Statistical parity (`docs/protocol.md` §11.5): the episode-length distribution of a uniform-random policy is
//! computed *exactly* from the quit rule by dynamic programming over the last N items (written here from the
//! anchors' Python semantics, independently of the simulator), and the batched simulator's empirical
//! distribution must match it.

use dsrm_sim::vec_env::rollout_random;
use dsrm_sim::{EnvSpec, QuitRule, RewardTable, TagMasks};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

const TAGS: [&[i32]; 5] = [&[0], &[1], &[0, 2], &[3], &[1, 3]];

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
fn exact_lengths(n: usize, theta: usize, max_turn: usize, legacy: bool) -> Vec<f64> {
    let k = TAGS.len();
    let mut dist = vec![0.0; max_turn + 1];
    let mut states: HashMap<Vec<usize>, f64> = HashMap::from([(vec![], 1.0)]);
    for t in 0..max_turn {
        let mut next: HashMap<Vec<usize>, f64> = HashMap::new();
        for (suffix, p) in &states {
            for a in 0..k {
                let q = p / k as f64;
                let done = (t > 0 && quits(&window(suffix, t, n, legacy), a, theta)) || t + 1 >= max_turn;
                if done {
                    dist[t + 1] += q;
                } else {
                    let mut s = suffix.clone();
                    s.push(a);
                    if s.len() > n {
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

fn spec(n: usize, theta: u32, max_turn: usize, legacy: bool) -> EnvSpec {
    let tags: Vec<Vec<i32>> = TAGS.iter().map(|t| t.to_vec()).collect();
    EnvSpec {
        rewards: RewardTable::Dense { n_users: 3, n_items: tags.len(), values: vec![1.0; 3 * tags.len()] },
        tags: TagMasks::new(&tags).unwrap(),
        quit: QuitRule::Category { window: n, threshold: theta },
        max_turn,
        legacy_window: legacy,
        random_initial_item: false,
    }
}

#[test]
fn random_policy_lengths_match_the_exact_distribution() {
    for (n, theta, max_turn, legacy) in [(4, 0, 30, true), (4, 0, 30, false), (5, 1, 12, true), (1, 0, 30, true)] {
        let exact = exact_lengths(n, theta, max_turn, legacy);
        assert!((exact.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let stats =
            rollout_random(&spec(n, theta as u32, max_turn, legacy), 64, 600_000, &mut ChaCha8Rng::seed_from_u64(9));
        let episodes = stats.episodes as f64;
        for (len, &p) in exact.iter().enumerate() {
            let observed = stats.length_counts[len] as f64 / episodes;
            let sd = (p * (1.0 - p) / episodes).sqrt();
            assert!(
                (observed - p).abs() <= 5.0 * sd + 1e-9,
                "N {n} θ {theta} legacy {legacy}: P(L={len}) exact {p:.5}, simulated {observed:.5} (sd {sd:.5})"
            );
        }
    }
}

#[test]
fn the_shrinking_window_changes_the_distribution() {
    let legacy = exact_lengths(4, 0, 30, true);
    let fixed = exact_lengths(4, 0, 30, false);
    let mean = |d: &[f64]| d.iter().enumerate().map(|(l, p)| l as f64 * p).sum::<f64>();
    assert!(mean(&legacy) > mean(&fixed), "the legacy window forgets items, so episodes last longer");
}
