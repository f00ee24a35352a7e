//! Continuing a user-model ensemble on a grown log: the feedback loop's incremental refit (`dsrm loop`'s
//! `[ensemble_refit] mode = "incremental"`; `docs/guide.md`, feedback loop).
//!
//! A loop round adds a few thousand served rows to a log of up to millions. Training DORL's five DeepFMs from
//! scratch on the whole log every round costs as much as the first fit (on full-size synthetic KuaiRec 6–8 min
//! per round and seed, measured for round 0 in `docs/benchmarks.md` §2; ten rounds and five seeds per method); platforms update such models
//! incrementally, and so does this refit:
//!
//! ```text
//! given  the previous round's ensemble (members θ_1..θ_n) and this round's log L = the previous log + new rows N
//! R      = N, then a uniform sample without replacement of min(|L|, ⌈replay · |N|⌉) rows of L
//! pairs  = R with neg_K negatives per row, drawn as in training but avoiding every (user, item) pair L holds
//! for each member m: continue θ_m on pairs for `epochs` passes (the training's loss, L2 and learning rate;
//!                    a fresh Adam, since the ensemble checkpoint keeps no optimiser moments)
//! then   the grid predictions, item embeddings and data identity of L, as after training from scratch
//! ```
//!
//! The replay rows keep the members anchored to the older log (a refit on N alone drifts towards the few users
//! served last). With the IPS user model the rows are weighed by their items' exposure in the whole of L. The
//! result records each refit (`UserModelEnsemble::refits`) and is fully determined by the previous ensemble,
//! L, N, the settings and the seed.

use crate::ensemble::{derive_seed, UserModelEnsemble};
use crate::pairs::TrainingPairs;
use crate::{invalid, Result, WorldError};
use dsrm_models::Interactions;
use dsrm_sim::World;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Settings of an incremental refit. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncrementalRefit {
    /// Passes over the refit's rows (new plus replayed). Default 1.
    pub epochs: usize,
    /// Replayed rows of the whole log per new row. Default 1 (as many old rows as new).
    pub replay: f64,
}

impl Default for IncrementalRefit {
    fn default() -> Self {
        Self { epochs: 1, replay: 1.0 }
    }
}

impl IncrementalRefit {
    /// Rejects settings that cannot refit.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(invalid("ensemble_refit.epochs must be at least 1"));
        }
        if !(self.replay.is_finite() && self.replay >= 0.0) {
            return Err(invalid(format!("ensemble_refit.replay = {}: must be finite and >= 0", self.replay)));
        }
        Ok(())
    }
}

/// What one refit did, kept in the ensemble's checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefitRecord {
    /// Fingerprint of the log the ensemble had been trained on before this refit.
    pub from_data: String,
    /// New rows (N) and replayed rows.
    pub new_rows: usize,
    pub replay_rows: usize,
    /// Passes, and the seed of the replay sample, negatives and shuffles.
    pub epochs: usize,
    pub seed: u64,
}

impl UserModelEnsemble {
    /// The ensemble saved at `previous` (trained on an earlier log of `world`), continued on `world`'s log by
    /// an incremental refit (module documentation); `new_rows` are the rows the log gained since. `progress(model,
    /// epoch, loss)` hears every pass of every member.
    ///
    /// Errors when `previous` is not an ensemble of `world`'s shape, `new_rows` has another shape than the log,
    /// or the settings are invalid; a member whose loss is not finite is [`WorldError::Diverged`].
    pub fn continue_on(
        previous: &Path,
        world: &World,
        new_rows: &Interactions,
        refit: &IncrementalRefit,
        seed: u64,
        progress: &mut dyn FnMut(usize, usize, f64),
    ) -> Result<Self> {
        refit.validate()?;
        let log = &world.train_full;
        if (new_rows.n_users, new_rows.n_items) != (log.n_users, log.n_items) {
            return Err(invalid(format!(
                "new rows of {} users x {} items, but the log is {} x {}",
                new_rows.n_users, new_rows.n_items, log.n_users, log.n_items
            )));
        }
        let mut ensemble = Self::read(previous, world)?;
        let from_data = ensemble.data().hash.clone();

        let n_new = new_rows.len();
        let n_replay = ((refit.replay * n_new as f64).ceil() as usize).min(log.len());
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, 0));
        let mut replayed = rand::seq::index::sample(&mut rng, log.len(), n_replay).into_vec();
        replayed.sort_unstable();
        let mut rows = new_rows.clone();
        for r in replayed {
            rows.user.push(log.user[r]);
            rows.item.push(log.item[r]);
            rows.target.push(log.target[r]);
        }

        let (mut models, mut history) = ensemble.take_members();
        if !rows.is_empty() {
            let mut pairs = TrainingPairs::sample_excluding(&rows, log, ensemble.neg_k(), derive_seed(seed, 1))?;
            if ensemble.config().ips {
                pairs.weight = crate::ips::inverse_item_frequency_in(&rows, log);
            }
            for (m, (model, losses)) in models.iter_mut().zip(history.iter_mut()).enumerate() {
                let done = losses.len();
                let more = model
                    .fit_more(&pairs, refit.epochs, derive_seed(seed, 2 + m as u64), &mut |e, loss| {
                        progress(m, done + e, loss)
                    })
                    .map_err(|e| match e {
                        WorldError::Diverged { epoch, .. } => WorldError::Diverged { model: m, epoch: done + epoch },
                        other => other,
                    })?;
                losses.extend(more);
            }
        }
        let record = RefitRecord { from_data, new_rows: n_new, replay_rows: n_replay, epochs: refit.epochs, seed };
        ensemble.continued(world, models, history, record)
    }
}
