//! `distilled`: a one-step student that imitates the T'-step DSRM, so purification costs one MLP pass
//! (knowledge distillation of an iterative sampler, Luhman & Luhman 2021, arXiv 2101.02388).
//!
//! ```text
//! targets  ŝ = teacher.purify(o) for every training and validation state   (computed once, deterministic)
//! student  g_φ: [o ⊕ c] → ŝ, an MLP with the same input width as the teacher's purify and its hidden sizes
//! init     the teacher's own first reverse step as a plain MLP: x̂_0(√ᾱ_{T'} o, T'), with the forward scale
//!          and the time embedding folded into the first layer. It is already a one-step purifier, so the
//!          student only has to absorb the remaining T'−1 steps. (ε models and other hidden sizes: random.)
//! loss     mean (g_φ(o) − ŝ)², Adam on minibatches, early stopping on the validation states
//! ```

use crate::ddpm::{Ddpm, DdpmConfig};
use crate::train::{check_data, chunked_mean, fit_loop, EpochLog, FitReport, TrainConfig};
use crate::{check_states, meta_kind, DenoiseError, Denoiser, Result};
use dsrm_nn::mlp::Mlp;
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Settings of the student network and its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudentConfig {
    /// Hidden sizes (default: none = the teacher's, which warm starting needs).
    pub hidden: Option<Vec<i64>>,
    /// Start from the teacher's first reverse step (default true; x̂_0 teachers only).
    pub warm_start: bool,
    /// Optimisation (defaults as the DSRM's: Adam lr 1e-4, batch 400, ≤ 100 epochs, patience 10).
    pub train: TrainConfig,
}

impl Default for StudentConfig {
    fn default() -> Self {
        Self { hidden: None, warm_start: true, train: TrainConfig::default() }
    }
}

/// Settings of `kind = "distilled"`: the teacher to train, then the student.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistilledConfig {
    /// The T'-step DSRM that produces the targets.
    pub teacher: DdpmConfig,
    pub student: StudentConfig,
}

/// A one-step purifier distilled from a DSRM.
#[derive(Debug)]
pub struct Distilled {
    net: Mlp,
    dim: i64,
    cond_dim: i64,
    cfg: StudentConfig,
    teacher: String,
    report: Option<FitReport>,
}

impl Distilled {
    /// Trains a student of `teacher` on `train` / `valid` (the teacher's input width). Seeds libtorch with
    /// `cfg.train.seed` (see [`crate::train`] on determinism). The validation loss is the MSE to the teacher's
    /// purified validation states.
    pub fn fit(
        teacher: &Ddpm,
        train: &Tensor,
        valid: &Tensor,
        cfg: &StudentConfig,
        progress: &mut dyn FnMut(&EpochLog),
    ) -> Result<(Self, FitReport)> {
        cfg.train.validate()?;
        let (dim, width) = (teacher.output_dim(), teacher.input_dim());
        let train = check_data("train", train, width)?;
        let valid = check_data("valid", valid, width)?;
        let (n_train, n_valid) = (train.size()[0], valid.size()[0]);
        let targets = |x: &Tensor| -> Result<Tensor> {
            let n = x.size()[0];
            let chunks = (0..n)
                .step_by(8192)
                .map(|s| teacher.try_purify(&x.f_narrow(0, s, 8192.min(n - s))?))
                .collect::<Result<Vec<_>>>()?;
            Ok(Tensor::f_cat(&chunks, 0)?)
        };
        let (train_y, valid_y) = (targets(&train)?, targets(&valid)?);

        let teacher_hidden = &teacher.config().hidden;
        let hidden = cfg.hidden.clone().unwrap_or_else(|| teacher_hidden.clone());
        if cfg.warm_start && hidden != *teacher_hidden {
            return Err(DenoiseError::Config(format!(
                "distilled: warm_start needs the teacher's hidden sizes {teacher_hidden:?}, got {hidden:?}"
            )));
        }
        let mut sizes = vec![width];
        sizes.extend(&hidden);
        sizes.push(dim);

        tch::manual_seed(cfg.train.seed as i64);
        let mut vs = VarStore::new(train.device());
        let net = Mlp::xavier_normal(&vs.root().sub("student"), &sizes, teacher.config().activation, 0.001)?;
        if cfg.warm_start {
            if let Some(layers) = teacher.one_step_layers()? {
                tch::no_grad(|| -> Result<()> {
                    for (mine, (w, b)) in net.layers().iter().zip(layers) {
                        mine.weight.shallow_clone().f_copy_(&w)?;
                        mine.bias.shallow_clone().f_copy_(&b)?;
                    }
                    Ok(())
                })?;
            }
        }
        let batch_loss = |idx: &Tensor| -> Result<Tensor> {
            let out = net.try_forward(&train.f_index_select(0, idx)?)?;
            Ok(out.f_mse_loss(&train_y.f_index_select(0, idx)?, tch::Reduction::Mean)?)
        };
        let valid_loss = || -> Result<f64> {
            chunked_mean(n_valid, |start, len| {
                let out = net.try_forward(&valid.f_narrow(0, start, len)?)?;
                Ok(out.f_mse_loss(&valid_y.f_narrow(0, start, len)?, tch::Reduction::Mean)?.f_double_value(&[])?)
            })
        };
        let report = fit_loop("distilled", &vs, &cfg.train, (n_train, n_valid), batch_loss, valid_loss, progress)?;
        vs.freeze();
        let cfg = StudentConfig { hidden: Some(hidden), ..cfg.clone() };
        let model =
            Self { net, dim, cond_dim: width - dim, cfg, teacher: teacher.name(), report: Some(report.clone()) };
        Ok((model, report))
    }

    /// The settings it was trained with (`hidden` filled in).
    pub fn config(&self) -> &StudentConfig {
        &self.cfg
    }

    pub fn report(&self) -> Option<&FitReport> {
        self.report.as_ref()
    }

    fn device(&self) -> Device {
        self.net.layers()[0].weight.device()
    }

    fn sizes(cfg: &StudentConfig, dim: i64, cond_dim: i64) -> Vec<i64> {
        let mut sizes = vec![dim + cond_dim];
        sizes.extend(cfg.hidden.iter().flatten());
        sizes.push(dim);
        sizes
    }

    pub(crate) fn from_checkpoint(tensors: &[(String, Tensor)], meta: &serde_json::Value) -> Result<Self> {
        meta_kind(meta, "distilled")?;
        let corrupt = |what: &str| DenoiseError::Config(format!("distilled checkpoint: bad or missing {what}"));
        let cfg: StudentConfig = serde_json::from_value(meta["config"].clone()).map_err(|_| corrupt("config"))?;
        let dim = meta["dim"].as_i64().filter(|d| *d >= 1).ok_or_else(|| corrupt("dim"))?;
        let cond_dim = meta["cond_dim"].as_i64().filter(|c| *c >= 0).ok_or_else(|| corrupt("cond_dim"))?;
        let activation = serde_json::from_value(meta["activation"].clone()).map_err(|_| corrupt("activation"))?;
        let report = serde_json::from_value(meta["report"].clone()).map_err(|_| corrupt("report"))?;
        let teacher = meta["teacher"].as_str().unwrap_or("?").to_string();
        let net = Mlp::from_named(tensors, "student", &Self::sizes(&cfg, dim, cond_dim), activation)?;
        Ok(Self { net, dim, cond_dim, cfg, teacher, report })
    }

    /// Reads a checkpoint written by [`Denoiser::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let (tensors, meta) = dsrm_nn::checkpoint::load(path)?;
        Self::from_checkpoint(&tensors, &meta).map_err(|e| crate::at_path(path, e))
    }
}

impl Denoiser for Distilled {
    fn try_purify(&self, states: &Tensor) -> Result<Tensor> {
        let _no_grad = tch::no_grad_guard();
        let states = check_states(states, self.dim + self.cond_dim, Some(self.device()))?;
        Ok(self.net.try_forward(&states)?)
    }

    fn name(&self) -> String {
        format!("distilled(from {})", self.teacher)
    }

    fn batch_one(&self) -> Result<Option<Box<dyn crate::batch_one::BatchOneDenoiser>>> {
        let net = dsrm_nn::frozen_mlp::FrozenMlp::of(&self.net)?;
        Ok(Some(Box::new(crate::batch_one::OneNetwork::new(net))))
    }

    fn steps(&self) -> usize {
        1
    }

    fn input_dim(&self) -> i64 {
        self.dim + self.cond_dim
    }

    fn output_dim(&self) -> i64 {
        self.dim
    }

    fn checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        let meta = serde_json::json!({
            "format": crate::CHECKPOINT_FORMAT,
            "kind": "distilled",
            "dim": self.dim,
            "cond_dim": self.cond_dim,
            "activation": self.net.activation(),
            "config": self.cfg,
            "teacher": self.teacher,
            "report": self.report,
        });
        (self.net.named("student"), meta)
    }
}
