//! Plain-Rust user models fitted on a training log: biased matrix factorisation, used to complete the
//! KuaiRand-Pure and Coat ground truths and as the oracle-free user model of the greedy baseline.
//! (Neural user/world models arrive with the `nn` crate.)

pub mod bod;
pub mod denoising_loss;
pub mod mf;
mod mf_file;
#[cfg(test)]
mod planted;
pub mod truncation;

pub use bod::{Bod, BodConfig};
pub use denoising_loss::DenoisingLoss;
pub use mf::{MatrixFactorization, MfConfig, MfError, MfLoss};

/// A training log in dense ids: one row per observed (user, item, target).
///
/// Builders map dataset ids to dense ids so that the environment's users are `0..n_env_users` and any
/// extra training-only users come after them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interactions {
    pub n_users: usize,
    pub n_items: usize,
    pub user: Vec<u32>,
    pub item: Vec<u32>,
    pub target: Vec<f64>,
}

impl Interactions {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.user.len()
    }
    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }
}
