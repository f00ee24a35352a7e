//! Inverse-propensity weights for the user model of the IPS baseline (`docs/protocol.md` §4.3: "IPS is A2C
//! trained on a DeepFM-IPS user model").
//!
//! The logged exposure of an item is how often it appears in the training log; the anchors' IPS user model
//! (EasyRL4Rec `load_dataset_train_IPS`: `IPS_item = Counter(df_train['item_id'])`, weight `1 / max(1, count)`;
//! loss `pointneg_IPS` multiplies each positive row's squared error by it, negatives unweighted) learns
//! popular items' rows with proportionally less weight, so ŷ is no longer inflated by what the logging
//! policy happened to show often. The weights are the raw inverse counts, not normalised, as there.
//!
//! DORL-codes' own `run_worldModel_IPS.py` computes no propensities at the pinned commit (its `score` is the
//! zero exposure term), so its "DeepFM-IPS" equals the plain model; EasyRL4Rec's (same authors, later) is the
//! one implemented here.

use dsrm_models::Interactions;

/// Per logged row: 1 / (rows of its item in `train`).
pub fn inverse_item_frequency(train: &Interactions) -> Vec<f32> {
    inverse_item_frequency_in(train, train)
}

/// Per row of `rows`: 1 / (rows of its item in `log`), the whole log `rows` were taken from (an incremental
/// refit weighs its rows by the exposure of the whole log).
pub fn inverse_item_frequency_in(rows: &Interactions, log: &Interactions) -> Vec<f32> {
    let mut count = vec![0u64; log.n_items];
    for &i in &log.item {
        if let Some(c) = count.get_mut(i as usize) {
            *c += 1;
        }
    }
    rows.item.iter().map(|&i| 1.0 / count.get(i as usize).copied().unwrap_or(1).max(1) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_inverse_item_counts() {
        let log = Interactions {
            n_users: 2,
            n_items: 3,
            user: vec![0, 0, 1, 1],
            item: vec![0, 2, 0, 0],
            target: vec![1.0; 4],
        };
        let w = inverse_item_frequency(&log);
        assert_eq!(w, [1.0 / 3.0, 1.0, 1.0 / 3.0, 1.0 / 3.0]);
        // Part of the log is weighed by the whole log's counts, not by its own.
        let rows = Interactions { user: vec![1, 0], item: vec![0, 2], target: vec![1.0; 2], ..log.clone() };
        assert_eq!(inverse_item_frequency_in(&rows, &log), [1.0 / 3.0, 1.0]);
        assert_eq!(inverse_item_frequency(&rows), [1.0, 1.0]);
    }
}

#[cfg(test)]
mod loss_tests {
    use crate::DeepFm;
    use dsrm_nn::tch::Tensor;

    #[test]
    fn weights_scale_only_the_positive_terms() {
        let t = |v: &[f32]| Tensor::from_slice(v);
        let (y, lv, target, yn, lvn) =
            (t(&[1.0, 0.5]), t(&[0.0, -1.0]), t(&[2.0, 0.5]), t(&[0.3, 0.1]), t(&[0.2, 0.0]));
        let plain = DeepFm::pointneg_loss(&y, &lv, &target, &yn, &lvn).unwrap().double_value(&[]);
        let ones = DeepFm::weighted_pointneg_loss(&y, &lv, &target, &yn, &lvn, Some(&t(&[1.0, 1.0]))).unwrap();
        assert_eq!(ones.double_value(&[]), plain);
        let zero = DeepFm::weighted_pointneg_loss(&y, &lv, &target, &yn, &lvn, Some(&t(&[0.0, 0.0]))).unwrap();
        let neg_only = DeepFm::pointneg_loss(&t(&[]), &t(&[]), &t(&[]), &yn, &lvn).unwrap().double_value(&[]);
        assert!((zero.double_value(&[]) - neg_only).abs() < 1e-6);
    }
}
