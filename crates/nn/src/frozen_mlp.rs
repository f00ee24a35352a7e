//! One input at a time, on the CPU, without libtorch: a frozen copy of an [`Mlp`] for serving.
//!
//! At batch 1 a libtorch call costs a few microseconds of dispatch and allocation whatever its size, and a
//! decision of the serving path makes dozens of them (`docs/serving.md`, "Where the in-process time goes").
//! [`FrozenMlp`] holds the same weights as plain `f32` rows and evaluates
//!
//! ```text
//! h_0 = x
//! h_l = act(W_l h_{l-1} + b_l)     l = 1 … L   (no act after the last layer unless the MLP has one there)
//! ```
//!
//! into caller-owned buffers, so a decision allocates nothing. A layer adds up its inputs' scaled weight
//! columns (vectorised along the outputs with AVX2 + FMA where the CPU has them, detected at run time; plain
//! code otherwise), skipping inputs at 0, so its sums run in another order than libtorch's and the results
//! differ in the last bits, never more than rounding: the tests bound the difference. The training, evaluation and simulation paths keep libtorch; only
//! a server opts in (`EvalPolicy::prepare_serving`).

use crate::mlp::{Activation, Mlp};
use crate::{NnError, Result};
use tch::{Device, Kind, Tensor};

/// A dense layer with its weight stored by input: `columns[k * n_out .. (k + 1) * n_out]` is input `k`'s column,
/// so `W x + b` is a sum of scaled columns, vectorised along the outputs (no horizontal sums, however short the
/// input), and inputs at exactly 0 (ReLU's) cost nothing.
#[derive(Debug, Clone)]
pub struct FrozenLayer {
    columns: Vec<f32>,
    bias: Vec<f32>,
    n_in: usize,
}

impl FrozenLayer {
    /// The `[out, in]` weight and `[out]` bias (any device or float kind), copied.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let size = weight.size();
        let [n_out, n_in] = size[..] else {
            return Err(NnError::Shape(format!("a layer's weight must be [out, in], got {size:?}")));
        };
        let columns = to_f32(&weight.f_transpose(0, 1)?)?;
        let bias = match bias {
            Some(b) if b.size() == [n_out] => to_f32(b)?,
            Some(b) => return Err(NnError::Shape(format!("bias {:?} for a weight {size:?}", b.size()))),
            None => vec![0.0; n_out as usize],
        };
        Ok(Self { columns, bias, n_in: n_in as usize })
    }

    /// A layer from its weight stored by input, `[in, out]` (as `addmm(b, x, m)` takes it), and bias.
    pub fn from_columns(columns: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        Self::new(&columns.f_transpose(0, 1)?, bias)
    }

    /// `out += W x` (no bias).
    pub fn accumulate(&self, x: &[f32], out: &mut [f32]) {
        debug_assert!(x.len() == self.n_in && out.len() == self.n_out());
        if self.bias.is_empty() {
            return;
        }
        let axpy = axpy_fn();
        for (&a, column) in x.iter().zip(self.columns.chunks_exact(self.bias.len())) {
            if a != 0.0 {
                axpy(a, column, out);
            }
        }
    }

    /// Input width.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Output width.
    pub fn n_out(&self) -> usize {
        self.bias.len()
    }

    /// `out = W x + b`.
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        out.copy_from_slice(&self.bias);
        self.accumulate(x, out);
    }
}

/// A frozen [`Mlp`] (see the module docs).
#[derive(Debug, Clone)]
pub struct FrozenMlp {
    layers: Vec<FrozenLayer>,
    activation: Activation,
    activate_last: bool,
    widest: usize,
}

impl FrozenMlp {
    /// A copy of `mlp`'s current weights.
    pub fn of(mlp: &Mlp) -> Result<Self> {
        let layers: Vec<FrozenLayer> =
            mlp.layers().iter().map(|l| FrozenLayer::new(&l.weight, Some(&l.bias))).collect::<Result<_>>()?;
        if let Some(w) = layers.windows(2).find(|w| w[0].n_out() != w[1].n_in) {
            return Err(NnError::Shape(format!("layers of widths {} then {} do not chain", w[0].n_out(), w[1].n_in)));
        }
        let widest = layers.iter().map(FrozenLayer::n_out).max().unwrap_or(0);
        Ok(Self { layers, activation: mlp.activation(), activate_last: mlp.activates_last(), widest })
    }

    /// Input width (0 for an MLP with no layer, which is the identity).
    pub fn input_dim(&self) -> usize {
        self.layers.first().map_or(0, FrozenLayer::n_in)
    }

    /// Output width.
    pub fn output_dim(&self) -> usize {
        self.layers.last().map_or(0, FrozenLayer::n_out)
    }

    /// `out = mlp(x)`; `scratch` is reused between calls (two hidden-width buffers). A wrong width is an error.
    pub fn forward(&self, x: &[f32], scratch: &mut Scratch, out: &mut [f32]) -> Result<()> {
        let Some(last) = self.layers.len().checked_sub(1) else {
            return Err(NnError::Shape("a frozen MLP needs at least one layer".into()));
        };
        if x.len() != self.input_dim() || out.len() != self.output_dim() {
            return Err(NnError::Shape(format!(
                "frozen MLP {} -> {}: got an input of {} and an output of {}",
                self.input_dim(),
                self.output_dim(),
                x.len(),
                out.len()
            )));
        }
        scratch.a.resize(self.widest, 0.0);
        scratch.b.resize(self.widest, 0.0);
        let (mut a, mut b) = (std::mem::take(&mut scratch.a), std::mem::take(&mut scratch.b));
        for (i, layer) in self.layers.iter().enumerate() {
            let input: &[f32] = if i == 0 { x } else { &a[..layer.n_in] };
            let target: &mut [f32] = if i == last { &mut *out } else { &mut b[..layer.n_out()] };
            layer.apply(input, target);
            if i < last || self.activate_last {
                activate(self.activation, target);
            }
            if i < last {
                std::mem::swap(&mut a, &mut b);
            }
        }
        (scratch.a, scratch.b) = (a, b);
        Ok(())
    }
}

/// Reusable hidden-layer buffers of [`FrozenMlp::forward`].
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
}

/// A tensor's values as `f32` (copied to the CPU).
pub fn to_f32(t: &Tensor) -> Result<Vec<f32>> {
    let flat = t.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?.f_flatten(0, -1)?;
    Ok(Vec::<f32>::try_from(&flat)?)
}

/// The activation of every entry of `x`, in place.
pub fn activate(activation: Activation, x: &mut [f32]) {
    match activation {
        Activation::Tanh => x.iter_mut().for_each(|v| *v = v.tanh()),
        Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Silu => x.iter_mut().for_each(|v| *v /= 1.0 + (-*v).exp()),
    }
}

type AxpyFn = fn(f32, &[f32], &mut [f32]);

/// The fastest `y += a x` this CPU runs (chosen once).
fn axpy_fn() -> AxpyFn {
    static CHOSEN: std::sync::OnceLock<AxpyFn> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return |a, x, y| {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                unsafe { axpy_avx2(a, x, y) }
            };
        }
        axpy::<false>
    })
}

/// `y += a x`; `FUSED`: with fused multiply-adds (only where the CPU has them: elsewhere `mul_add` is a slow
/// library call).
#[inline(always)]
fn axpy<const FUSED: bool>(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = if FUSED { a.mul_add(x, *y) } else { *y + a * x };
    }
}

/// [`axpy`] compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(a: f32, x: &[f32], y: &mut [f32]) {
    axpy::<true>(a, x, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::VarStore;

    fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
    }

    #[test]
    fn a_frozen_mlp_computes_what_the_libtorch_one_does() {
        tch::manual_seed(7);
        for (activation, sizes, last) in [
            (Activation::Relu, vec![35i64, 256, 64, 3327], false),
            (Activation::Tanh, vec![43, 256, 33], false),
            (Activation::Silu, vec![13, 9], true),
            (Activation::Tanh, vec![5, 7, 3], true),
        ] {
            let vs = VarStore::new(Device::Cpu);
            let mlp = if last {
                Mlp::hidden_stack(&vs.root(), &sizes, activation).unwrap()
            } else {
                Mlp::new(&vs.root(), &sizes, activation)
            };
            let frozen = FrozenMlp::of(&mlp).unwrap();
            assert_eq!((frozen.input_dim(), frozen.output_dim()), (sizes[0] as usize, *sizes.last().unwrap() as usize));
            let mut scratch = Scratch::default();
            for trial in 0..3 {
                let x = Tensor::randn([1, sizes[0]], (Kind::Float, Device::Cpu)) * (1.0 + trial as f64);
                let want = to_f32(&tch::no_grad(|| mlp.try_forward(&x)).unwrap()).unwrap();
                let mut got = vec![f32::NAN; frozen.output_dim()];
                frozen.forward(&to_f32(&x).unwrap(), &mut scratch, &mut got).unwrap();
                assert!(close(&got, &want, 1e-4), "{activation:?} {sizes:?}: {:?} vs {:?}", &got[..3], &want[..3]);
            }
            // A wrong width is an error, not a panic.
            let mut out = vec![0.0; frozen.output_dim()];
            assert!(frozen.forward(&vec![0.0; frozen.input_dim() + 1], &mut scratch, &mut out).is_err());
        }
    }

    #[test]
    fn the_vector_and_portable_axpys_agree() {
        let x: Vec<f32> = (0..67).map(|i| ((i * 37 % 11) as f32).sin()).collect();
        let y0: Vec<f32> = (0..67).map(|i| ((i * 13 % 7) as f32).cos()).collect();
        for n in [0, 1, 7, 8, 9, 64, 67] {
            let want: Vec<f32> = (0..n).map(|i| (f64::from(y0[i]) + 0.75 * f64::from(x[i])) as f32).collect();
            for f in [axpy::<false> as AxpyFn, axpy::<true>, axpy_fn()] {
                let mut y = y0[..n].to_vec();
                f(0.75, &x[..n], &mut y);
                assert!(close(&y, &want, 1e-6), "{n}");
            }
        }
    }
}
