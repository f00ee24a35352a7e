//! Mechanisms of the feedback loop (`dsrm loop`): what makes the data a recommender learns from next depend on
//! what it served, so that concentration can grow round over round (`docs/feedback-loop.md`). Background and
//! sources: `../shared/research/feedback-loops.md`.
//!
//! | setting | mechanism | file |
//! |---|---|---|
//! | `conformity` β | popularity-biased feedback (Mansoury et al., CIKM 2020): the *logged* reward is r + β·z_i, z_i the standardised log exposure of the item; the true reward is untouched | [`conformity`] |
//! | `drift` η | interest drift (T-RECS `drift`, RecSim user state): latent preferences move towards what was consumed, and the ground truth with them | [`drift`] |
//! | `satiation` σ, `satiation_decay` δ | satiation / boredom with repeated categories (CIRS, RecLab `boredom`): true rewards of a category fall with its recent share of the user's consumption | [`satiation`] |
//!
//! The fourth mechanism, the paper's popularity-aware abandonment (users leave after too many popular items),
//! is the environment's own rule (`EnvConfig`, presets `dsrm-hrl-paper*`); `abandonment` only states whether a
//! loop method keeps it (`None`: as the preset says; `false`: removed, for a static control; `true`: required).
//! Its popular set is the original data's, fixed over the rounds. Every strength is 0 by default: with all of
//! them 0 a [`Population`] leaves the ground truth and the logged rewards exactly as they are, and the parity
//! presets never use one.
//!
//! Between rounds the loop calls [`Population::consume`] with what each user consumed; the next round's
//! environment reads [`Population::truth`]. "True utility" is always measured against the truth of the round
//! (the users' current preferences); the logged reward is what the learner sees.

pub mod conformity;
pub mod drift;
pub mod satiation;

use crate::{RewardTable, SimError};
use serde::{Deserialize, Serialize};

/// The `[mechanisms]` table of a loop (and of one of its methods). Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mechanisms {
    /// β ≥ 0 of popularity-biased feedback: logged reward = true reward + β · z_i.
    pub conformity: f64,
    /// η in [0, 1] of interest drift: after each round a served user's latent preference p_u moves the share η
    /// of the way to the mean latent factor of the items it consumed, p_u ← (1 − η) p_u + η q̄.
    pub drift: f64,
    /// Rank of the factorisation (truncated SVD) of a dense ground truth, whose user factors are the latent
    /// preferences that drift (a low-rank truth, KuaiRand-Pure's, drifts its own factors).
    pub drift_rank: usize,
    /// σ in [0, 1] of satiation: a true reward is scaled by 1 − σ · S_u,c for the most-sated category c of the
    /// item.
    pub satiation: f64,
    /// δ in [0, 1): each round S_u,c ← δ · S_u,c + (1 − δ) · (the category's share of what u consumed in the
    /// round); a user served nothing in a round recovers, S ← δ · S.
    pub satiation_decay: f64,
    /// The environment's popularity-aware abandonment rule: `None` as the preset says, `false` removed, `true`
    /// required (an error with a preset that lacks it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abandonment: Option<bool>,
}

impl Default for Mechanisms {
    fn default() -> Self {
        Self { conformity: 0.0, drift: 0.0, drift_rank: 16, satiation: 0.0, satiation_decay: 0.5, abandonment: None }
    }
}

impl Mechanisms {
    /// Every mechanism off (the parity setting and the static control).
    pub fn off() -> Self {
        Self::default()
    }

    /// True when no mechanism of the users changes anything (abandonment is the environment's; see above).
    pub fn is_off(&self) -> bool {
        self.conformity == 0.0 && self.drift == 0.0 && self.satiation == 0.0
    }

    /// Applies `abandonment` to an environment's popularity rule; the error names the setting.
    pub fn apply_abandonment(&self, spec: &mut crate::EnvSpec) -> Result<(), SimError> {
        match self.abandonment {
            None => {}
            Some(false) => spec.popularity = None,
            Some(true) if spec.popularity.is_none() => {
                return Err(SimError::Invalid(
                    "mechanisms.abandonment = true, but the environment has no popularity-aware abandonment rule \
                     (use a preset that has it, e.g. `dsrm-hrl-paper`)"
                        .into(),
                ))
            }
            Some(true) => {}
        }
        Ok(())
    }

    /// Checks every strength; the error names the setting and its range.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |name: &str, v: f64, range: &str| {
            Err(SimError::Invalid(format!("mechanisms.{name} must be {range}, got {v}")))
        };
        if !(self.conformity.is_finite() && self.conformity >= 0.0) {
            return bad("conformity", self.conformity, "finite and >= 0");
        }
        if !(0.0..=1.0).contains(&self.drift) {
            return bad("drift", self.drift, "in [0, 1]");
        }
        if self.drift > 0.0 && self.drift_rank == 0 {
            return Err(SimError::Invalid("mechanisms.drift_rank must be >= 1 when drift > 0".into()));
        }
        if !(0.0..=1.0).contains(&self.satiation) {
            return bad("satiation", self.satiation, "in [0, 1]");
        }
        if !(0.0..1.0).contains(&self.satiation_decay) {
            return bad("satiation_decay", self.satiation_decay, "in [0, 1)");
        }
        Ok(())
    }
}

/// The simulated users of one (method, seed) loop as they change: the round-0 ground truth, their latent
/// preferences (with drift), their satiation (with satiation) and the current truth made from them.
#[derive(Debug, Clone)]
pub struct Population {
    mechanisms: Mechanisms,
    base: RewardTable,
    /// The truth's range at round 0: drifted dense values are clamped to it (a watch ratio stays a watch ratio).
    range: (f64, f64),
    latent: Option<drift::Latent>,
    satiation: Option<satiation::Satiation>,
    truth: RewardTable,
}

impl Population {
    /// The users of `truth` (round 0) under `mechanisms`; `item_tags[i]` are item i's categories (satiation).
    /// Drift on a dense truth factorises it here (`seed`: the SVD's start). Satiation needs a dense truth.
    pub fn new(
        truth: &RewardTable,
        item_tags: &[Vec<i32>],
        mechanisms: &Mechanisms,
        seed: u64,
    ) -> Result<Self, SimError> {
        mechanisms.validate()?;
        let latent = match mechanisms.drift > 0.0 {
            true => Some(drift::Latent::of(truth, mechanisms.drift_rank, seed)?),
            false => None,
        };
        let satiation = match mechanisms.satiation > 0.0 {
            true if matches!(truth, RewardTable::LowRank(_)) => {
                return Err(SimError::Invalid(
                    "mechanisms.satiation needs a dense ground truth (KuaiRec, Coat); this data set's truth is a \
                     low-rank completion evaluated on demand"
                        .into(),
                ))
            }
            true => Some(satiation::Satiation::new(truth.n_users(), item_tags)),
            false => None,
        };
        Ok(Self {
            mechanisms: mechanisms.clone(),
            base: truth.clone(),
            range: truth.range(),
            latent,
            satiation,
            truth: truth.clone(),
        })
    }

    /// The ground truth of the current round.
    pub fn truth(&self) -> &RewardTable {
        &self.truth
    }

    /// The settings.
    pub fn mechanisms(&self) -> &Mechanisms {
        &self.mechanisms
    }

    /// After a round: each `(user, items)` is one served episode's consumed items. Drift and satiation update
    /// and the truth is rebuilt from them; with neither on, nothing changes.
    pub fn consume<'e>(&mut self, episodes: impl IntoIterator<Item = (u32, &'e [u32])>) {
        if self.latent.is_none() && self.satiation.is_none() {
            return;
        }
        let mut consumed: Vec<Vec<u32>> = vec![Vec::new(); self.base.n_users()];
        for (user, items) in episodes {
            consumed[user as usize].extend_from_slice(items);
        }
        if let Some(latent) = &mut self.latent {
            latent.drift(&consumed, self.mechanisms.drift);
        }
        if let Some(s) = &mut self.satiation {
            s.update(&consumed, self.mechanisms.satiation_decay);
        }
        self.rebuild();
    }

    /// truth = clamp(base + drift shift) · satiation factor (dense); a low-rank truth takes the drifted factors.
    fn rebuild(&mut self) {
        match &self.base {
            RewardTable::LowRank(base) => {
                let mut table = base.clone();
                if let Some(latent) = &self.latent {
                    table.user_factors = latent.current_user_factors().to_vec();
                }
                self.truth = RewardTable::LowRank(table);
            }
            RewardTable::Dense { n_users, n_items, values } => {
                let (n_users, n_items) = (*n_users, *n_items);
                let mut out = values.clone();
                let (lo, hi) = self.range;
                for u in 0..n_users {
                    let row = &mut out[u * n_items..(u + 1) * n_items];
                    if let Some(latent) = &self.latent {
                        latent.add_shift(u, row);
                        row.iter_mut().for_each(|v| *v = v.clamp(lo, hi));
                    }
                    if let Some(s) = &self.satiation {
                        s.scale_row(u, self.mechanisms.satiation, row);
                    }
                }
                self.truth = RewardTable::Dense { n_users, n_items, values: out };
            }
        }
    }
}

#[cfg(test)]
mod tests;
