//! One round's measures (`rounds.jsonl`, the loop's issue item 3): concentration of this round's exposure and
//! of the accumulated log, homogenisation of what users consumed, and utility against the users' current
//! preferences beside the utility the learner was shown.
//!
//! ```text
//! gini             Gini of this round's exposure over the catalogue                  (the evaluation's)
//! log_gini         Gini of rows per catalogue item in log_{r+1} (the log after this round joined it)
//! long_tail_share, coverage, ad, r_tra, length                                     (this round's serving)
//! mean_popularity  mean novelty popularity pop(i) of the recommended items         (original data's pop)
//! homogenisation   mean pairwise Jaccard of the users' consumed sets this round     (dsrm_metrics)
//! true_utility     Σ true rewards / Σ steps        logged_utility   Σ logged rewards / Σ steps
//! ```

use super::Served;
use dsrm_eval::MetricInputs;
use dsrm_metrics::MetricSet;
use dsrm_report::RoundRecord;
use dsrm_sim::mechanisms::conformity::log_counts;
use dsrm_sim::World;
use std::collections::BTreeMap;

/// The record of round `round`: `world` is the round's (before serving), `next` the one whose log has the
/// round's serving, `metrics` the deployment's.
pub(super) fn round_record(
    world: &World,
    next: &World,
    inputs: &MetricInputs,
    metrics: &MetricSet,
    served: &[Served],
    seed: u64,
    round: usize,
) -> RoundRecord {
    let n_items = world.spec.n_items();
    let mut shown = vec![false; n_items];
    served.iter().flat_map(|s| &s.items).for_each(|&i| shown[i as usize] = true);
    let steps: usize = served.iter().map(|s| s.items.len()).sum();
    let per_step = |total: f64| if steps == 0 { 0.0 } else { total / steps as f64 };
    let popularity: f64 = served.iter().flat_map(|s| &s.items).map(|&i| inputs.popularity[i as usize]).sum();
    let mut consumed: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    served.iter().for_each(|s| consumed.entry(s.user).or_default().extend_from_slice(&s.items));
    let sets: Vec<Vec<u32>> = consumed.into_values().collect();
    RoundRecord {
        round,
        seed,
        gini: metrics.gini,
        long_tail_share: metrics.long_tail_share,
        coverage: shown.iter().filter(|&&s| s).count() as f64 / n_items.max(1) as f64,
        r_tra: metrics.r_tra,
        length: metrics.length,
        log_rows: world.train.len(),
        deployed_epoch: None,
        log_gini: Some(dsrm_metrics::exposure::gini(&log_counts(&next.train.item, n_items))),
        mean_popularity: Some(per_step(popularity)),
        ad: Some(metrics.ad_share),
        homogenisation: Some(dsrm_metrics::homogenisation::mean_pairwise_jaccard(&sets)),
        true_utility: Some(per_step(served.iter().flat_map(|s| &s.rewards).sum())),
        logged_utility: Some(per_step(served.iter().flat_map(|s| s.logged()).sum())),
    }
}
