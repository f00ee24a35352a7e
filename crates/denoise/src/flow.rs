//! `flow`: a conditional flow-matching denoiser (rectified flow), the other alternative to diffusion beside the
//! VAE: the same (target, condition) contract as the DSRM (`ddpm.rs`), a velocity field instead of a noise
//! predictor, and purification in a few Euler steps of an ODE, or one (Lipman et al., ICLR 2023, "Flow Matching
//! for Generative Modeling"; Liu et al., ICLR 2023, "Flow Straight and Fast: Learning to Generate and Transfer
//! Data with Rectified Flow").
//!
//! ```text
//! Rows: the condition s̃ = o_t (⊕ h) and its clean target s^(0) (the stage's per-state target).
//! Path: the straight line from a start x_start to the target, x_τ = (1−τ) x_start + τ s^(0), τ ∈ [0, 1],
//!       whose velocity is the constant u = s^(0) − x_start (rectified flow's linear interpolation).
//!       start = observed:  x_start = o_t                  (default; purification starts where DDPM's does)
//!       start = noise:     x_start = ε ~ N(0, I)           (generation from the condition alone)
//!
//! Training (conditional flow matching, Lipman et al.'s CFM loss with Liu et al.'s straight path):
//!   repeat   (s̃, s^(0)) ~ training rows;  τ ~ U[0, 1);  x_start as above
//!            x_τ = (1−τ) x_start + τ s^(0)
//!            L   = mean_d (v_θ(x_τ, τ, c) − (s^(0) − x_start))²     c = s̃ (⊕ h) when observed_condition, else h
//!   until the validation loss has not fallen for `patience` epochs; keep the best epoch's weights.
//!
//! Purification (Euler on dx/dτ = v_θ(x, τ, c), K = ode_steps):
//!   x ← o_t (observed start) or 0 (noise start: the noise's mean, so a state is always purified the same way)
//!   for i = 0, …, K−1:   x ← x + (1/K) · v_θ(x, i/K, c)
//!   ŝ_t = x
//! ```
//!
//! Why the observed start is the default: it is where the DSRM's purification starts (DiffPure's partial-noise
//! start, `start = "observed"`), so the two differ only in what is learned. With o_t inside the condition the
//! start is known from c, so the path's only uncertainty is s^(0): the learned velocity at τ = 0 is
//! E[s^(0) | c] − o_t, and one Euler step already returns the regression E[s^(0) | c]; under a perfect v_θ
//! further steps stay on that line (x_τ then reveals the same target), so K trades nothing but the network's
//! imperfections for network evaluations. The noise start (`start = "noise"`) is the generative reading: it
//! needs the few steps to integrate a curved flow and a condition to generate from.
//!
//! v_θ is an MLP (tanh) over [x_τ ⊕ c ⊕ Linear(fourier(τ))], Fourier features cos/sin(π 2^j τ) of the
//! continuous time (the DDPM's sinusoid is for integer levels), initialised as the DSRM's network (DiffRec's
//! N(0, 2/(fan_in + fan_out)) weights). Inputs are `[B, d + cond_dim]` (o_t first, then h) and outputs `[B, d]`.
//! Frozen purification folds the condition and the time embedding into the first layer once
//! ([`Flow::try_purify`](crate::Denoiser::try_purify)); [`Flow::purify_reference`] runs the loop above literally
//! and the tests hold them equal.

use crate::train::{check_data, chunked_mean, data_width, fit_loop, EpochLog, FitReport, TrainConfig};
use crate::{check_states, meta_kind, DenoiseError, Denoiser, Result};
use dsrm_nn::mlp::{Activation, Mlp};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;

// ───────────────────────────────────────────── settings ─────────────────────────────────────────────

/// Where the flow's path starts, in training and in purification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowStart {
    /// x_start = o_t: the flow transports the observed state to its clean target (the default; the DSRM's
    /// purification starts at the observed state too).
    #[default]
    Observed,
    /// x_start = ε ~ N(0, I) in training, its mean 0 in purification: the flow generates the state from the
    /// condition alone, which it must then have (`observed_condition` or `cond_dim` > 0).
    Noise,
}

/// Most Euler steps accepted: far beyond where a straight flow gains anything, and a guard against a typo
/// (`ode_steps = 40000`) turning every decision into thousands of network evaluations.
pub const MAX_ODE_STEPS: usize = 1000;

/// Settings of `kind = "flow"`. Network and optimiser defaults are the DSRM's (`docs/design.md` §4.3 table),
/// so the two compare on the learning rule alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// K, the Euler steps of purification (default 4: "a few", against the DSRM's T = 10; 1 is the one-step
    /// purifier; 1..=1000). Changing it needs no retraining: training draws τ from the whole of [0, 1).
    pub ode_steps: usize,
    /// Where the path starts (default `observed`).
    pub start: FlowStart,
    /// Size of the Fourier time features, followed by a learned E → E linear layer (default 10, the DSRM's).
    pub time_emb_dim: i64,
    /// Hidden layer sizes (default `[256]`, the DSRM's).
    pub hidden: Vec<i64>,
    /// Hidden nonlinearity (default tanh, the DSRM's).
    pub activation: Activation,
    /// Width of the history-summary columns after the state (default 0; the stage sets it from
    /// `condition_window`).
    pub cond_dim: i64,
    /// The network also reads the observed state o_t as its condition (default false; the stage sets it when
    /// the target is not the observed state itself).
    pub observed_condition: bool,
    /// Optimisation (the DSRM's: Adam lr 1e-4, batch 400, ≤ 100 epochs, patience 10).
    pub train: TrainConfig,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            ode_steps: 4,
            start: FlowStart::Observed,
            time_emb_dim: 10,
            hidden: vec![256],
            activation: Activation::Tanh,
            cond_dim: 0,
            observed_condition: false,
            train: TrainConfig::default(),
        }
    }
}

impl FlowConfig {
    /// Checks every field on its own (what needs the data, e.g. a condition for the noise start, is checked
    /// by [`Flow::fit_towards`]). Errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(DenoiseError::Config(format!("flow: {msg}")));
        if !(1..=MAX_ODE_STEPS).contains(&self.ode_steps) {
            return bad(format!(
                "ode_steps = {}: need 1..={MAX_ODE_STEPS} Euler steps (1 is the one-step purifier)",
                self.ode_steps
            ));
        }
        if self.time_emb_dim < 1 || self.cond_dim < 0 {
            return bad(format!(
                "time_emb_dim = {}, cond_dim = {}: need time_emb_dim >= 1 and cond_dim >= 0",
                self.time_emb_dim, self.cond_dim
            ));
        }
        if self.hidden.is_empty() || self.hidden.iter().any(|h| *h < 1) {
            return bad(format!("hidden = {:?}: need at least one layer, all sizes >= 1", self.hidden));
        }
        self.train.validate()
    }

    /// Width of what the network reads as its condition: the caller's whole row with `observed_condition`,
    /// else the summary h alone.
    fn net_cond_dim(&self, dim: i64) -> i64 {
        if self.observed_condition {
            dim + self.cond_dim
        } else {
            self.cond_dim
        }
    }
}

// ──────────────────────────────────────── the network v_θ(x, τ, c) ────────────────────────────────────────

/// Fourier features of continuous times τ (`[B]` f32): [cos(π 2^j τ), sin(π 2^j τ)] for j < ⌊E/2⌋, cosines
/// first, zero-padded when E is odd. Frequencies from π (one half-period over the path) upwards.
fn time_features(tau: &Tensor, dim: i64) -> Result<Tensor> {
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half).map(|j| (std::f64::consts::PI * 2f64.powi(j as i32)) as f32).collect();
    let freqs = Tensor::f_from_slice(&freqs)?.f_to_device(tau.device())?.f_view([1, half])?;
    let args = tau.f_to_kind(Kind::Float)?.f_view([-1, 1])?.f_mul(&freqs)?;
    let mut parts = vec![args.f_cos()?, args.f_sin()?];
    if dim % 2 == 1 {
        parts.push(Tensor::f_zeros([tau.size()[0], 1], (Kind::Float, tau.device()))?);
    }
    Ok(Tensor::f_cat(&parts, 1)?)
}

/// v_θ: `emb` the learned E → E layer after the Fourier features; `mlp` maps [x ⊕ c ⊕ emb] to d outputs.
#[derive(Debug)]
struct Network {
    emb: Mlp,
    mlp: Mlp,
    emb_dim: i64,
}

impl Network {
    fn sizes(cfg: &FlowConfig, dim: i64) -> Vec<i64> {
        let mut sizes = vec![dim + cfg.net_cond_dim(dim) + cfg.time_emb_dim];
        sizes.extend(&cfg.hidden);
        sizes.push(dim);
        sizes
    }

    fn new(vs: &VarStore, cfg: &FlowConfig, dim: i64) -> Result<Self> {
        let (root, e) = (vs.root(), cfg.time_emb_dim);
        Ok(Self {
            emb: Mlp::xavier_normal(&root.sub("emb"), &[e, e], cfg.activation, 0.001)?,
            mlp: Mlp::xavier_normal(&root.sub("mlp"), &Self::sizes(cfg, dim), cfg.activation, 0.001)?,
            emb_dim: e,
        })
    }

    fn from_named(tensors: &[(String, Tensor)], cfg: &FlowConfig, dim: i64) -> Result<Self> {
        let e = cfg.time_emb_dim;
        Ok(Self {
            emb: Mlp::from_named(tensors, "emb", &[e, e], cfg.activation)?,
            mlp: Mlp::from_named(tensors, "mlp", &Self::sizes(cfg, dim), cfg.activation)?,
            emb_dim: e,
        })
    }

    fn named(&self) -> Vec<(String, Tensor)> {
        let mut out = self.emb.named("emb");
        out.extend(self.mlp.named("mlp"));
        out
    }

    /// A trainable copy of the weights, registered in `vs` under the names of [`named`](Self::named).
    fn trainable_copy(&self, vs: &VarStore) -> Result<Self> {
        let root = vs.root();
        Ok(Self {
            emb: self.emb.trainable_copy(&root.sub("emb"))?,
            mlp: self.mlp.trainable_copy(&root.sub("mlp"))?,
            emb_dim: self.emb_dim,
        })
    }

    /// The learned time embedding of times `tau` (`[B]`).
    fn embed(&self, tau: &Tensor) -> Result<Tensor> {
        Ok(self.emb.try_forward(&time_features(tau, self.emb_dim)?)?)
    }

    /// v_θ(x, τ, c) for per-row times `tau` (`[B]` f32).
    fn forward(&self, x: &Tensor, cond: Option<&Tensor>, tau: &Tensor) -> Result<Tensor> {
        let mut parts = vec![x.shallow_clone()];
        parts.extend(cond.map(Tensor::shallow_clone));
        parts.push(self.embed(tau)?);
        Ok(self.mlp.try_forward(&Tensor::f_cat(&parts, 1)?)?)
    }
}

/// Splits checked rows into o_t and the network's condition ([`crate::condition::split_condition`]).
fn split_condition(cfg: &FlowConfig, dim: i64, rows: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
    Ok(crate::condition::split_condition(cfg.observed_condition, cfg.cond_dim, dim, rows)?)
}

/// The Euler loop with the condition, each step's time embedding and the output bias folded into a few
/// matrix products. With h = 1/K, W_1 = [W_x | W_c | W_e] the first layer and (W_L, b_L) the last, the loop
/// tracks x̃_i = x_i − i·h·b_L, so each step is
///   a = act(x̃ W_x^T + c W_c^T + β_i) (then the middle layers),   x̃ ← x̃ + a (h W_L)^T,
/// with β_i = b_1 + emb(i/K) W_e^T + i·h·b_L W_x^T fixed per step and c W_c^T once per call; at the end
/// x_K = x̃_K + K·h·b_L = x̃_K + b_L.
#[derive(Debug)]
struct Folded {
    /// `[d, H_1]`: W_x^T.
    w_x_t: Tensor,
    w_c: Option<Tensor>,
    /// β_i, `[1, H_1]` each.
    step_bias: Vec<Tensor>,
    /// The hidden layers between the first and the last, as (weight, bias).
    middle: Vec<(Tensor, Tensor)>,
    /// `[H_L, d]`: (h W_L)^T.
    last_t: Tensor,
    /// b_L, added once at the end.
    last_bias: Tensor,
    activation: Activation,
}

impl Folded {
    fn new(net: &Network, dim: i64, cond_width: i64, steps: usize) -> Result<Self> {
        let _no_grad = tch::no_grad_guard();
        let layers = net.mlp.layers();
        let (first, last) = (&layers[0], &layers[layers.len() - 1]);
        let h = 1.0 / steps as f64;
        let w_x = first.weight.f_narrow(1, 0, dim)?;
        let w_c = (cond_width > 0).then(|| first.weight.f_narrow(1, dim, cond_width)?.f_contiguous()).transpose()?;
        let w_e = first.weight.f_narrow(1, dim + cond_width, net.emb_dim)?;
        let taus: Vec<f32> = (0..steps).map(|i| (i as f64 * h) as f32).collect();
        let tau = Tensor::f_from_slice(&taus)?.f_to_device(first.weight.device())?;
        let emb_bias = net.embed(&tau)?.f_linear(&w_e, Some(&first.bias))?;
        let drift = last.bias.f_mul_scalar(h)?.f_view([1, dim])?.f_linear::<Tensor>(&w_x, None)?;
        let step_bias = (0..steps)
            .map(|i| Ok(emb_bias.f_narrow(0, i as i64, 1)?.f_add(&drift.f_mul_scalar(i as f64)?)?))
            .collect::<Result<_>>()?;
        let middle =
            layers[1..layers.len() - 1].iter().map(|l| (l.weight.shallow_clone(), l.bias.shallow_clone())).collect();
        Ok(Self {
            w_x_t: w_x.f_transpose(0, 1)?.f_contiguous()?,
            w_c,
            step_bias,
            middle,
            last_t: last.weight.f_mul_scalar(h)?.f_transpose(0, 1)?.f_contiguous()?,
            last_bias: last.bias.f_view([1, dim])?,
            activation: net.mlp.activation(),
        })
    }

    /// K Euler steps from `x` with condition `cond` (already split).
    fn run(&self, mut x: Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let c_part = match (&self.w_c, cond) {
            (Some(w), Some(c)) => Some(c.f_linear::<Tensor>(w, None)?),
            _ => None,
        };
        for beta in &self.step_bias {
            let base = match &c_part {
                Some(c) => c.f_add(beta)?,
                None => beta.shallow_clone(),
            };
            let mut a = base.f_addmm(&x, &self.w_x_t)?;
            self.activation.apply_(&mut a)?;
            for (w, b) in &self.middle {
                a = a.f_linear(w, Some(b))?;
                self.activation.apply_(&mut a)?;
            }
            x = x.f_addmm(&a, &self.last_t)?;
        }
        Ok(x.f_add(&self.last_bias)?)
    }
}

// ───────────────────────────────────────────── the model ─────────────────────────────────────────────

/// A trained, frozen flow denoiser.
#[derive(Debug)]
pub struct Flow {
    cfg: FlowConfig,
    dim: i64,
    net: Network,
    folded: Folded,
    report: Option<FitReport>,
}

impl Flow {
    /// Trains a flow towards explicit clean targets: row n of `train` (`[N, d + cond_dim]`) is the condition
    /// (o_t ⊕ h) and row n of `train_targets` (`[N, d]`) its s^(0). `None` targets are the observed states
    /// themselves (the stage's `target = "observed"`), which only the noise start can learn from: from the
    /// observed start the path would have zero length. Seeds libtorch with `cfg.train.seed` (see
    /// [`crate::train`]). The validation loss is the flow-matching MSE at one fixed (τ, ε) per validation row.
    pub fn fit_towards(
        train: &Tensor,
        train_targets: Option<&Tensor>,
        valid: &Tensor,
        valid_targets: Option<&Tensor>,
        cfg: &FlowConfig,
        progress: &mut dyn FnMut(&EpochLog),
    ) -> Result<(Self, FitReport)> {
        Self::fit_from(train, train_targets, valid, valid_targets, cfg, None, progress)
    }

    /// [`fit_towards`](Self::fit_towards) starting from the network of `init` (the tensors of a trained flow's
    /// [`Denoiser::checkpoint`], same shapes) instead of a fresh initialisation: a warm refit on new data.
    pub(crate) fn fit_from(
        train: &Tensor,
        train_targets: Option<&Tensor>,
        valid: &Tensor,
        valid_targets: Option<&Tensor>,
        cfg: &FlowConfig,
        init: Option<&[(String, Tensor)]>,
        progress: &mut dyn FnMut(&EpochLog),
    ) -> Result<(Self, FitReport)> {
        cfg.validate()?;
        let width = data_width("train", train)?;
        let dim = width - cfg.cond_dim;
        if dim < 1 {
            return Err(DenoiseError::Data(format!(
                "train: {width} columns leave no state after cond_dim {}",
                cfg.cond_dim
            )));
        }
        if train_targets.is_some() != valid_targets.is_some() {
            return Err(DenoiseError::Data("targets: give them for both the training and validation rows".into()));
        }
        let explicit = train_targets.is_some();
        match cfg.start {
            FlowStart::Observed if !explicit => {
                return Err(DenoiseError::Config(
                    "flow: start = \"observed\" towards the observed state itself is a path of length zero (the \
                     identity); give clean targets (the stage's target = \"clean\") or start = \"noise\""
                        .into(),
                ))
            }
            FlowStart::Noise if !explicit && cfg.observed_condition => {
                return Err(DenoiseError::Config(
                    "flow: observed_condition with the observed state as target would learn to copy it".into(),
                ))
            }
            FlowStart::Noise if !cfg.observed_condition && cfg.cond_dim == 0 => {
                return Err(DenoiseError::Config(
                    "flow: start = \"noise\" without a condition (observed_condition or cond_dim) ignores the state"
                        .into(),
                ))
            }
            _ => {}
        }
        let train = check_data("train", train, width)?;
        let valid = check_data("valid", valid, width)?;
        let (n_train, n_valid) = (train.size()[0], valid.size()[0]);
        let targets = |what: &str, t: Option<&Tensor>, n: i64| -> Result<Option<Tensor>> {
            let Some(t) = t else { return Ok(None) };
            let t = check_data(what, t, dim)?;
            if t.size()[0] != n {
                return Err(DenoiseError::Data(format!("{what}: {} rows for {n} states", t.size()[0])));
            }
            Ok(Some(t))
        };
        let train_targets = targets("train targets", train_targets, n_train)?;
        let valid_targets = targets("valid targets", valid_targets, n_valid)?;
        let device = train.device();

        tch::manual_seed(cfg.train.seed as i64);
        let mut vs = VarStore::new(device);
        let net = match init {
            None => Network::new(&vs, cfg, dim)?,
            Some(tensors) => Network::from_named(tensors, cfg, dim)?.trainable_copy(&vs)?,
        };

        // The flow-matching loss of rows `rows` (conditions), `target` (s^(0)), times `tau` and noise `eps`.
        let loss = |rows: &Tensor, target: Option<Tensor>, tau: &Tensor, eps: &Tensor| -> Result<Tensor> {
            let (observed, cond) = split_condition(cfg, dim, rows)?;
            let target = target.unwrap_or_else(|| observed.shallow_clone());
            let start = match cfg.start {
                FlowStart::Observed => observed,
                FlowStart::Noise => eps.shallow_clone(),
            };
            let t = tau.f_unsqueeze(1)?;
            let x_tau = start.f_mul(&t.f_neg()?.f_add_scalar(1.0)?)?.f_add(&target.f_mul(&t)?)?;
            let velocity = target.f_sub(&start)?;
            Ok(net.forward(&x_tau, cond.as_ref(), tau)?.f_mse_loss(&velocity, tch::Reduction::Mean)?)
        };
        // Fixed validation draws, so epochs are compared on the same (τ, ε).
        let valid_tau = Tensor::f_rand([n_valid], (Kind::Float, device))?;
        let valid_eps = Tensor::f_randn([n_valid, dim], (Kind::Float, device))?;
        let batch_loss = |idx: &Tensor| -> Result<Tensor> {
            let n = idx.size()[0];
            let tau = Tensor::f_rand([n], (Kind::Float, device))?;
            let eps = Tensor::f_randn([n, dim], (Kind::Float, device))?;
            let target = train_targets.as_ref().map(|t| t.f_index_select(0, idx)).transpose()?;
            loss(&train.f_index_select(0, idx)?, target, &tau, &eps)
        };
        let valid_loss = || -> Result<f64> {
            chunked_mean(n_valid, |start, len| {
                let target = valid_targets.as_ref().map(|t| t.f_narrow(0, start, len)).transpose()?;
                let tau = valid_tau.f_narrow(0, start, len)?;
                let eps = valid_eps.f_narrow(0, start, len)?;
                Ok(loss(&valid.f_narrow(0, start, len)?, target, &tau, &eps)?.f_double_value(&[])?)
            })
        };
        let report = fit_loop("flow", &vs, &cfg.train, (n_train, n_valid), batch_loss, valid_loss, progress)?;
        vs.freeze();
        let model = Self::assemble(cfg.clone(), dim, net, Some(report.clone()))?;
        Ok((model, report))
    }

    fn assemble(cfg: FlowConfig, dim: i64, net: Network, report: Option<FitReport>) -> Result<Self> {
        let folded = Folded::new(&net, dim, cfg.net_cond_dim(dim), cfg.ode_steps)?;
        Ok(Self { cfg, dim, net, folded, report })
    }

    /// Sets K, the Euler steps (1..=1000), without retraining: training covered every τ in [0, 1).
    pub fn set_ode_steps(&mut self, steps: usize) -> Result<()> {
        let cfg = FlowConfig { ode_steps: steps, ..self.cfg.clone() };
        cfg.validate()?;
        self.folded = Folded::new(&self.net, self.dim, cfg.net_cond_dim(self.dim), steps)?;
        self.cfg = cfg;
        Ok(())
    }

    pub fn config(&self) -> &FlowConfig {
        &self.cfg
    }

    /// The training report (none for a model built without training).
    pub fn report(&self) -> Option<&FitReport> {
        self.report.as_ref()
    }

    fn device(&self) -> Device {
        self.net.mlp.layers()[0].weight.device()
    }

    fn input_width(&self) -> i64 {
        self.dim + self.cfg.cond_dim
    }

    /// x at τ = 0 for the observed part `o` of checked rows.
    fn start_of(&self, o: &Tensor) -> Result<Tensor> {
        Ok(match self.cfg.start {
            FlowStart::Observed => o.f_detach_copy()?,
            FlowStart::Noise => o.f_zeros_like()?,
        })
    }

    /// Purification spelled out as in the module docs, one network call per Euler step (slow;
    /// [`Denoiser::try_purify`] computes the same with the condition folded in).
    pub fn purify_reference(&self, states: &Tensor) -> Result<Tensor> {
        let _no_grad = tch::no_grad_guard();
        let states = check_states(states, self.input_width(), Some(self.device()))?;
        let (o, cond) = split_condition(&self.cfg, self.dim, &states)?;
        let mut x = self.start_of(&o)?;
        let k = self.cfg.ode_steps;
        for i in 0..k {
            let tau = Tensor::f_full([x.size()[0]], i as f64 / k as f64, (Kind::Float, x.device()))?;
            x = x.f_add(&self.net.forward(&x, cond.as_ref(), &tau)?.f_mul_scalar(1.0 / k as f64)?)?;
        }
        Ok(x)
    }

    /// Rebuilds a model from the tensors and metadata of a checkpoint (no random draws).
    pub(crate) fn from_checkpoint(tensors: &[(String, Tensor)], meta: &serde_json::Value) -> Result<Self> {
        meta_kind(meta, "flow")?;
        let corrupt =
            |what: &str, e: &dyn std::fmt::Display| DenoiseError::Config(format!("flow checkpoint: {what}: {e}"));
        let cfg: FlowConfig = serde_json::from_value(meta["config"].clone()).map_err(|e| corrupt("config", &e))?;
        cfg.validate()?;
        let dim = meta["dim"].as_i64().filter(|d| *d >= 1).ok_or_else(|| corrupt("dim", &"missing"))?;
        let report: Option<FitReport> =
            serde_json::from_value(meta["report"].clone()).map_err(|e| corrupt("report", &e))?;
        let net = Network::from_named(tensors, &cfg, dim)?;
        Self::assemble(cfg, dim, net, report)
    }

    /// Reads a checkpoint written by [`Denoiser::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let (tensors, meta) = dsrm_nn::checkpoint::load(path)?;
        Self::from_checkpoint(&tensors, &meta).map_err(|e| crate::at_path(path, e))
    }
}

impl Denoiser for Flow {
    fn try_purify(&self, states: &Tensor) -> Result<Tensor> {
        let _no_grad = tch::no_grad_guard();
        let states = check_states(states, self.input_width(), Some(self.device()))?;
        let (o, cond) = split_condition(&self.cfg, self.dim, &states)?;
        self.folded.run(self.start_of(&o)?, cond.as_ref())
    }

    fn name(&self) -> String {
        let start = match self.cfg.start {
            FlowStart::Observed => "",
            FlowStart::Noise => " from-noise",
        };
        let cond = if self.cfg.observed_condition { " cond=o" } else { "" };
        format!("flow(K={}{cond}{start})", self.cfg.ode_steps)
    }

    fn steps(&self) -> usize {
        self.cfg.ode_steps
    }

    fn input_dim(&self) -> i64 {
        self.input_width()
    }

    fn output_dim(&self) -> i64 {
        self.dim
    }

    fn checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        let meta = serde_json::json!({
            "format": crate::CHECKPOINT_FORMAT,
            "kind": "flow",
            "dim": self.dim,
            "config": self.cfg,
            "report": self.report,
        });
        (self.net.named(), meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{lock, max_abs, mse, toy, DIM};

    fn quick(epochs: usize) -> TrainConfig {
        TrainConfig { lr: 1e-3, batch_size: 100, max_epochs: epochs, patience: 10, seed: 7, max_grad_norm: None }
    }

    /// The stage's contract on the toy data: the network reads the noisy point (observed_condition) and learns
    /// the clean one.
    fn toy_flow(epochs: usize, start: FlowStart) -> Flow {
        let (train, valid) = (toy(2000, 1), toy(400, 2));
        let cfg = FlowConfig { observed_condition: true, start, train: quick(epochs), ..Default::default() };
        Flow::fit_towards(&train.noisy, Some(&train.clean), &valid.noisy, Some(&valid.clean), &cfg, &mut |_| {})
            .unwrap()
            .0
    }

    #[test]
    fn a_trained_flow_moves_noisy_states_towards_their_clean_targets() {
        let _torch = lock();
        let test = toy(500, 3);
        let raw = mse(&test.noisy, &test.clean);
        let trained = toy_flow(60, FlowStart::Observed);
        let after = mse(&trained.purify(&test.noisy), &test.clean);
        assert!(after < 0.5 * raw, "identity MSE {raw:.3e}, flow MSE {after:.3e}");
        // Without training (zero epochs: the initial network) it does not purify: training is what helps.
        let untrained = toy_flow(0, FlowStart::Observed);
        let before = mse(&untrained.purify(&test.noisy), &test.clean);
        assert!(before > raw, "an untrained flow should not beat the identity ({before:.3e} vs {raw:.3e})");
        // One Euler step is already the regression of the target (module docs): close to K = 4.
        let mut one = toy_flow(60, FlowStart::Observed);
        one.set_ode_steps(1).unwrap();
        let after_one = mse(&one.purify(&test.noisy), &test.clean);
        assert!(after_one < 0.5 * raw, "one step: identity MSE {raw:.3e}, flow MSE {after_one:.3e}");
        assert_eq!((one.steps(), trained.steps()), (1, 4));
    }

    #[test]
    fn from_noise_it_generates_the_clean_state_given_the_observed_one() {
        let _torch = lock();
        let test = toy(500, 3);
        let raw = mse(&test.noisy, &test.clean);
        let flow = toy_flow(60, FlowStart::Noise);
        let after = mse(&flow.purify(&test.noisy), &test.clean);
        assert!(after < 0.5 * raw, "from noise: identity MSE {raw:.3e}, flow MSE {after:.3e}");
        assert!(flow.name().contains("from-noise"), "{}", flow.name());
    }

    #[test]
    fn the_folded_euler_loop_matches_the_reference_and_is_deterministic() {
        let _torch = lock();
        let test = toy(64, 4);
        // With and without the observed state and a summary in the condition, one and two hidden layers.
        for (observed_condition, cond_dim, hidden) in
            [(true, 0, vec![256]), (true, DIM, vec![16, 8]), (false, DIM, vec![32]), (false, 0, vec![32])]
        {
            let rows = Tensor::cat(&[&test.noisy, &(&test.noisy * 0.5)], 1).narrow(1, 0, DIM + cond_dim);
            let cfg = FlowConfig {
                observed_condition,
                cond_dim,
                hidden,
                ode_steps: 3,
                train: quick(20),
                ..Default::default()
            };
            let flow =
                Flow::fit_towards(&rows, Some(&test.clean), &rows, Some(&test.clean), &cfg, &mut |_| {}).unwrap().0;
            let fast = flow.purify(&rows);
            let gap = max_abs(&fast, &flow.purify_reference(&rows).unwrap());
            assert!(gap < 1e-5, "{observed_condition} {cond_dim}: folded and reference loops differ by {gap:.2e}");
            assert!(fast.equal(&flow.purify(&rows)), "a state is always purified the same way");
            assert_eq!((flow.input_dim(), flow.output_dim(), flow.cond_dim()), (DIM + cond_dim, DIM, cond_dim));
        }
    }

    #[test]
    fn save_then_load_gives_identical_purification() {
        let _torch = lock();
        let test = toy(100, 5);
        let flow = toy_flow(3, FlowStart::Observed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flow.bin");
        flow.save(&path).unwrap();
        let back = Flow::load(&path).unwrap();
        assert!(flow.purify(&test.noisy).equal(&back.purify(&test.noisy)));
        let any = crate::load(&path).unwrap();
        assert_eq!(any.name(), flow.name());
        assert!(flow.purify(&test.noisy).equal(&any.purify(&test.noisy)));
        assert_eq!(back.report(), flow.report());
    }

    #[test]
    fn bad_settings_are_config_errors_naming_the_key() {
        let _torch = lock();
        let data = toy(50, 6);
        for steps in [0, MAX_ODE_STEPS + 1] {
            let cfg = FlowConfig { ode_steps: steps, observed_condition: true, ..Default::default() };
            let err =
                Flow::fit_towards(&data.noisy, Some(&data.clean), &data.noisy, Some(&data.clean), &cfg, &mut |_| {})
                    .unwrap_err();
            assert!(matches!(err, DenoiseError::Config(_)) && err.to_string().contains("ode_steps"), "{err}");
        }
        // From a TOML table, as `[train.dsrm.denoiser]` reads it.
        let cfg: crate::DenoiserConfig = toml::from_str("kind = \"flow\"\node_steps = 0").unwrap();
        let err =
            crate::build_towards(&cfg, &data.noisy, &data.clean, &data.noisy, &data.clean, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("ode_steps = 0"), "{err}");
        // A path of length zero and a start from noise with nothing to condition on are refused.
        let observed = FlowConfig::default();
        assert!(Flow::fit_towards(&data.noisy, None, &data.noisy, None, &observed, &mut |_| {}).is_err());
        let blind = FlowConfig { start: FlowStart::Noise, ..Default::default() };
        let err =
            Flow::fit_towards(&data.noisy, Some(&data.clean), &data.noisy, Some(&data.clean), &blind, &mut |_| {})
                .unwrap_err();
        assert!(err.to_string().contains("condition"), "{err}");
        // A wrong width at purification is an error, not a panic.
        let flow = toy_flow(1, FlowStart::Observed);
        assert!(flow.try_purify(&Tensor::zeros([2, DIM + 1], (Kind::Float, Device::Cpu))).is_err());
    }
}
