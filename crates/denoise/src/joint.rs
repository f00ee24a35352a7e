//! Joint fine-tuning of a pretrained DSRM with the RL loss (`docs/design.md` §4.3 step 4, §6 row 7):
//!
//! ```text
//! θ_D ← the pretrained DSRM's weights, now trainable
//! every agent update on a batch of observed states o:
//!     ŝ      = purify_θ_D(o)                      # the same forward-then-reverse chain, with a graph
//!     L_DSRM = mean_d (x_0 − f_θ_D(√ᾱ_t o + √(1−ᾱ_t) ε, t))²   t ~ U{1..T}, ε ~ N(0, I), x_0 = o
//!     L      = L_RL(ŝ) + λ_D · L_DSRM             # one backward pass; the RL gradient reaches θ_D through ŝ
//! ```
//!
//! The DSRM term keeps the denoiser a denoiser while the RL loss pulls its output towards what helps the
//! agent; λ_D trades the two. (t, ε) are a pure function of (seed, row content) (`chain::keyed_normal`), so a
//! resumed run draws exactly what an uninterrupted one did. The frozen [`Ddpm`] stays the default: this is
//! the opt-in alternative of §6 row 7, and only for the `ddpm` kind (DDIM and the student would need their own
//! gradients through a teacher they do not own).

use crate::ddpm::{Ddpm, Network};
use crate::{DenoiseError, Denoiser, Result};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Tensor};

/// A DSRM whose network is trainable, for fine-tuning with the agent.
pub struct JointDdpm {
    /// The pretrained model: schedule, levels, config (its own frozen weights are not used).
    base: Ddpm,
    /// The trainable weights, named as the checkpoint's (`emb.l0.weight`, `mlp.l0.weight`, …).
    vs: VarStore,
    net: Network,
    lambda: f64,
    seed: u64,
}

impl JointDdpm {
    /// Starts from `pretrained`'s weights; `lambda` (λ_D ≥ 0) weighs [`loss`](Self::loss), `seed` keys its draws.
    pub fn new(pretrained: &Ddpm, lambda: f64, seed: u64) -> Result<Self> {
        if !(lambda >= 0.0 && lambda.is_finite()) {
            return Err(DenoiseError::Config(format!("joint_lambda {lambda} must be finite and >= 0")));
        }
        let base = pretrained.shallow_clone()?;
        let vs = VarStore::new(base.device());
        let net = base.network().trainable_copy(&vs)?;
        Ok(Self { base, vs, net, lambda, seed })
    }

    /// [`new`](Self::new) from a denoiser checkpoint's parts ([`Denoiser::checkpoint`]); only a `ddpm` can be
    /// fine-tuned jointly.
    pub fn from_checkpoint(
        tensors: &[(String, Tensor)],
        meta: &serde_json::Value,
        lambda: f64,
        seed: u64,
    ) -> Result<Self> {
        if meta["kind"] != "ddpm" {
            return Err(DenoiseError::Config(format!(
                "joint fine-tuning (joint_lambda > 0) needs a `ddpm` denoiser, this one is {}",
                meta["kind"]
            )));
        }
        Self::new(&Ddpm::from_checkpoint(tensors, meta)?, lambda, seed)
    }

    /// `[B, d]` purified states from `[B, d + cond_dim]` observed ones, differentiable in the weights.
    pub fn purify_differentiable(&self, states: &Tensor) -> Result<Tensor> {
        self.base.purify_with(&self.net, states)
    }

    /// λ_D · L_DSRM on a batch of observed states (the denoiser's inputs).
    pub fn loss(&self, states: &Tensor) -> Result<Tensor> {
        Ok(self.base.loss_with(&self.net, states, self.seed)?.f_mul_scalar(self.lambda)?)
    }

    /// λ_D.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// The trainable weights (for the optimiser and the run's checkpoints).
    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// Mutable access, for restoring checkpoints.
    pub fn var_store_mut(&mut self) -> &mut VarStore {
        &mut self.vs
    }

    /// The current weights as a frozen [`Ddpm`] (the compiled, fast chain).
    pub fn frozen(&self) -> Result<Ddpm> {
        let _no_grad = tch::no_grad_guard();
        let copies: Vec<(String, Tensor)> =
            self.vs.variables().into_iter().map(|(name, t)| (name, t.detach().copy())).collect();
        self.base.with_weights(&copies)
    }
}

impl Denoiser for JointDdpm {
    fn try_purify(&self, states: &Tensor) -> Result<Tensor> {
        let _no_grad = tch::no_grad_guard();
        self.purify_differentiable(states)
    }

    fn name(&self) -> String {
        format!("{} joint λ_D={}", self.base.name(), self.lambda)
    }

    fn steps(&self) -> usize {
        self.base.steps()
    }

    fn input_dim(&self) -> i64 {
        self.base.input_dim()
    }

    fn output_dim(&self) -> i64 {
        self.base.output_dim()
    }

    /// The current weights with the pretrained model's metadata: loads back as a frozen `ddpm`.
    fn checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        let tensors = self.vs.variables().into_iter().map(|(name, t)| (name, t.detach().copy())).collect();
        (tensors, self.base.checkpoint().1)
    }
}
