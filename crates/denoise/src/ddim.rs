//! `ddim`: a k-step deterministic DDIM sampler (Song, Meng, Ermon, ICLR 2021, η = 0) on a trained DSRM: the
//! same network and forward level, k ≪ T' network evaluations instead of T', for when purification has to be
//! cheaper than the full chain (the secondary summaries name diffusion inference cost as DSRM-HRL's limitation).
//!
//! ```text
//! x ← the DDPM's start: √ᾱ_{T'} o_t, or pure noise (0) at T (+ the DDPM's forward noise, if any)
//! τ_1 < … < τ_k: k levels evenly spaced in [1, T'] (τ_k = T', τ_1 = 1), τ_0 = 0
//! for j = k, …, 1:
//!     x̂_0 = x̂_0(x, τ_j);   ε̂ = (x − √ᾱ_{τ_j} x̂_0) / √(1−ᾱ_{τ_j})
//!     x   ← √ᾱ_{τ_{j−1}} x̂_0 + √(1−ᾱ_{τ_{j−1}}) ε̂        (no noise: η = 0)
//! ŝ_t = x                                                (the last jump, to τ_0 = 0, returns x̂_0)
//! ```
//!
//! With `diffrec_compat` the levels span [1, T] instead (the DDPM's reverse range). It follows the DDPM's
//! (target, condition) contract as it is: same network, same condition c, same start; only the sampler differs.

use crate::chain::{CompiledChain, Step};
use crate::ddpm::{Ddpm, DdpmConfig};
use crate::{check_states, meta_kind, DenoiseError, Denoiser, Result};
use dsrm_nn::tch::{self, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Settings of the DDIM sampler: the DSRM it runs on, and k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DdimConfig {
    /// The DSRM to train (or whose checkpoint to load) and sample from.
    pub ddpm: DdpmConfig,
    /// k, the number of network evaluations (default 2; capped at T'). Sweep {1, 2, 3, 5}.
    pub k: usize,
}

impl Default for DdimConfig {
    fn default() -> Self {
        Self { ddpm: DdpmConfig::default(), k: 2 }
    }
}

/// k levels evenly spaced in [1, `from`], ascending, ending at `from` (k capped at `from`; k = 1 gives
/// `[from]`). Rounded to the nearest level; the spacing is at least 1, so they are distinct.
pub fn ddim_timesteps(from: usize, k: usize) -> Vec<usize> {
    let k = k.min(from);
    match k {
        0 => vec![],
        1 => vec![from],
        _ => (0..k).map(|i| (1.0 + (from - 1) as f64 * i as f64 / (k - 1) as f64).round() as usize).collect(),
    }
}

/// DDIM over a shared DSRM (the weights are the teacher's, not a copy).
#[derive(Debug)]
pub struct Ddim {
    model: Ddpm,
    k: usize,
    timesteps: Vec<usize>,
    chain: CompiledChain,
}

impl Ddim {
    /// A k-step sampler on `model`'s weights, forward level and noise settings.
    pub fn new(model: &Ddpm, k: usize) -> Result<Self> {
        if k == 0 {
            return Err(DenoiseError::Config("ddim: k must be at least 1".into()));
        }
        if model.clips_x0() {
            return Err(DenoiseError::Config(
                "ddim: the model clips x̂_0 (clip_x0), which the compiled DDIM chain cannot: use the DDPM sampler"
                    .into(),
            ));
        }
        let model = model.shallow_clone()?;
        let timesteps = ddim_timesteps(model.levels().1, k);
        let chain = model.compile(&Self::steps_for(&model, &timesteps))?;
        Ok(Self { model, k, timesteps, chain })
    }

    /// Each jump τ_j → τ_{j−1} as x ← α x̂_0 + γ x with α = √ᾱ_s − γ √ᾱ_t, γ = √(1−ᾱ_s) / √(1−ᾱ_t).
    fn steps_for(model: &Ddpm, timesteps: &[usize]) -> Vec<Step> {
        let schedule = model.schedule();
        (0..timesteps.len())
            .rev()
            .map(|j| {
                let t = timesteps[j];
                let s = if j > 0 { timesteps[j - 1] } else { 0 };
                let (ab_t, ab_s) = (schedule.alpha_bar(t), schedule.alpha_bar(s));
                let gamma = schedule.one_minus_alpha_bar(s).sqrt() / schedule.one_minus_alpha_bar(t).sqrt();
                model.step(t, ab_s.sqrt() - gamma * ab_t.sqrt(), gamma)
            })
            .collect()
    }

    /// The levels τ_1 < … < τ_k the sampler evaluates.
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// The DSRM it samples from.
    pub fn model(&self) -> &Ddpm {
        &self.model
    }

    /// The sampler spelled out as in the module docs (slow; [`Denoiser::try_purify`] computes the same).
    pub fn purify_reference(&self, states: &Tensor) -> Result<Tensor> {
        let _no_grad = tch::no_grad_guard();
        let model = &self.model;
        let states = check_states(states, self.input_dim(), Some(model.device()))?;
        let schedule = model.schedule();
        let (mut x, cond) = model.start_state(&states)?;
        for j in (0..self.timesteps.len()).rev() {
            let t = self.timesteps[j];
            let s = if j > 0 { self.timesteps[j - 1] } else { 0 };
            let x0_hat = model.predict_x0(&x, cond.as_ref(), t)?;
            let eps_hat = x
                .f_sub(&x0_hat.f_mul_scalar(schedule.alpha_bar(t).sqrt())?)?
                .f_div_scalar(schedule.one_minus_alpha_bar(t).sqrt())?;
            x = x0_hat
                .f_mul_scalar(schedule.alpha_bar(s).sqrt())?
                .f_add(&eps_hat.f_mul_scalar(schedule.one_minus_alpha_bar(s).sqrt())?)?;
        }
        Ok(x)
    }

    pub(crate) fn from_checkpoint(tensors: &[(String, Tensor)], meta: &serde_json::Value) -> Result<Self> {
        meta_kind(meta, "ddim")?;
        let k = meta["k"].as_u64().ok_or_else(|| DenoiseError::Config("ddim checkpoint: missing k".into()))?;
        Self::new(&Ddpm::from_checkpoint(tensors, &meta["ddpm"])?, k as usize)
    }

    /// Reads a checkpoint written by [`Denoiser::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let (tensors, meta) = dsrm_nn::checkpoint::load(path)?;
        Self::from_checkpoint(&tensors, &meta).map_err(|e| crate::at_path(path, e))
    }
}

impl Denoiser for Ddim {
    fn try_purify(&self, states: &Tensor) -> Result<Tensor> {
        let _no_grad = tch::no_grad_guard();
        let states = check_states(states, self.input_dim(), Some(self.model.device()))?;
        let eps = self.model.noise_for(&states)?;
        self.chain.run(&self.model.chain_input(&states)?, eps.as_ref())
    }

    fn name(&self) -> String {
        format!("ddim(k={} τ={:?} on {})", self.k, self.timesteps, self.model.name())
    }

    /// The compiled chain, for the observed start and a chain that draws no noise.
    fn batch_one(&self) -> Result<Option<Box<dyn crate::batch_one::BatchOneDenoiser>>> {
        if !self.model.observed_start() {
            return Ok(None);
        }
        Ok(self
            .chain
            .batch_one(self.model.observed_condition())?
            .map(|c| Box::new(c) as Box<dyn crate::batch_one::BatchOneDenoiser>))
    }

    fn steps(&self) -> usize {
        self.chain.len()
    }

    fn input_dim(&self) -> i64 {
        self.model.input_dim()
    }

    fn output_dim(&self) -> i64 {
        self.model.output_dim()
    }

    /// Saves the DSRM's weights with k: a loaded sampler needs nothing else.
    fn checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        let meta = serde_json::json!({
            "format": crate::CHECKPOINT_FORMAT,
            "kind": "ddim",
            "k": self.k,
            "ddpm": self.model.meta(),
        });
        (self.model.tensors(), meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timesteps_are_even_distinct_and_end_at_the_start_level() {
        assert_eq!(ddim_timesteps(10, 2), [1, 10]);
        assert_eq!(ddim_timesteps(10, 1), [10]);
        assert_eq!(ddim_timesteps(10, 3), [1, 6, 10]);
        assert_eq!(ddim_timesteps(10, 4), [1, 4, 7, 10]);
        assert_eq!(ddim_timesteps(3, 5), [1, 2, 3]);
        assert_eq!(ddim_timesteps(0, 2), Vec::<usize>::new());
        for from in 1..60 {
            for k in 1..=from {
                let ts = ddim_timesteps(from, k);
                assert_eq!(ts.len(), k);
                assert_eq!(*ts.last().unwrap(), from);
                assert!(ts.windows(2).all(|w| w[0] < w[1]), "{from} {k}: {ts:?}");
                assert!(k == 1 || ts[0] == 1);
            }
        }
    }
}
