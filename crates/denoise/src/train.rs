//! The training loop the learned denoisers share: Adam over shuffled minibatches, a validation loss after every
//! epoch, early stopping with patience, and the best epoch's weights restored at the end (`docs/design.md` §4.3,
//! "Training data and order", step 3). Each denoiser file supplies only its loss, so it reads like its paper.
//!
//! Randomness (initialisation, shuffling, noise draws, dropout) comes from libtorch's process-global generator,
//! which every `fit` seeds with [`TrainConfig::seed`] first: a fit is deterministic for a seed as long as no
//! other thread draws from the generator meanwhile. Multi-threaded callers (test harnesses) hold
//! `dsrm_nn::runtime::exclusive()` around the fit.

use crate::{DenoiseError, Result};
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Kind, Tensor};
use serde::{Deserialize, Serialize};

/// Optimisation settings. Defaults are DiffRec's (`docs/design.md` §4.3 step 3, §5.4), with the epoch cap and
/// patience of §4.3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Adam learning rate (default 1e-4, DiffRec's AdamW; its weight decay is 0, which makes AdamW plain Adam,
    /// so dsrm-nn's PyTorch-exact Adam is used).
    pub lr: f64,
    /// Minibatch size (default 400, DiffRec).
    pub batch_size: usize,
    /// Epoch cap (default 100; DiffRec's code allows 1,000 with patience 20 on far larger inputs).
    pub max_epochs: usize,
    /// Stop after this many epochs without a lower validation loss (default 10).
    pub patience: usize,
    /// Seed of libtorch's generator for initialisation, shuffling and noise (default 0).
    pub seed: u64,
    /// Optional global gradient-norm clip (default off, as DiffRec).
    pub max_grad_norm: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { lr: 1e-4, batch_size: 400, max_epochs: 100, patience: 10, seed: 0, max_grad_norm: None }
    }
}

impl TrainConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.lr > 0.0 && self.lr.is_finite()) || self.batch_size == 0 || self.patience == 0 {
            return Err(DenoiseError::Config(format!("train: need lr > 0, batch_size >= 1, patience >= 1 ({self:?})")));
        }
        Ok(())
    }
}

/// One epoch's record, passed to the progress callback and kept in the [`FitReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// Which model trains (`ddpm`, `distilled`, `vae`): `build` may train two in a row.
    pub phase: String,
    /// 0 is the untrained model (validation only), then 1, 2, …
    pub epoch: usize,
    /// Mean minibatch loss of the epoch (none for epoch 0).
    pub train_loss: Option<f64>,
    /// The denoiser's deterministic validation loss (its docs say which).
    pub valid_loss: f64,
    /// Lowest validation loss so far, this epoch included.
    pub best_valid_loss: f64,
    /// Whether this epoch set a new best (its weights are the ones kept so far).
    pub improved: bool,
    /// Gradient updates (minibatches) of this epoch, for compute accounting (0 in checkpoints written before it
    /// was recorded).
    #[serde(default)]
    pub grad_updates: usize,
}

/// The outcome of one fit. Stored in checkpoints' metadata, so a loaded model says how it was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    pub phase: String,
    /// Epochs trained (excluding epoch 0).
    pub epochs: usize,
    /// The epoch whose weights were kept (0: training never beat the initialisation).
    pub best_epoch: usize,
    pub best_valid_loss: f64,
    /// True when patience ran out before `max_epochs`.
    pub stopped_early: bool,
    pub train_rows: i64,
    pub valid_rows: i64,
    pub history: Vec<EpochLog>,
}

/// Trains the variables of `vs` by minimising `batch_loss(indices)` over minibatches of a shuffled `0..n_train`,
/// scoring `valid_loss()` (called under no-grad) after every epoch, and restoring the best epoch's weights.
pub(crate) fn fit_loop(
    phase: &str,
    vs: &VarStore,
    cfg: &TrainConfig,
    (n_train, n_valid): (i64, i64),
    mut batch_loss: impl FnMut(&Tensor) -> Result<Tensor>,
    mut valid_loss: impl FnMut() -> Result<f64>,
    progress: &mut dyn FnMut(&EpochLog),
) -> Result<FitReport> {
    cfg.validate()?;
    let mut adam = Adam::new(vs, AdamConfig { lr: cfg.lr, max_grad_norm: cfg.max_grad_norm, ..Default::default() });
    let snapshot = || -> Result<Vec<(String, Tensor)>> {
        let mut vars: Vec<_> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars.into_iter().map(|(k, v)| Ok((k, v.f_detach_copy()?))).collect()
    };
    let mut validate = || -> Result<f64> {
        let _no_grad = tch::no_grad_guard();
        valid_loss()
    };

    let first = validate()?;
    let mut best = (0usize, first, snapshot()?);
    let mut history = vec![EpochLog {
        phase: phase.into(),
        epoch: 0,
        train_loss: None,
        valid_loss: first,
        best_valid_loss: first,
        improved: true,
        grad_updates: 0,
    }];
    progress(&history[0]);
    let batch = cfg.batch_size as i64;
    let mut since_best = 0;
    let mut stopped_early = false;
    for epoch in 1..=cfg.max_epochs {
        let order = Tensor::f_randperm(n_train, (Kind::Int64, vs.device()))?;
        let (mut total, mut updates) = (0.0, 0);
        for start in (0..n_train).step_by(batch as usize) {
            let len = batch.min(n_train - start);
            let loss = batch_loss(&order.f_narrow(0, start, len)?)?;
            let value = loss.f_double_value(&[])?;
            if !value.is_finite() {
                return Err(DenoiseError::Diverged { phase: phase.into(), epoch, loss: value });
            }
            adam.backward_step(&loss)?;
            total += value * len as f64;
            updates += 1;
        }
        let valid = validate()?;
        let improved = valid < best.1;
        if improved {
            best = (epoch, valid, snapshot()?);
            since_best = 0;
        } else {
            since_best += 1;
        }
        history.push(EpochLog {
            phase: phase.into(),
            epoch,
            train_loss: Some(total / n_train as f64),
            valid_loss: valid,
            best_valid_loss: best.1,
            improved,
            grad_updates: updates,
        });
        progress(history.last().expect("just pushed"));
        if since_best >= cfg.patience {
            stopped_early = epoch < cfg.max_epochs;
            break;
        }
    }
    // Put the best epoch's weights back.
    let vars = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, saved) in &best.2 {
            let mut target = vars[name].shallow_clone();
            target.f_copy_(saved)?;
        }
        Ok(())
    })?;
    Ok(FitReport {
        phase: phase.into(),
        epochs: history.len() - 1,
        best_epoch: best.0,
        best_valid_loss: best.1,
        stopped_early,
        train_rows: n_train,
        valid_rows: n_valid,
        history,
    })
}

/// Checks a training or validation matrix: 2-D, `width` columns, at least one row, float. Returns it as a
/// contiguous f32 tensor (the kind every network here computes in).
pub(crate) fn check_data(what: &str, data: &Tensor, width: i64) -> Result<Tensor> {
    if !data.defined() {
        return Err(DenoiseError::Data(format!("{what}: undefined tensor")));
    }
    let size = data.size();
    if size.len() != 2 || size[1] != width || size[0] < 1 {
        return Err(DenoiseError::Data(format!("{what}: expected a non-empty [N, {width}] matrix, got {size:?}")));
    }
    if !data.is_floating_point() {
        return Err(DenoiseError::Data(format!("{what}: expected floating-point states, got {:?}", data.kind())));
    }
    let data = data.f_to_kind(Kind::Float)?.f_contiguous()?.f_detach()?;
    let finite = data.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0;
    if !finite {
        return Err(DenoiseError::Data(format!("{what}: contains NaN or infinite values")));
    }
    Ok(data)
}

/// The column count of a `[N, width]` training matrix (checked in full by [`check_data`]).
pub(crate) fn data_width(what: &str, data: &Tensor) -> Result<i64> {
    if !data.defined() || data.dim() != 2 {
        return Err(DenoiseError::Data(format!("{what}: expected an [N, width] matrix")));
    }
    Ok(data.size()[1])
}

/// Evaluates `f` on row chunks of `n` rows and returns the row-weighted mean of its per-chunk means: validation
/// and teacher targets over a large split without materialising one huge batch.
pub(crate) fn chunked_mean(n: i64, mut f: impl FnMut(i64, i64) -> Result<f64>) -> Result<f64> {
    const CHUNK: i64 = 8192;
    let mut total = 0.0;
    for start in (0..n).step_by(CHUNK as usize) {
        let len = CHUNK.min(n - start);
        total += f(start, len)? * len as f64;
    }
    Ok(total / n as f64)
}
