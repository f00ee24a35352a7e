//! A cheap training reward: a plain biased matrix factorisation fitted on the training log, r = max(0, ŷ −
//! min ŷ) (EasyRL4Rec's `base` simulated environment on an MF instead of a DeepFM). It needs no libtorch
//! and trains in seconds, so tests and quick runs can exercise the whole model-based pipeline.

use crate::Result;
use dsrm_models::{MatrixFactorization, MfConfig};
use dsrm_nn::tch::Tensor;
use dsrm_sim::{RewardModel, World};

/// `max(0, ŷ[u, i] − min ŷ)` with ŷ from a fitted MF; min and max taken over the environment grid.
#[derive(Debug, Clone)]
pub struct MfReward {
    mf: MatrixFactorization,
    min: f64,
    max: f64,
    n_env_items: usize,
}

impl MfReward {
    /// Fits the MF on `world.train_full` with `cfg` as given (pick `MfLoss::Logistic` for 0/1 targets such as
    /// KuaiRand's clicks) and scans the environment grid for the range.
    pub fn fit(world: &World, cfg: &MfConfig) -> Result<Self> {
        let mf = MatrixFactorization::fit(&world.train_full, cfg)?;
        Self::from_model(mf, world.spec.n_users(), world.spec.n_items())
    }

    /// Wraps an already fitted model whose users `0..n_env_users` and items `0..n_env_items` form the
    /// environment grid.
    pub fn from_model(mf: MatrixFactorization, n_env_users: usize, n_env_items: usize) -> Result<Self> {
        if n_env_users == 0 || n_env_users > mf.n_users() || n_env_items == 0 || n_env_items > mf.n_items() {
            return Err(crate::invalid(format!(
                "environment {n_env_users} x {n_env_items} is empty or exceeds the model's {} x {}",
                mf.n_users(),
                mf.n_items()
            )));
        }
        let mut row = vec![0.0; mf.n_items()];
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for u in 0..n_env_users as u32 {
            mf.score_items(u, &mut row);
            for &v in &row[..n_env_items] {
                min = min.min(v);
                max = max.max(v);
            }
        }
        Ok(Self { mf, min, max, n_env_items })
    }

    /// The fitted model.
    pub fn model(&self) -> &MatrixFactorization {
        &self.mf
    }

    /// `[n_env_items, dim + 1]` f32: each catalogue item's latent factors ⊕ its bias, the MF counterpart of the
    /// DeepFM ensemble's item table, for state trackers that read pretrained item embeddings (the DSRM stage).
    pub fn item_embeddings(&self) -> Result<Tensor> {
        let width = self.mf.dim() + 1;
        let mut rows = Vec::with_capacity(self.n_env_items * width);
        for i in 0..self.n_env_items {
            rows.extend(self.mf.item_factors(i).iter().map(|&x| x as f32));
            rows.push(self.mf.item_biases()[i] as f32);
        }
        Ok(Tensor::f_from_slice(&rows)?.f_reshape([self.n_env_items as i64, width as i64])?)
    }
}

impl RewardModel for MfReward {
    fn reward(&self, user: u32, item: u32, _history: &[u32]) -> f64 {
        (self.mf.predict(user, item) - self.min).max(0.0)
    }

    fn range(&self) -> (f64, f64) {
        (0.0, self.max - self.min)
    }

    fn describe(&self) -> String {
        format!("plain MF world model (dim {}, r = max(0, ŷ − min ŷ))", self.mf.dim())
    }
}
