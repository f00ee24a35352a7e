//! `vae`: a small variational autoencoder as the non-diffusion alternative purifier (Kingma & Welling 2014;
//! the KL weight β of Higgins et al. 2017). It answers the ablation "is it the diffusion, or any learned
//! projection onto the state manifold?".
//!
//! ```text
//! encoder  q_φ(z | o) = N(μ_φ(o), diag σ²_φ(o))           MLP o → hidden → [μ ⊕ log σ²]
//! decoder  p_θ(o | z) = N(g_θ(z), σ_x² I)                 MLP z → reversed hidden → o
//! loss     ‖o − g_θ(μ + σ ⊙ ε)‖² / (2 σ_x²) + β · KL(q_φ(z | o) ‖ N(0, I)),  ε ~ N(0, I)   (negative ELBO, β = 1)
//! purify   ŝ = g_θ(μ_φ(o))                                 deterministic
//! ```
//!
//! σ_x sets what counts as noise: deviations well below it are not worth latent capacity, so the decoder
//! smooths them away. Its default, 0.05, is about the DSRM's largest forward noise at DiffRec's noise scale
//! s = 0.1 (√(1−ᾱ_T) ≈ 0.045; 0.14 at the DSRM's default s = 1 since 2026-12-06). The VAE takes no condition.

use crate::train::{check_data, chunked_mean, data_width, fit_loop, EpochLog, FitReport, TrainConfig};
use crate::{check_states, meta_kind, DenoiseError, Denoiser, Result};
use dsrm_nn::mlp::{Activation, Mlp};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Settings of the VAE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaeConfig {
    /// Latent size (default 8: far below the 42/18-d states, well above their few dominant directions).
    pub latent_dim: i64,
    /// Encoder hidden sizes; the decoder mirrors them (default `[256]`, as the DSRM's network).
    pub hidden: Vec<i64>,
    /// Hidden nonlinearity (default tanh, as the DSRM's network).
    pub activation: Activation,
    /// β, the KL weight (default 1: the ELBO).
    pub beta: f64,
    /// σ_x, the decoder's fixed standard deviation (default 0.05; module docs).
    pub decoder_std: f64,
    /// Optimisation (defaults as the DSRM's: Adam lr 1e-4, batch 400, ≤ 100 epochs, patience 10).
    pub train: TrainConfig,
}

impl Default for VaeConfig {
    fn default() -> Self {
        Self {
            latent_dim: 8,
            hidden: vec![256],
            activation: Activation::Tanh,
            beta: 1.0,
            decoder_std: 0.05,
            train: TrainConfig::default(),
        }
    }
}

impl VaeConfig {
    fn validate(&self) -> Result<()> {
        let positive = |x: f64, zero_ok: bool| x.is_finite() && (x > 0.0 || (zero_ok && x == 0.0));
        if self.latent_dim < 1
            || self.hidden.iter().any(|h| *h < 1)
            || !positive(self.beta, true)
            || !positive(self.decoder_std, false)
        {
            return Err(DenoiseError::Config(format!(
                "vae: need latent_dim >= 1, hidden sizes >= 1, beta >= 0, decoder_std > 0 ({self:?})"
            )));
        }
        self.train.validate()
    }

    fn sizes(&self, dim: i64) -> (Vec<i64>, Vec<i64>) {
        let mut enc = vec![dim];
        enc.extend(&self.hidden);
        enc.push(2 * self.latent_dim);
        let mut dec = vec![self.latent_dim];
        dec.extend(self.hidden.iter().rev());
        dec.push(dim);
        (enc, dec)
    }
}

/// A trained VAE purifier.
#[derive(Debug)]
pub struct Vae {
    cfg: VaeConfig,
    dim: i64,
    encoder: Mlp,
    decoder: Mlp,
    report: Option<FitReport>,
}

impl Vae {
    /// Trains on `train` (`[N, d]`), early stopping on the negative ELBO of `valid` at one fixed ε per row.
    /// Seeds libtorch with `cfg.train.seed` (see [`crate::train`] on determinism).
    pub fn fit(
        train: &Tensor,
        valid: &Tensor,
        cfg: &VaeConfig,
        progress: &mut dyn FnMut(&EpochLog),
    ) -> Result<(Self, FitReport)> {
        cfg.validate()?;
        let dim = data_width("train", train)?;
        let train = check_data("train", train, dim)?;
        let valid = check_data("valid", valid, dim)?;
        let (n_train, n_valid) = (train.size()[0], valid.size()[0]);
        let device = train.device();

        tch::manual_seed(cfg.train.seed as i64);
        let mut vs = VarStore::new(device);
        let (enc, dec) = cfg.sizes(dim);
        let encoder = Mlp::xavier_normal(&vs.root().sub("encoder"), &enc, cfg.activation, 0.001)?;
        let decoder = Mlp::xavier_normal(&vs.root().sub("decoder"), &dec, cfg.activation, 0.001)?;
        let valid_eps = Tensor::f_randn([n_valid, cfg.latent_dim], (Kind::Float, device))?;

        // Negative ELBO per row, averaged.
        let loss = |x: &Tensor, eps: &Tensor| -> Result<Tensor> {
            let stats = encoder.try_forward(x)?;
            let mu = stats.f_narrow(1, 0, cfg.latent_dim)?;
            let logvar = stats.f_narrow(1, cfg.latent_dim, cfg.latent_dim)?;
            let z = mu.f_add(&logvar.f_mul_scalar(0.5)?.f_exp()?.f_mul(eps)?)?;
            let recon = decoder.try_forward(&z)?;
            let sum_rows = |t: Tensor| t.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
            let nll = sum_rows(x.f_sub(&recon)?.f_square()?)?.f_div_scalar(2.0 * cfg.decoder_std.powi(2))?;
            // KL(N(μ, σ²) ‖ N(0, 1)) = −½ Σ (1 + log σ² − μ² − σ²)
            let kl = sum_rows(logvar.f_add_scalar(1.0)?.f_sub(&mu.f_square()?)?.f_sub(&logvar.f_exp()?)?)?
                .f_mul_scalar(-0.5)?;
            Ok(nll.f_add(&kl.f_mul_scalar(cfg.beta)?)?.f_mean(Kind::Float)?)
        };
        let batch_loss = |idx: &Tensor| -> Result<Tensor> {
            let x = train.f_index_select(0, idx)?;
            let eps = Tensor::f_randn([x.size()[0], cfg.latent_dim], (Kind::Float, device))?;
            loss(&x, &eps)
        };
        let valid_loss = || -> Result<f64> {
            chunked_mean(n_valid, |start, len| {
                Ok(loss(&valid.f_narrow(0, start, len)?, &valid_eps.f_narrow(0, start, len)?)?.f_double_value(&[])?)
            })
        };
        let report = fit_loop("vae", &vs, &cfg.train, (n_train, n_valid), batch_loss, valid_loss, progress)?;
        vs.freeze();
        Ok((Self { cfg: cfg.clone(), dim, encoder, decoder, report: Some(report.clone()) }, report))
    }

    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    pub fn report(&self) -> Option<&FitReport> {
        self.report.as_ref()
    }

    fn device(&self) -> Device {
        self.encoder.layers()[0].weight.device()
    }

    pub(crate) fn from_checkpoint(tensors: &[(String, Tensor)], meta: &serde_json::Value) -> Result<Self> {
        meta_kind(meta, "vae")?;
        let corrupt = |what: &str| DenoiseError::Config(format!("vae checkpoint: bad or missing {what}"));
        let cfg: VaeConfig = serde_json::from_value(meta["config"].clone()).map_err(|_| corrupt("config"))?;
        cfg.validate()?;
        let dim = meta["dim"].as_i64().filter(|d| *d >= 1).ok_or_else(|| corrupt("dim"))?;
        let report = serde_json::from_value(meta["report"].clone()).map_err(|_| corrupt("report"))?;
        let (enc, dec) = cfg.sizes(dim);
        let encoder = Mlp::from_named(tensors, "encoder", &enc, cfg.activation)?;
        let decoder = Mlp::from_named(tensors, "decoder", &dec, cfg.activation)?;
        Ok(Self { cfg, dim, encoder, decoder, report })
    }

    /// Reads a checkpoint written by [`Denoiser::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let (tensors, meta) = dsrm_nn::checkpoint::load(path)?;
        Self::from_checkpoint(&tensors, &meta).map_err(|e| crate::at_path(path, e))
    }
}

impl Denoiser for Vae {
    fn try_purify(&self, states: &Tensor) -> Result<Tensor> {
        let _no_grad = tch::no_grad_guard();
        let states = check_states(states, self.dim, Some(self.device()))?;
        let mu = self.encoder.try_forward(&states)?.f_narrow(1, 0, self.cfg.latent_dim)?;
        Ok(self.decoder.try_forward(&mu)?)
    }

    fn name(&self) -> String {
        format!("vae(z={} β={})", self.cfg.latent_dim, self.cfg.beta)
    }

    fn steps(&self) -> usize {
        // One encoder and one decoder pass.
        2
    }

    fn input_dim(&self) -> i64 {
        self.dim
    }

    fn output_dim(&self) -> i64 {
        self.dim
    }

    fn checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        let meta = serde_json::json!({
            "format": crate::CHECKPOINT_FORMAT,
            "kind": "vae",
            "dim": self.dim,
            "config": self.cfg,
            "report": self.report,
        });
        let mut tensors = self.encoder.named("encoder");
        tensors.extend(self.decoder.named("decoder"));
        (tensors, meta)
    }
}
