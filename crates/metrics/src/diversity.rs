//! EasyRL4Rec's intra-episode Diversity (`docs/protocol.md` §6.1): how dissimilar the items of one episode
//! are to each other, averaged over episodes.

use crate::{Episode, ItemSimilarity};

/// Diversity of one episode: the mean over position pairs i < j of (1 − sim(a_i, a_j)).
///
/// A repeated item has similarity 1 with itself whatever `similarity` says (so repeats lower diversity);
/// a 1-item episode counts 1.0 (EasyRL4Rec's rule); an empty episode has no diversity (`None`).
pub fn episode_diversity<S: ItemSimilarity + ?Sized>(items: &[u32], similarity: &S) -> Option<f64> {
    match items.len() {
        0 => None,
        1 => Some(1.0),
        len => {
            let mut sum = 0.0;
            for (i, &a) in items.iter().enumerate() {
                for &b in &items[i + 1..] {
                    let s = if a == b { 1.0 } else { similarity.similarity(a, b) };
                    sum += 1.0 - s;
                }
            }
            let pairs = len * (len - 1) / 2;
            Some(sum / pairs as f64)
        }
    }
}

/// Diversity = the mean over episodes of [`episode_diversity`]. Empty episodes are left out of the mean;
/// 0 when no episode has a step. Cost: O(Σ_j L_j²) similarity lookups.
pub fn diversity<S: ItemSimilarity + ?Sized>(episodes: &[Episode], similarity: &S) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for e in episodes {
        if let Some(d) = episode_diversity(&e.items, similarity) {
            sum += d;
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TagJaccard;

    /// Items 0 {1, 2}, 1 {2, 3}, 2 {4}: sim(0,1) = 1/3, sim(0,2) = sim(1,2) = 0.
    fn sim() -> TagJaccard {
        TagJaccard::new(&[vec![1, 2], vec![2, 3], vec![4]])
    }

    #[test]
    fn three_items_by_hand() {
        // Pairs (0,1), (0,2), (1,2): (1 - 1/3) + 1 + 1 = 8/3 over 3 pairs = 8/9.
        let d = episode_diversity(&[0, 1, 2], &sim()).unwrap();
        assert!((d - 8.0 / 9.0).abs() < 1e-15);
    }

    #[test]
    fn one_item_counts_one_and_empty_counts_nothing() {
        assert_eq!(episode_diversity(&[2], &sim()), Some(1.0));
        assert_eq!(episode_diversity(&[], &sim()), None);
    }

    #[test]
    fn repeated_items_have_similarity_one() {
        // [0, 0, 2]: pairs (0,0) -> 0, (0,2) -> 1, (0,2) -> 1: 2/3.
        let d = episode_diversity(&[0, 0, 2], &sim()).unwrap();
        assert!((d - 2.0 / 3.0).abs() < 1e-15);
        // Even a similarity that would say otherwise for an item and itself.
        let never_similar = crate::DistanceSimilarity::new(|_, _| f64::INFINITY);
        assert_eq!(episode_diversity(&[5, 5], &never_similar), Some(0.0));
    }

    #[test]
    fn mean_over_episodes_skips_empty_ones() {
        // Episodes: [0, 1, 2] -> 8/9, [2] -> 1, [] -> skipped: (8/9 + 1) / 2 = 17/18.
        let eps = vec![
            Episode::new(0, vec![0, 1, 2], vec![0.0; 3]),
            Episode::new(1, vec![2], vec![0.0]),
            Episode::new(2, vec![], vec![]),
        ];
        assert!((diversity(&eps, &sim()) - 17.0 / 18.0).abs() < 1e-15);
        assert_eq!(diversity(&[], &sim()), 0.0);
    }
}
