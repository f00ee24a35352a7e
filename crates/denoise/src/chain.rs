//! The compiled reverse chain: a whole deterministic purification in three libtorch calls per network
//! evaluation, so DSRM at T = 10 costs tens of microseconds per decision instead of hundreds.
//!
//! Every sampler here (the DDPM posterior mean, DDIM) takes steps of one form,
//!
//! ```text
//! x_next = A_t · x + B_t · g(x, t),     g(x, t) = W_L σ(… σ(W_x x + W_c c + W_e e(t) + b_1) …) + b_L
//! ```
//!
//! where g is the network output (x̂_0 or ε̂), c the optional condition and e(t) the time embedding. With ε = 0 at
//! inference every A_t, B_t is known in advance, so the state can be carried as x = P · y + o with a scalar P and
//! a constant vector o, both precomputed:
//!
//! ```text
//! pre = [y | c] · [P W_x | W_c]ᵀ + (b_1 + W_e e(t) + W_x o)      one addmm, time embedding folded into the bias
//! h   = σ(pre)                                                   one in-place activation
//! y  ← y + h · (B_t / P') W_Lᵀ,  P' = A_t P,  o' = A_t o + B_t b_L   one addmm
//! ```
//!
//! The final step of an x̂_0 model has A = 0 (the chain returns B · x̂_0): it is one addmm with bias B · b_L.
//! Otherwise the chain ends with x = P · y + o. The start is folded in the same way: x_{T'} = √ᾱ_{T'} o_t is
//! P = √ᾱ_{T'}, y = o_t, so the observed state enters the first addmm as it is; a noise start is P = 1, y = 0
//! (plus the noise). The chain's input is `[y | c]`: c is what the network reads as its condition (the caller's
//! whole row o_t ⊕ h for a model conditioned on the observed state, so o_t may appear twice).
//!
//! [`crate::ddpm::Ddpm::purify_reference`] and [`crate::ddim::Ddim::purify_reference`] spell the same samplers
//! out step by step; tests hold the two within float rounding.

use crate::batch_one::BatchOneDenoiser;
use crate::{DenoiseError, Result};
use dsrm_nn::frozen_mlp::{activate, to_f32, FrozenLayer};
use dsrm_nn::mlp::{Activation, Layer};
use dsrm_nn::tch::{Kind, Tensor};

/// One reverse step: evaluate the network at level `t`, then x ← a · x + b · g(x, t).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Step {
    pub t: usize,
    pub a: f64,
    pub b: f64,
}

/// The trained network, opened up for folding (double precision, PyTorch's `[out, in]` layouts).
pub(crate) struct Folding {
    pub dim: i64,
    pub cond_dim: i64,
    /// First layer, state columns `[H1, d]`.
    pub w_x: Tensor,
    /// First layer, condition columns `[H1, c]`.
    pub w_c: Tensor,
    /// b_1 + W_e e(t) for t = 0..=T (index 0 unused), `[H1]` each.
    pub bias_t: Vec<Tensor>,
    /// Hidden-to-hidden layers, unchanged: (Wᵀ contiguous, b) in f32, as `addmm` takes them.
    pub middle: Vec<(Tensor, Tensor)>,
    /// Output layer `[d, H_L]` and `[d]`.
    pub w_out: Tensor,
    pub b_out: Tensor,
    pub activation: Activation,
}

impl Folding {
    /// Splits the first layer of an MLP over [x ⊕ c ⊕ e(t)] (`layers[0]` of width d + c + E); `emb_t(t)` is the
    /// time embedding after its learned layer, `[E]`, for t = 1..=T.
    pub fn new(
        layers: &[Layer],
        activation: Activation,
        (dim, cond_dim): (i64, i64),
        steps: usize,
        emb_t: impl Fn(usize) -> Result<Tensor>,
    ) -> Result<Self> {
        if layers.len() < 2 {
            return Err(DenoiseError::Config("the denoiser network needs at least one hidden layer".into()));
        }
        let dbl = |t: &Tensor| -> Result<Tensor> { Ok(t.f_detach()?.f_to_kind(Kind::Double)?) };
        let w1 = dbl(&layers[0].weight)?;
        let width = w1.size()[1];
        let w_x = w1.f_narrow(1, 0, dim)?;
        let w_c = w1.f_narrow(1, dim, cond_dim)?;
        let w_e = w1.f_narrow(1, dim + cond_dim, width - dim - cond_dim)?;
        let b1 = dbl(&layers[0].bias)?;
        let mut bias_t = vec![b1.shallow_clone()];
        for t in 1..=steps {
            let e = dbl(&emb_t(t)?)?;
            bias_t.push(b1.f_add(&w_e.f_mv(&e)?)?);
        }
        let last = layers.len() - 1;
        let middle = layers[1..last]
            .iter()
            .map(|l| Ok((l.weight.f_detach()?.f_tr()?.f_contiguous()?, l.bias.f_detach()?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            dim,
            cond_dim,
            w_x,
            w_c,
            bias_t,
            middle,
            w_out: dbl(&layers[last].weight)?,
            b_out: dbl(&layers[last].bias)?,
            activation,
        })
    }

    /// The one-step x̂_0 predictor at level `t` for an input observed at forward scale `scale` (x_t = scale · o_t;
    /// 0 for a noise start): the layers of a plain MLP over the caller's row [o_t ⊕ h], `[out, in]` layout, f32.
    /// With `observed_condition` the network's condition is that whole row, so its columns add onto the state's.
    /// The distilled student starts from it.
    pub fn one_step_layers(&self, t: usize, scale: f64, observed_condition: bool) -> Result<Vec<(Tensor, Tensor)>> {
        let float = |t: Tensor| -> Result<Tensor> { Ok(t.f_to_kind(Kind::Float)?.f_contiguous()?) };
        let first_w = if observed_condition {
            let pad = self.cond_dim - self.dim;
            self.w_c.f_add(&self.w_x.f_mul_scalar(scale)?.f_constant_pad_nd([0, pad])?)?
        } else {
            Tensor::f_cat(&[self.w_x.f_mul_scalar(scale)?, self.w_c.shallow_clone()], 1)?
        };
        let mut out = vec![(float(first_w)?, float(self.bias_t[t].shallow_clone())?)];
        for (wt, b) in &self.middle {
            out.push((wt.f_tr()?.f_contiguous()?, b.shallow_clone()));
        }
        out.push((float(self.w_out.shallow_clone())?, float(self.b_out.shallow_clone())?));
        Ok(out)
    }
}

/// One compiled step: `pre = bias1 + z · m1`, then either `z ← z + h · m_out` or, at the end of an x̂_0 chain,
/// the output `bias_out + h · m_out`.
#[derive(Debug)]
struct CompiledStep {
    m1: Tensor,
    bias1: Tensor,
    m_out: Tensor,
    bias_out: Option<Tensor>,
}

/// A purification compiled for fixed steps, start level and noise (see the module docs).
#[derive(Debug)]
pub(crate) struct CompiledChain {
    dim: i64,
    cond_dim: i64,
    /// √ᾱ at the forward level (the initial P).
    start_scale: f64,
    /// Standard deviation of the forward noise at that level (0: deterministic).
    noise_std: f64,
    steps: Vec<CompiledStep>,
    middle: Vec<(Tensor, Tensor)>,
    activation: Activation,
    /// (P, o) when the chain does not end on an x̂_0 step.
    finish: Option<(f64, Tensor)>,
}

impl CompiledChain {
    pub fn new(fold: &Folding, start_scale: f64, noise_std: f64, steps: &[Step]) -> Result<Self> {
        let float = |t: Tensor| -> Result<Tensor> { Ok(t.f_to_kind(Kind::Float)?.f_contiguous()?) };
        let (d, c) = (fold.dim, fold.cond_dim);
        let hidden_out = fold.w_out.size()[1];
        let w_x_t = fold.w_x.f_tr()?;
        let w_c_t = fold.w_c.f_tr()?;
        let w_out_t = fold.w_out.f_tr()?;
        let mut p = start_scale;
        let mut o = Tensor::f_zeros([d], (Kind::Double, fold.w_x.device()))?;
        let mut compiled = Vec::with_capacity(steps.len());
        let mut finished = false;
        for (i, step) in steps.iter().enumerate() {
            let bias = fold
                .bias_t
                .get(step.t)
                .filter(|_| step.t >= 1)
                .ok_or_else(|| DenoiseError::Config(format!("step at level {} outside the schedule", step.t)))?;
            let m1 = Tensor::f_cat(&[w_x_t.f_mul_scalar(p)?, w_c_t.shallow_clone()], 0)?;
            let bias1 = bias.f_add(&fold.w_x.f_mv(&o)?)?;
            if i + 1 == steps.len() && step.a == 0.0 {
                compiled.push(CompiledStep {
                    m1: float(m1)?,
                    bias1: float(bias1)?,
                    m_out: float(w_out_t.f_mul_scalar(step.b)?)?,
                    bias_out: Some(float(fold.b_out.f_mul_scalar(step.b)?)?),
                });
                finished = true;
                break;
            }
            let p_next = step.a * p;
            if !(p_next.is_finite() && p_next > 0.0) {
                return Err(DenoiseError::Config(format!("reverse step at t = {} has coefficient {}", step.t, step.a)));
            }
            let zeros = Tensor::f_zeros([hidden_out, c], (Kind::Double, fold.w_x.device()))?;
            let m_out = Tensor::f_cat(&[w_out_t.f_mul_scalar(step.b / p_next)?, zeros], 1)?;
            compiled.push(CompiledStep { m1: float(m1)?, bias1: float(bias1)?, m_out: float(m_out)?, bias_out: None });
            o = o.f_mul_scalar(step.a)?.f_add(&fold.b_out.f_mul_scalar(step.b)?)?;
            p = p_next;
        }
        Ok(Self {
            dim: d,
            cond_dim: c,
            start_scale,
            noise_std,
            steps: compiled,
            middle: fold.middle.iter().map(|(w, b)| (w.shallow_clone(), b.shallow_clone())).collect(),
            activation: fold.activation,
            finish: if finished { None } else { Some((p, float(o)?)) },
        })
    }

    /// Network evaluations per purification.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether purification adds forward noise (then it needs an `eps`).
    pub fn is_stochastic(&self) -> bool {
        self.noise_std > 0.0
    }

    /// Purifies `states` (`[B, d + c]`, f32, on the chain's device, already checked). `eps` (`[B, d]`) is the
    /// forward noise, read only when the chain is stochastic. Call under no-grad.
    pub fn run(&self, states: &Tensor, eps: Option<&Tensor>) -> Result<Tensor> {
        let mut z = match eps.filter(|_| self.is_stochastic()) {
            // x_{T'} = √ᾱ o + σ ε, i.e. y = o + (σ / √ᾱ) ε; the condition columns get no noise.
            Some(eps) => states
                .f_add(&eps.f_mul_scalar(self.noise_std / self.start_scale)?.f_constant_pad_nd([0, self.cond_dim])?)?,
            None => states.shallow_clone(),
        };
        // The first update must not write into the caller's tensor.
        let mut owned = eps.is_some() && self.is_stochastic();
        for step in &self.steps {
            let mut h = step.bias1.f_addmm(&z, &step.m1)?;
            self.activation.apply_(&mut h)?;
            for (wt, b) in &self.middle {
                h = b.f_addmm(&h, wt)?;
                self.activation.apply_(&mut h)?;
            }
            if let Some(bias_out) = &step.bias_out {
                return Ok(bias_out.f_addmm(&h, &step.m_out)?);
            }
            if owned {
                let _ = z.f_addmm_(&h, &step.m_out)?;
            } else {
                z = z.f_addmm(&h, &step.m_out)?;
                owned = true;
            }
        }
        let (p, o) = self.finish.as_ref().expect("a chain that does not end on an x̂_0 step keeps (P, o)");
        let y = if self.cond_dim > 0 { z.f_narrow(1, 0, self.dim)? } else { z };
        Ok(y.f_mul_scalar(*p)?.f_add(o)?)
    }
}

impl CompiledChain {
    /// The chain one state at a time without libtorch (`Denoiser::batch_one`), for a deterministic chain;
    /// `None` for a stochastic one (the caller keeps libtorch). The caller's row is the chain's input as it is,
    /// or, with `observed_condition`, its first d values (the start y = o_t) followed by the whole row (the
    /// network's condition), as `Ddpm::chain_input` builds it for the observed start.
    pub fn batch_one(&self, observed_condition: bool) -> Result<Option<ChainBatchOne>> {
        if self.is_stochastic() {
            return Ok(None);
        }
        let steps = self
            .steps
            .iter()
            .map(|s| {
                let bias_out = s.bias_out.as_ref().map(to_f32).transpose()?;
                Ok((
                    FrozenLayer::from_columns(&s.m1, Some(&s.bias1))?,
                    FrozenLayer::from_columns(&s.m_out, None)?,
                    bias_out,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let middle = self
            .middle
            .iter()
            .map(|(wt, b)| FrozenLayer::from_columns(wt, Some(b)))
            .collect::<std::result::Result<_, _>>()?;
        let finish = match &self.finish {
            Some((p, o)) => Some((*p as f32, to_f32(o)?)),
            None => None,
        };
        let (dim, width) = (self.dim as usize, (self.dim + self.cond_dim) as usize);
        let row = if observed_condition { width - dim } else { width };
        Ok(Some(ChainBatchOne {
            dim,
            row,
            width,
            steps,
            middle,
            activation: self.activation,
            finish,
            z: vec![],
            h: vec![],
            h2: vec![],
        }))
    }
}

/// [`CompiledChain::run`] on one state, in `f32` without libtorch (the same steps; rounding differs).
pub(crate) struct ChainBatchOne {
    dim: usize,
    /// Width of the caller's row: `width`, or `width − dim` when the chain reads [o_t | row].
    row: usize,
    /// Width of the chain's input.
    width: usize,
    /// Per step: `pre = bias1 + z · m1`, the output map `m_out`, and the output bias of a final x̂_0 step.
    steps: Vec<(FrozenLayer, FrozenLayer, Option<Vec<f32>>)>,
    middle: Vec<FrozenLayer>,
    activation: Activation,
    finish: Option<(f32, Vec<f32>)>,
    z: Vec<f32>,
    h: Vec<f32>,
    h2: Vec<f32>,
}

impl BatchOneDenoiser for ChainBatchOne {
    fn input_dim(&self) -> usize {
        self.row
    }

    fn output_dim(&self) -> usize {
        self.dim
    }

    fn purify(&mut self, input: &[f32], out: &mut [f32]) -> Result<()> {
        if input.len() != self.row || out.len() != self.dim {
            return Err(DenoiseError::Shape(format!(
                "the chain reads {} values and writes {}: got {} and {}",
                self.row,
                self.dim,
                input.len(),
                out.len()
            )));
        }
        self.z.clear();
        if self.row < self.width {
            self.z.extend_from_slice(&input[..self.dim]);
        }
        self.z.extend_from_slice(input);
        for (first, m_out, bias_out) in &self.steps {
            self.h.resize(first.n_out(), 0.0);
            first.apply(&self.z, &mut self.h);
            activate(self.activation, &mut self.h);
            for layer in &self.middle {
                self.h2.resize(layer.n_out(), 0.0);
                layer.apply(&self.h, &mut self.h2);
                activate(self.activation, &mut self.h2);
                std::mem::swap(&mut self.h, &mut self.h2);
            }
            if let Some(bias) = bias_out {
                out.copy_from_slice(bias);
                m_out.accumulate(&self.h, out);
                return Ok(());
            }
            m_out.accumulate(&self.h, &mut self.z);
        }
        let (p, o) = self.finish.as_ref().ok_or_else(|| DenoiseError::Config("a chain without an end".into()))?;
        for ((x, &y), &b) in out.iter_mut().zip(&self.z[..self.dim]).zip(o) {
            *x = y * p + b;
        }
        Ok(())
    }
}

/// ε ~ N(0, I), `[B, d]`, as a pure function of (`seed`, row content): a state gets the same noise whatever batch
/// it arrives in and however often it is purified, so stochastic purification stays reproducible without
/// touching libtorch's process-global generator. (SplitMix64 keyed by an FNV-1a hash of the row's bits,
/// Box–Muller for the normals.)
pub(crate) fn keyed_normal(states: &Tensor, dim: i64, seed: u64) -> Result<Tensor> {
    let (rows, hashes) = row_hashes(states)?;
    let mut out = Vec::with_capacity((rows * dim) as usize);
    for hash in hashes {
        let mut state = splitmix64(seed ^ hash);
        let mut uniform = || {
            state = splitmix64(state);
            // 53 random bits -> (0, 1].
            ((state >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64)
        };
        let mut k = 0;
        while k < dim {
            let (u1, u2) = (uniform(), uniform());
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = std::f64::consts::TAU * u2;
            out.push((r * theta.cos()) as f32);
            if k + 1 < dim {
                out.push((r * theta.sin()) as f32);
            }
            k += 2;
        }
    }
    Ok(Tensor::f_from_slice(&out)?.f_view([rows, dim])?.f_to_device(states.device())?)
}

/// One uniform draw in [0, 1) per row, as a pure function of (`seed`, row content) like [`keyed_normal`].
pub(crate) fn keyed_uniform(states: &Tensor, seed: u64) -> Result<Vec<f64>> {
    let (_, hashes) = row_hashes(states)?;
    Ok(hashes.into_iter().map(|h| (splitmix64(seed ^ h) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)).collect())
}

/// The number of rows and an FNV-1a hash of each row's bits.
fn row_hashes(states: &Tensor) -> Result<(i64, Vec<u64>)> {
    let size = states.size();
    let (rows, width) = (size[0], size[1]);
    let values = Vec::<f32>::try_from(states.f_detach()?.f_contiguous()?.f_view([-1])?)?;
    let hashes = values
        .chunks(width.max(1) as usize)
        .map(|row| {
            let mut hash = 0xcbf2_9ce4_8422_2325u64;
            for v in row {
                for byte in v.to_bits().to_le_bytes() {
                    hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
            hash
        })
        .collect();
    Ok((rows, hashes))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
