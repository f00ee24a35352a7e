//! The training set of the `pointneg` loss: every logged row paired with sampled negatives
//! (`docs/protocol.md` §4.1; DORL-codes `negative_sampling` + `align_pos_neg`).
//!
//! For each logged row (user u, item i, target y) the anchors draw `neg_K` items for the same user, each a
//! (u, j) pair absent from the training matrix, with target 0, and repeat the positive row `neg_K` times so
//! that every training example is one (positive, negative) pair. An epoch is therefore `rows · neg_K` pairs.
//! The negatives are drawn once, before training, and shared by every model of the ensemble, as in the
//! anchors (they are part of the data set, not of the model).
//!
//! **Which pairs are excluded.** A candidate j is redrawn while (u, j) is an observed pair of the log, at most
//! [`NEG_TRIES`] times; the last draw is kept after that, so a user who has seen almost every item cannot stall
//! sampling (with KuaiRec's 16 % density the chance of keeping an observed pair is 0.16³² ≈ 0). The anchors
//! build the "training matrix" from the target values, so an observed pair with target 0 (a KuaiRand
//! non-click) could be drawn as a negative there; here every observed pair is excluded, because its logged
//! target already enters the loss as a positive row.

use crate::{invalid, Result};
use dsrm_models::Interactions;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Draws per negative before an observed pair is accepted anyway.
pub const NEG_TRIES: usize = 32;

/// Logged rows plus `neg_k` sampled negative items per row. Pair `p` is row `p / neg_k` with negative `p`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingPairs {
    /// User of each logged row.
    pub user: Vec<u32>,
    /// Item of each logged row.
    pub item: Vec<u32>,
    /// Target of each logged row (f32, the model's precision).
    pub target: Vec<f32>,
    /// Negatives per row.
    pub neg_k: usize,
    /// `rows * neg_k` negative items.
    pub negative: Vec<u32>,
    /// Per logged row: the weight of its positive term (empty: all 1; the IPS user model, [`crate::ips`]).
    pub weight: Vec<f32>,
}

impl TrainingPairs {
    /// Validates `train` and samples its negatives from a ChaCha8 stream seeded with `seed`.
    ///
    /// Errors on an empty log, columns of different lengths, ids out of range, non-finite targets, `neg_k`
    /// of 0, or more pairs than 32-bit indices can address.
    pub fn sample(train: &Interactions, neg_k: usize, seed: u64) -> Result<Self> {
        Self::sample_excluding(train, train, neg_k, seed)
    }

    /// [`Self::sample`] for the rows of `rows`, drawing negatives that avoid every pair observed in `log`
    /// (the whole log `rows` was taken from): an incremental refit trains on part of a log, and a pair the
    /// rest of the log holds is not a negative. With `log` = `rows` this is [`Self::sample`], draw for draw.
    ///
    /// Errors as [`Self::sample`], and when `log` has another shape than `rows`.
    pub fn sample_excluding(rows: &Interactions, log: &Interactions, neg_k: usize, seed: u64) -> Result<Self> {
        let train = rows;
        validate(train)?;
        if (log.n_users, log.n_items) != (train.n_users, train.n_items) {
            return Err(invalid(format!(
                "rows of {} users x {} items, but the log they exclude is {} x {}",
                train.n_users, train.n_items, log.n_users, log.n_items
            )));
        }
        if neg_k == 0 {
            return Err(invalid("neg_k must be at least 1 (the pointneg loss needs negatives)"));
        }
        let rows = train.len();
        if rows.checked_mul(neg_k).is_none_or(|n| n > u32::MAX as usize) {
            return Err(invalid(format!("{rows} rows x {neg_k} negatives exceed 2^32 training pairs")));
        }
        let seen = SeenItems::new(log);
        let n_items = train.n_items as u32;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut negative = Vec::with_capacity(rows * neg_k);
        for &user in &train.user {
            let seen_by_user = seen.of(user);
            let exhaustive = seen_by_user.len() >= train.n_items;
            for _ in 0..neg_k {
                let mut candidate = rng.gen_range(0..n_items);
                if !exhaustive {
                    for _ in 1..NEG_TRIES {
                        if seen_by_user.binary_search(&candidate).is_err() {
                            break;
                        }
                        candidate = rng.gen_range(0..n_items);
                    }
                }
                negative.push(candidate);
            }
        }
        Ok(Self {
            user: train.user.clone(),
            item: train.item.clone(),
            target: train.target.iter().map(|&t| t as f32).collect(),
            neg_k,
            negative,
            weight: Vec::new(),
        })
    }

    /// Number of logged rows.
    pub fn rows(&self) -> usize {
        self.user.len()
    }

    /// Number of (positive, negative) pairs: one epoch.
    pub fn len(&self) -> usize {
        self.negative.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.negative.is_empty()
    }

    /// Writes the batch of pairs `ids` as model inputs: `users` and `items` hold the B positives followed by
    /// the B negatives (same users), `targets` the B positive targets. Buffers are reused across batches.
    ///
    /// # Panics
    /// If a pair id is `>= len()`.
    pub fn fill_batch(&self, ids: &[u32], users: &mut Vec<i64>, items: &mut Vec<i64>, targets: &mut Vec<f32>) {
        users.clear();
        items.clear();
        targets.clear();
        for &p in ids {
            let row = p as usize / self.neg_k;
            users.push(i64::from(self.user[row]));
            items.push(i64::from(self.item[row]));
            targets.push(self.target[row]);
        }
        users.extend_from_within(..);
        items.extend(ids.iter().map(|&p| i64::from(self.negative[p as usize])));
    }

    /// The positive-term weights of the pairs `ids` (call only when `weight` is not empty).
    pub fn fill_weights(&self, ids: &[u32], weights: &mut Vec<f32>) {
        weights.clear();
        weights.extend(ids.iter().map(|&p| self.weight[p as usize / self.neg_k]));
    }
}

/// Checks that every column has one value per row, ids are in range and targets finite.
pub(crate) fn validate(train: &Interactions) -> Result<()> {
    let rows = train.len();
    if rows == 0 || train.n_users == 0 || train.n_items == 0 {
        return Err(invalid(format!(
            "cannot train on an empty log ({rows} rows, {} users, {} items)",
            train.n_users, train.n_items
        )));
    }
    if train.item.len() != rows || train.target.len() != rows {
        return Err(invalid(format!(
            "log columns differ in length: {rows} users, {} items, {} targets",
            train.item.len(),
            train.target.len()
        )));
    }
    if train.n_items > u32::MAX as usize || train.n_users > u32::MAX as usize {
        return Err(invalid("more than 2^32 users or items"));
    }
    for row in 0..rows {
        let (u, i, y) = (train.user[row], train.item[row], train.target[row]);
        if u as usize >= train.n_users {
            return Err(invalid(format!("row {row}: user {u} out of range (n_users {})", train.n_users)));
        }
        if i as usize >= train.n_items {
            return Err(invalid(format!("row {row}: item {i} out of range (n_items {})", train.n_items)));
        }
        if !y.is_finite() {
            return Err(invalid(format!("row {row}: target {y} is not finite")));
        }
    }
    Ok(())
}

/// Each user's distinct logged items, sorted (a CSR table), for rejecting observed pairs.
struct SeenItems {
    offsets: Vec<usize>,
    items: Vec<u32>,
}

impl SeenItems {
    fn new(train: &Interactions) -> Self {
        let mut pairs: Vec<u64> =
            train.user.iter().zip(&train.item).map(|(&u, &i)| (u64::from(u) << 32) | u64::from(i)).collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut offsets = vec![0usize; train.n_users + 1];
        for &p in &pairs {
            offsets[(p >> 32) as usize + 1] += 1;
        }
        for u in 0..train.n_users {
            offsets[u + 1] += offsets[u];
        }
        Self { offsets, items: pairs.iter().map(|&p| p as u32).collect() }
    }

    fn of(&self, user: u32) -> &[u32] {
        &self.items[self.offsets[user as usize]..self.offsets[user as usize + 1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> Interactions {
        // User 0 saw items 0, 1, 2 (item 1 twice); user 1 saw item 3; 6 items.
        Interactions {
            n_users: 2,
            n_items: 6,
            user: vec![0, 0, 0, 0, 1],
            item: vec![0, 1, 1, 2, 3],
            target: vec![1.0, 0.5, 0.7, 2.0, 0.0],
        }
    }

    #[test]
    fn negatives_avoid_observed_pairs_and_are_seeded() {
        let pairs = TrainingPairs::sample(&log(), 5, 1).unwrap();
        assert_eq!((pairs.rows(), pairs.len()), (5, 25));
        for (p, &j) in pairs.negative.iter().enumerate() {
            let user = pairs.user[p / 5];
            let seen: &[u32] = if user == 0 { &[0, 1, 2] } else { &[3] };
            assert!(!seen.contains(&j), "pair {p}: user {user} saw item {j}");
        }
        assert_eq!(pairs, TrainingPairs::sample(&log(), 5, 1).unwrap());
        assert_ne!(pairs.negative, TrainingPairs::sample(&log(), 5, 2).unwrap().negative);
    }

    #[test]
    fn negatives_of_part_of_a_log_avoid_the_whole_logs_pairs() {
        // Rows: user 0's last row and user 1's row; the log excluded is the whole of `log()`.
        let rows = Interactions { user: vec![0, 1], item: vec![2, 3], target: vec![2.0, 0.0], ..log() };
        let pairs = TrainingPairs::sample_excluding(&rows, &log(), 20, 3).unwrap();
        assert_eq!((pairs.rows(), pairs.len()), (2, 40));
        for (p, &j) in pairs.negative.iter().enumerate() {
            let seen: &[u32] = if p < 20 { &[0, 1, 2] } else { &[3] };
            assert!(!seen.contains(&j), "pair {p} drew item {j}, which the log holds for its user");
        }
        // The rows alone would let user 0 draw items 0 and 1 (not in `rows`) as negatives.
        let alone = TrainingPairs::sample(&rows, 20, 3).unwrap();
        assert!(alone.negative[..20].iter().any(|j| [0, 1].contains(j)), "{:?}", &alone.negative[..20]);
        // A whole log excluding itself is `sample`.
        assert_eq!(
            TrainingPairs::sample_excluding(&log(), &log(), 4, 9).unwrap(),
            TrainingPairs::sample(&log(), 4, 9).unwrap()
        );
        let other = Interactions { n_items: 7, ..log() };
        assert!(TrainingPairs::sample_excluding(&rows, &other, 1, 0).is_err());
    }

    #[test]
    fn batch_layout_is_positives_then_negatives() {
        let pairs = TrainingPairs::sample(&log(), 2, 0).unwrap();
        let (mut u, mut i, mut y) = (Vec::new(), Vec::new(), Vec::new());
        // Pair 0 is row 0 (user 0, item 0), pair 9 is row 4 (user 1, item 3).
        pairs.fill_batch(&[0, 9], &mut u, &mut i, &mut y);
        assert_eq!(u, vec![0, 1, 0, 1]);
        assert_eq!(&i[..2], &[0, 3]);
        assert_eq!(&i[2..], &[i64::from(pairs.negative[0]), i64::from(pairs.negative[9])]);
        assert_eq!(y, vec![1.0, 0.0]);
    }

    #[test]
    fn bad_logs_are_errors() {
        let mut bad = log();
        bad.item[2] = 6;
        assert!(TrainingPairs::sample(&bad, 1, 0).unwrap_err().to_string().contains("item 6 out of range"));
        let mut bad = log();
        bad.target[0] = f64::NAN;
        assert!(TrainingPairs::sample(&bad, 1, 0).is_err());
        assert!(TrainingPairs::sample(&Interactions::default(), 1, 0).is_err());
        assert!(TrainingPairs::sample(&log(), 0, 0).is_err());
    }
}
