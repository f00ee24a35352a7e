//! Biased matrix factorisation fitted by stochastic gradient descent (Koren, Bell & Volinsky 2009).
//!
//! The model predicts `link(μ + b_u + b_i + p_u · q_i)`:
//!
//! * `μ` is a fixed global offset: the mean target (squared loss) or the logit of the mean target
//!   (logistic loss), so an untrained model already predicts the base rate;
//! * `b_u`, `b_i` are learned user and item biases, `p_u`, `q_i` learned `dim`-dimensional factors;
//! * `link` is the identity ([`MfLoss::Squared`]) or the sigmoid ([`MfLoss::Logistic`], for 0/1 targets
//!   such as `is_click`, trained on the log-loss).
//!
//! It completes the KuaiRand-Pure and Coat ground truths and is the user model of the `mf-greedy`
//! baseline, so it has to be exactly reproducible: training is single-threaded, the row order of every
//! epoch is a seeded shuffle (ChaCha8), and the same data, config and seed give bit-identical factors.
//!
//! Speed: one epoch is one shuffle of a packed copy of the rows plus one sequential SGD pass, about
//! `O(rows · dim)`; the factor tables of the KuaiRec big matrix (7k users, 10k items, dim 32) fit in cache.

use crate::denoising_loss::DenoisingLoss;
use crate::truncation::truncation_threshold;
use crate::Interactions;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Hyper-parameters of [`MatrixFactorization::fit`]. Every field has a default, so a config file only
/// names what it changes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfConfig {
    /// Latent dimension of `p_u` and `q_i`. Default 32. 0 gives a biases-only model.
    pub dim: usize,
    /// Full passes over the training rows. Default 20.
    pub epochs: usize,
    /// SGD step size. Default 0.01.
    pub learning_rate: f64,
    /// L2 penalty on biases and factors, applied per update. Default 0.02.
    pub regularization: f64,
    /// Standard deviation of the Gaussian initialisation of the factors (biases start at 0). Default 0.1.
    pub init_std: f64,
    /// Training loss and output link. Default [`MfLoss::Squared`].
    pub loss: MfLoss,
    /// Seed of the initialisation and of the per-epoch shuffles. Default 0.
    pub seed: u64,
}

impl Default for MfConfig {
    fn default() -> Self {
        Self {
            dim: 32,
            epochs: 20,
            learning_rate: 0.01,
            regularization: 0.02,
            init_std: 0.1,
            loss: MfLoss::Squared,
            seed: 0,
        }
    }
}

/// Training loss, which also fixes the output link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MfLoss {
    /// Squared error, identity link: for real-valued targets (watch ratios, ratings).
    #[default]
    Squared,
    /// Log-loss, sigmoid link: for targets in [0, 1] (clicks); predictions lie in (0, 1).
    Logistic,
}

/// Why a model could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MfError {
    /// No rows, or a catalogue with no users or no items.
    #[error("cannot fit a matrix factorisation on empty data ({n_users} users, {n_items} items, {rows} rows)")]
    Empty { n_users: usize, n_items: usize, rows: usize },
    /// `user`, `item` and `target` have different lengths.
    #[error("interaction columns differ in length: {users} users, {items} items, {targets} targets")]
    LengthMismatch { users: usize, items: usize, targets: usize },
    /// A row names a user outside `0..n_users`.
    #[error("row {row}: user {user} is out of range (n_users = {n_users})")]
    UserOutOfRange { row: usize, user: u32, n_users: usize },
    /// A row names an item outside `0..n_items`.
    #[error("row {row}: item {item} is out of range (n_items = {n_items})")]
    ItemOutOfRange { row: usize, item: u32, n_items: usize },
    /// A target is NaN or infinite.
    #[error("row {row}: target {value} is not finite")]
    NonFiniteTarget { row: usize, value: f64 },
    /// The logistic loss needs targets in [0, 1].
    #[error("row {row}: target {value} is outside [0, 1], which the logistic loss requires")]
    TargetOutOfUnitRange { row: usize, value: f64 },
    /// A hyper-parameter is out of its domain.
    #[error("invalid MF config: {0}")]
    InvalidConfig(String),
    /// Training blew up (learning rate too large for the data).
    #[error("training diverged in epoch {epoch} (non-finite loss); lower the learning rate")]
    Diverged { epoch: usize },
    /// Bytes that are not a model written by `MatrixFactorization::to_bytes`.
    #[error("not a saved matrix factorisation: {0}")]
    Corrupt(String),
}

/// A fitted biased matrix factorisation. Factors are stored row-major: user `u`'s factors are
/// `user_factors[u * dim .. (u + 1) * dim]`.
///
/// Users and items with no training row keep zero factors and a zero bias, so they predict the global
/// offset (unseen user: `μ + b_i`, the item's popularity-like baseline) instead of random noise.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixFactorization {
    pub(crate) loss: MfLoss,
    pub(crate) dim: usize,
    pub(crate) n_users: usize,
    pub(crate) n_items: usize,
    pub(crate) global_mean: f64,
    pub(crate) user_bias: Vec<f64>,
    pub(crate) item_bias: Vec<f64>,
    pub(crate) user_factors: Vec<f64>,
    pub(crate) item_factors: Vec<f64>,
    pub(crate) history: Vec<f64>,
}

/// One training row, packed so the per-epoch shuffle moves 16 bytes and the SGD pass reads sequentially.
#[derive(Clone, Copy)]
pub(crate) struct Row {
    pub(crate) user: u32,
    pub(crate) item: u32,
    pub(crate) target: f64,
}

impl MatrixFactorization {
    /// Fit on `data` with SGD: each epoch shuffles the rows (seeded) and takes one step per row.
    ///
    /// Errors on empty data, ids out of range, non-finite targets (or targets outside [0, 1] for the
    /// logistic loss), invalid hyper-parameters, and divergence.
    pub fn fit(data: &Interactions, cfg: &MfConfig) -> Result<Self, MfError> {
        Self::fit_with(data, cfg, None)
    }

    /// [`fit`](Self::fit) with a denoising loss (T-CE or R-CE, `crate::denoising_loss`) on 0/1 targets: the
    /// config's loss must be [`MfLoss::Logistic`]. T-CE's rows sit an epoch out when their loss at the start
    /// of the epoch is among the largest ε(e); R-CE weighs each row's gradient by ω.
    pub fn fit_denoised(data: &Interactions, cfg: &MfConfig, denoising: &DenoisingLoss) -> Result<Self, MfError> {
        if cfg.loss != MfLoss::Logistic {
            return Err(MfError::InvalidConfig("a denoising loss needs loss = \"logistic\" (0/1 targets)".into()));
        }
        if let Some(problem) = denoising.problems().into_iter().next() {
            return Err(MfError::InvalidConfig(problem));
        }
        Self::fit_with(data, cfg, Some(denoising))
    }

    fn fit_with(data: &Interactions, cfg: &MfConfig, denoising: Option<&DenoisingLoss>) -> Result<Self, MfError> {
        validate_config(cfg)?;
        let mut rows = validate_and_pack(data, cfg.loss)?;
        let (n_users, n_items, dim) = (data.n_users, data.n_items, cfg.dim);
        let (init, mut rng) = Self::initialised(&rows, n_users, n_items, cfg)?;
        let Self { global_mean, mut user_bias, mut item_bias, mut user_factors, mut item_factors, .. } = init;

        // SGD epochs.
        let (lr, reg) = (cfg.learning_rate, cfg.regularization);
        let mut history = Vec::with_capacity(cfg.epochs);
        for epoch in 0..cfg.epochs {
            rows.shuffle(&mut rng);
            // T-CE: every row's loss under the model as the epoch starts, and the largest one kept.
            let truncation = match denoising {
                Some(d) if d.drop_rate_at(epoch) > 0.0 => {
                    let losses: Vec<f64> = rows
                        .iter()
                        .map(|r| {
                            let (u, i) = (r.user as usize, r.item as usize);
                            let (pu, qi) =
                                (&user_factors[u * dim..(u + 1) * dim], &item_factors[i * dim..(i + 1) * dim]);
                            log_loss(r.target, sigmoid(global_mean + user_bias[u] + item_bias[i] + dot(pu, qi)))
                        })
                        .collect();
                    let threshold = truncation_threshold(&losses, d.drop_rate_at(epoch));
                    Some((losses, threshold))
                }
                _ => None,
            };
            let mut loss_sum = 0.0;
            let mut passed = 0usize;
            for (k, row) in rows.iter().enumerate() {
                if truncation.as_ref().is_some_and(|(losses, threshold)| losses[k] > *threshold) {
                    continue;
                }
                passed += 1;
                let (u, i) = (row.user as usize, row.item as usize);
                let pu = &mut user_factors[u * dim..(u + 1) * dim];
                let qi = &mut item_factors[i * dim..(i + 1) * dim];
                let z = global_mean + user_bias[u] + item_bias[i] + dot(pu, qi);
                // For both losses the negative gradient w.r.t. z is (target - prediction).
                let err = match cfg.loss {
                    MfLoss::Squared => {
                        let e = row.target - z;
                        loss_sum += e * e;
                        e
                    }
                    MfLoss::Logistic => {
                        let p = sigmoid(z);
                        loss_sum += log_loss(row.target, p);
                        match denoising {
                            Some(d) => d.weight(row.target, p) * (row.target - p),
                            None => row.target - p,
                        }
                    }
                };
                user_bias[u] += lr * (err - reg * user_bias[u]);
                item_bias[i] += lr * (err - reg * item_bias[i]);
                for (p, q) in pu.iter_mut().zip(qi.iter_mut()) {
                    let (p0, q0) = (*p, *q);
                    *p += lr * (err * q0 - reg * p0);
                    *q += lr * (err * p0 - reg * q0);
                }
            }
            // Mean loss seen during the pass (predictions taken just before each row's update).
            let epoch_loss = loss_sum / passed.max(1) as f64;
            if !epoch_loss.is_finite() {
                return Err(MfError::Diverged { epoch });
            }
            history.push(epoch_loss);
        }

        let mut model = Self {
            loss: cfg.loss,
            dim,
            n_users,
            n_items,
            global_mean,
            user_bias,
            item_bias,
            user_factors,
            item_factors,
            history,
        };
        // Entities never seen in training keep the neutral zero parameters, not their random init.
        model.zero_unseen_in(&rows);
        Ok(model)
    }

    /// The untrained model of [`fit`](Self::fit) on `rows` and the generator that initialised it (seeded with
    /// `cfg.seed`; the epochs' shuffles continue from it): the global offset is the base rate in link space,
    /// biases are 0, factors N(0, init_std²), users first then items.
    pub(crate) fn initialised(
        rows: &[Row],
        n_users: usize,
        n_items: usize,
        cfg: &MfConfig,
    ) -> Result<(Self, ChaCha8Rng), MfError> {
        let dim = cfg.dim;
        let mean = rows.iter().map(|r| r.target).sum::<f64>() / rows.len() as f64;
        let global_mean = match cfg.loss {
            MfLoss::Squared => mean,
            MfLoss::Logistic => logit(mean.clamp(1e-6, 1.0 - 1e-6)),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let normal = Normal::new(0.0, cfg.init_std).map_err(|e| MfError::InvalidConfig(e.to_string()))?;
        let user_factors: Vec<f64> = (0..n_users * dim).map(|_| normal.sample(&mut rng)).collect();
        let item_factors: Vec<f64> = (0..n_items * dim).map(|_| normal.sample(&mut rng)).collect();
        let model = Self {
            loss: cfg.loss,
            dim,
            n_users,
            n_items,
            global_mean,
            user_bias: vec![0.0; n_users],
            item_bias: vec![0.0; n_items],
            user_factors,
            item_factors,
            history: Vec::with_capacity(cfg.epochs),
        };
        Ok((model, rng))
    }

    /// Entities never seen in `rows` get the neutral zero factors, not their random initialisation.
    pub(crate) fn zero_unseen_in(&mut self, rows: &[Row]) {
        let mut user_seen = vec![false; self.n_users];
        let mut item_seen = vec![false; self.n_items];
        for row in rows {
            user_seen[row.user as usize] = true;
            item_seen[row.item as usize] = true;
        }
        zero_unseen(&mut self.user_factors, &user_seen, self.dim);
        zero_unseen(&mut self.item_factors, &item_seen, self.dim);
    }

    /// Predicted target of `(user, item)`: a value on the target scale (in (0, 1) for the logistic loss).
    ///
    /// # Panics
    /// If `user >= n_users()` or `item >= n_items()`.
    #[inline]
    pub fn predict(&self, user: u32, item: u32) -> f64 {
        self.link(self.predict_link(user, item))
    }

    /// The prediction before the output link, `μ + b_u + b_i + p_u · q_i` (equal to [`Self::predict`]
    /// for the squared loss, the logit for the logistic loss).
    ///
    /// # Panics
    /// If `user >= n_users()` or `item >= n_items()`.
    #[inline]
    pub fn predict_link(&self, user: u32, item: u32) -> f64 {
        let (u, i) = (user as usize, item as usize);
        self.global_mean + self.user_bias[u] + self.item_bias[i] + dot(self.user_factors(u), self.item_factors(i))
    }

    /// Predicted targets of `user` for every item, written into `out` (no allocation): what a greedy
    /// recommender ranks.
    ///
    /// # Panics
    /// If `user >= n_users()` or `out.len() != n_items()`.
    pub fn score_items(&self, user: u32, out: &mut [f64]) {
        assert_eq!(out.len(), self.n_items, "score_items: output has {} slots for {} items", out.len(), self.n_items);
        let u = user as usize;
        let pu = self.user_factors(u);
        let base = self.global_mean + self.user_bias[u];
        let items = self.item_factors.chunks_exact(self.dim.max(1));
        if self.dim == 0 {
            for (o, &bi) in out.iter_mut().zip(&self.item_bias) {
                *o = self.link(base + bi);
            }
            return;
        }
        for ((o, &bi), qi) in out.iter_mut().zip(&self.item_bias).zip(items) {
            *o = self.link(base + bi + dot(pu, qi));
        }
    }

    /// Root mean squared error of [`Self::predict`] against `data`'s targets (for the logistic loss, the
    /// root Brier score): held-out evaluation and sanity checks.
    pub fn rmse(&self, data: &Interactions) -> Result<f64, MfError> {
        let rows = validate_and_pack_for(data, self.n_users, self.n_items)?;
        let sse: f64 = rows
            .iter()
            .map(|r| {
                let e = r.target - self.predict(r.user, r.item);
                e * e
            })
            .sum();
        Ok((sse / rows.len() as f64).sqrt())
    }

    /// Number of users the model was fitted for (`Interactions::n_users`).
    pub fn n_users(&self) -> usize {
        self.n_users
    }
    /// Number of items the model was fitted for (`Interactions::n_items`).
    pub fn n_items(&self) -> usize {
        self.n_items
    }
    /// Latent dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// The loss the model was trained with (it fixes the output link).
    pub fn loss(&self) -> MfLoss {
        self.loss
    }
    /// The fixed global offset `μ`, in link space: the mean training target (squared loss) or its logit
    /// (logistic loss).
    pub fn global_mean(&self) -> f64 {
        self.global_mean
    }
    /// User biases `b_u`, indexed by dense user id.
    pub fn user_biases(&self) -> &[f64] {
        &self.user_bias
    }
    /// Item biases `b_i`, indexed by dense item id.
    pub fn item_biases(&self) -> &[f64] {
        &self.item_bias
    }
    /// Factors `p_u` of user `u` (`dim` values).
    ///
    /// # Panics
    /// If `u >= n_users()`.
    pub fn user_factors(&self, u: usize) -> &[f64] {
        &self.user_factors[u * self.dim..(u + 1) * self.dim]
    }
    /// Factors `q_i` of item `i` (`dim` values).
    ///
    /// # Panics
    /// If `i >= n_items()`.
    pub fn item_factors(&self, i: usize) -> &[f64] {
        &self.item_factors[i * self.dim..(i + 1) * self.dim]
    }
    /// Mean training loss of each epoch (squared error, or log-loss), measured during the pass with the
    /// prediction taken just before each row's update. Its last value approximates the training loss.
    pub fn history(&self) -> &[f64] {
        &self.history
    }

    #[inline]
    fn link(&self, z: f64) -> f64 {
        match self.loss {
            MfLoss::Squared => z,
            MfLoss::Logistic => sigmoid(z),
        }
    }
}

pub(crate) fn validate_config(cfg: &MfConfig) -> Result<(), MfError> {
    let bad = |what: &str, v: f64| MfError::InvalidConfig(format!("{what} = {v}"));
    if !(cfg.learning_rate.is_finite() && cfg.learning_rate > 0.0) {
        return Err(bad("learning_rate must be finite and > 0, got", cfg.learning_rate));
    }
    if !(cfg.regularization.is_finite() && cfg.regularization >= 0.0) {
        return Err(bad("regularization must be finite and >= 0, got", cfg.regularization));
    }
    if !(cfg.init_std.is_finite() && cfg.init_std >= 0.0) {
        return Err(bad("init_std must be finite and >= 0, got", cfg.init_std));
    }
    Ok(())
}

/// Check the training data and copy it into packed rows.
pub(crate) fn validate_and_pack(data: &Interactions, loss: MfLoss) -> Result<Vec<Row>, MfError> {
    let rows = validate_and_pack_for(data, data.n_users, data.n_items)?;
    if loss == MfLoss::Logistic {
        if let Some((row, r)) = rows.iter().enumerate().find(|(_, r)| !(0.0..=1.0).contains(&r.target)) {
            return Err(MfError::TargetOutOfUnitRange { row, value: r.target });
        }
    }
    Ok(rows)
}

fn validate_and_pack_for(data: &Interactions, n_users: usize, n_items: usize) -> Result<Vec<Row>, MfError> {
    let (users, items, targets) = (data.user.len(), data.item.len(), data.target.len());
    if users != items || users != targets {
        return Err(MfError::LengthMismatch { users, items, targets });
    }
    if users == 0 || n_users == 0 || n_items == 0 {
        return Err(MfError::Empty { n_users, n_items, rows: users });
    }
    let mut rows = Vec::with_capacity(users);
    for (row, ((&user, &item), &target)) in data.user.iter().zip(&data.item).zip(&data.target).enumerate() {
        if user as usize >= n_users {
            return Err(MfError::UserOutOfRange { row, user, n_users });
        }
        if item as usize >= n_items {
            return Err(MfError::ItemOutOfRange { row, item, n_items });
        }
        if !target.is_finite() {
            return Err(MfError::NonFiniteTarget { row, value: target });
        }
        rows.push(Row { user, item, target });
    }
    Ok(rows)
}

fn zero_unseen(factors: &mut [f64], seen: &[bool], dim: usize) {
    if dim == 0 {
        return;
    }
    for (f, _) in factors.chunks_exact_mut(dim).zip(seen).filter(|(_, &s)| !s) {
        f.fill(0.0);
    }
}

/// Dot product with four independent accumulators: a single running sum would serialise on the
/// floating-point add latency, which dominates the SGD step at dim 32. The summation order is fixed, so
/// results stay deterministic.
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    let mut acc = [0.0f64; 4];
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

#[inline]
pub(crate) fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

pub(crate) fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// Log-loss of prediction `p` for a target in [0, 1], with `p` kept away from 0 and 1.
#[inline]
pub(crate) fn log_loss(target: f64, p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    -(target * p.ln() + (1.0 - target) * (1.0 - p).ln())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planted::{noisy_clicks, planted};
    use rand::Rng;

    #[test]
    fn denoising_losses_fit_the_clean_labels_better_than_plain_log_loss() {
        let (data, flipped, clean) = noisy_clicks(0.2, 3);
        let cfg = crate::planted::noisy_clicks_mf();
        // Accuracy against the clean labels, over every cell, of the model's 0.5 cut.
        let accuracy = |mf: &MatrixFactorization| {
            let right =
                (0..data.len()).filter(|&k| (mf.predict(data.user[k], data.item[k]) > 0.5) == (clean[k] > 0.5)).count();
            right as f64 / data.len() as f64
        };
        let plain = MatrixFactorization::fit(&data, &cfg).unwrap();
        let tce = MatrixFactorization::fit_denoised(&data, &cfg, &DenoisingLoss::truncated()).unwrap();
        let rce = MatrixFactorization::fit_denoised(&data, &cfg, &DenoisingLoss::Reweighted { beta: 1.0 }).unwrap();
        let (a_plain, a_tce, a_rce) = (accuracy(&plain), accuracy(&tce), accuracy(&rce));
        println!("clean-label accuracy: plain {a_plain:.3}, T-CE {a_tce:.3}, R-CE {a_rce:.3}");
        assert!(a_tce > a_plain && a_rce > a_plain, "plain {a_plain}, T-CE {a_tce}, R-CE {a_rce}");
        // The flipped cells are the ones T-CE's model finds hardest to believe.
        let loss = |k: usize| log_loss(data.target[k], tce.predict(data.user[k], data.item[k]));
        let mean = |want: bool| {
            let ks: Vec<usize> = (0..data.len()).filter(|&k| flipped[k] == want).collect();
            ks.iter().map(|&k| loss(k)).sum::<f64>() / ks.len() as f64
        };
        assert!(mean(true) > 2.0 * mean(false), "flipped {} vs clean {}", mean(true), mean(false));
        // Deterministic, and refused on real-valued targets.
        assert_eq!(tce, MatrixFactorization::fit_denoised(&data, &cfg, &DenoisingLoss::truncated()).unwrap());
        let squared = MfConfig { loss: MfLoss::Squared, ..cfg };
        assert!(MatrixFactorization::fit_denoised(&data, &squared, &DenoisingLoss::truncated()).is_err());
    }

    fn tiny() -> Interactions {
        Interactions { n_users: 2, n_items: 2, user: vec![0, 1], item: vec![1, 0], target: vec![1.0, 0.0] }
    }

    #[test]
    fn recovers_planted_low_rank_matrix() {
        let (train, test, _) = planted(60, 50, 0.7, 1);
        let cfg = MfConfig { dim: 4, epochs: 200, learning_rate: 0.02, regularization: 0.005, ..MfConfig::default() };
        let mf = MatrixFactorization::fit(&train, &cfg).unwrap();
        let test_rmse = mf.rmse(&test).unwrap();
        // Predicting the mean would give an RMSE of about 0.5 here.
        let spread = {
            let m = test.target.iter().sum::<f64>() / test.len() as f64;
            (test.target.iter().map(|t| (t - m).powi(2)).sum::<f64>() / test.len() as f64).sqrt()
        };
        assert!(test_rmse < 0.1 * spread.max(0.1) + 0.05, "held-out RMSE {test_rmse} vs spread {spread}");
        let h = mf.history();
        assert_eq!(h.len(), 200);
        assert!(h[199] < h[0] / 10.0, "training loss should fall: {} -> {}", h[0], h[199]);
    }

    #[test]
    fn same_seed_same_model_other_seed_differs() {
        let (train, _, _) = planted(20, 15, 0.8, 2);
        let cfg = MfConfig { epochs: 5, dim: 3, ..MfConfig::default() };
        let a = MatrixFactorization::fit(&train, &cfg).unwrap();
        let b = MatrixFactorization::fit(&train, &cfg).unwrap();
        assert_eq!(a, b);
        let c = MatrixFactorization::fit(&train, &MfConfig { seed: 1, ..cfg }).unwrap();
        assert_ne!(a.predict(3, 4), c.predict(3, 4));
    }

    #[test]
    fn logistic_outputs_are_probabilities_and_learn_the_clicks() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (n_users, n_items) = (30, 20);
        let mut data = Interactions { n_users, n_items, ..Default::default() };
        for a in 0..n_users {
            for b in 0..n_items {
                // Users click even items more often.
                let p = if b % 2 == 0 { 0.9 } else { 0.1 };
                data.user.push(a as u32);
                data.item.push(b as u32);
                data.target.push(f64::from(u8::from(rng.gen::<f64>() < p)));
            }
        }
        let cfg = MfConfig { loss: MfLoss::Logistic, epochs: 50, learning_rate: 0.05, ..MfConfig::default() };
        let mf = MatrixFactorization::fit(&data, &cfg).unwrap();
        let mut scores = vec![0.0; n_items];
        let mut mean = vec![0.0; n_items];
        for a in 0..n_users as u32 {
            mf.score_items(a, &mut scores);
            assert!(scores.iter().all(|&p| p > 0.0 && p < 1.0));
            mean.iter_mut().zip(&scores).for_each(|(m, s)| *m += s / n_users as f64);
        }
        for (b, &m) in mean.iter().enumerate() {
            assert!(if b % 2 == 0 { m > 0.75 } else { m < 0.25 }, "item {b}: mean predicted click {m}");
        }
        assert!(mf.history().last().unwrap() < &mf.history()[0]);
    }

    #[test]
    fn score_items_matches_predict_and_accessors_compose() {
        let (train, _, _) = planted(10, 12, 0.9, 4);
        let mf = MatrixFactorization::fit(&train, &MfConfig { dim: 5, epochs: 3, ..MfConfig::default() }).unwrap();
        let mut out = vec![0.0; mf.n_items()];
        mf.score_items(7, &mut out);
        for (i, &s) in out.iter().enumerate() {
            assert!((s - mf.predict(7, i as u32)).abs() < 1e-12);
            let manual = mf.global_mean()
                + mf.user_biases()[7]
                + mf.item_biases()[i]
                + dot(mf.user_factors(7), mf.item_factors(i));
            assert!((s - manual).abs() < 1e-12);
        }
        assert_eq!((mf.n_users(), mf.n_items(), mf.dim()), (10, 12, 5));
    }

    #[test]
    fn biases_only_model_and_unseen_entities() {
        // User 2 and item 2 have no rows: they predict from the offset and the other bias only.
        let data = Interactions {
            n_users: 3,
            n_items: 3,
            user: vec![0, 0, 1, 1],
            item: vec![0, 1, 0, 1],
            target: vec![1.0, 2.0, 1.0, 2.0],
        };
        let mf = MatrixFactorization::fit(&data, &MfConfig { epochs: 30, ..MfConfig::default() }).unwrap();
        assert!(mf.user_factors(2).iter().all(|&x| x == 0.0));
        assert!(mf.item_factors(2).iter().all(|&x| x == 0.0));
        assert_eq!(mf.predict(2, 2), mf.global_mean());
        let b = MatrixFactorization::fit(&data, &MfConfig { dim: 0, epochs: 30, ..MfConfig::default() }).unwrap();
        let mut out = vec![0.0; 3];
        b.score_items(0, &mut out);
        assert!(out[1] > out[0]);
    }

    #[test]
    fn error_cases() {
        let cfg = MfConfig::default();
        let fit = |d: &Interactions| MatrixFactorization::fit(d, &cfg).unwrap_err();
        assert!(matches!(fit(&Interactions::default()), MfError::Empty { .. }));
        assert!(matches!(fit(&Interactions { n_users: 2, n_items: 2, ..Default::default() }), MfError::Empty { .. }));
        let mut d = tiny();
        d.user[1] = 2;
        assert_eq!(fit(&d), MfError::UserOutOfRange { row: 1, user: 2, n_users: 2 });
        let mut d = tiny();
        d.item[0] = 9;
        assert_eq!(fit(&d), MfError::ItemOutOfRange { row: 0, item: 9, n_items: 2 });
        let mut d = tiny();
        d.target[1] = f64::NAN;
        assert!(matches!(fit(&d), MfError::NonFiniteTarget { row: 1, .. }));
        let mut d = tiny();
        d.target.pop();
        assert!(matches!(fit(&d), MfError::LengthMismatch { .. }));
        let mut d = tiny();
        d.target[0] = 2.0;
        let logistic = MfConfig { loss: MfLoss::Logistic, ..MfConfig::default() };
        assert!(matches!(MatrixFactorization::fit(&d, &logistic), Err(MfError::TargetOutOfUnitRange { row: 0, .. })));
        for bad in [
            MfConfig { learning_rate: 0.0, ..MfConfig::default() },
            MfConfig { regularization: f64::NAN, ..MfConfig::default() },
            MfConfig { init_std: -1.0, ..MfConfig::default() },
        ] {
            assert!(matches!(MatrixFactorization::fit(&tiny(), &bad), Err(MfError::InvalidConfig(_))));
        }
        let huge = MfConfig { learning_rate: 1e3, epochs: 50, ..MfConfig::default() };
        let (train, _, _) = planted(10, 10, 1.0, 5);
        assert!(matches!(MatrixFactorization::fit(&train, &huge), Err(MfError::Diverged { .. })));
    }

    #[test]
    fn config_serde_defaults_and_unknown_fields() {
        let cfg: MfConfig = serde_json::from_str(r#"{"dim": 8, "learning_rate": 0.05, "loss": "logistic"}"#).unwrap();
        assert_eq!(cfg, MfConfig { dim: 8, learning_rate: 0.05, loss: MfLoss::Logistic, ..MfConfig::default() });
        assert!(serde_json::from_str::<MfConfig>(r#"{"dims": 8}"#).is_err());
    }
}
