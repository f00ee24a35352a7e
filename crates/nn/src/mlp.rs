//! The one multi-layer perceptron of the workspace: Linear -> activation -> ... -> Linear, with its weights in
//! reach. Every agent head, critic, world-model DNN and denoiser network is an [`Mlp`].
//!
//! * Initialisation: [`Mlp::new`] uses PyTorch's default (tch's `nn::linear`: Kaiming-uniform weights,
//!   uniform biases), as the anchors' tianshou networks do; [`Mlp::xavier_normal`] uses DiffRec's
//!   (`DiffRec/models/DNN.py`: weights N(0, 2/(fan_in + fan_out)), biases N(0, σ_b²)). Both draw layer by
//!   layer from libtorch's generator, so the same seed gives the same weights.
//! * [`Mlp::hidden_stack`]: the activation after the last layer too (tianshou's `Net` trunk under separate
//!   heads); with no hidden layer it is the identity.
//! * Checkpoint parts: [`Mlp::named`] / [`Mlp::from_named`] rebuild a network from named tensors without
//!   drawing random numbers (libtorch's generator is process-global, and loading must not shift anyone's
//!   seeded stream); [`Mlp::trainable_copy`] puts loaded weights into a var store to fine-tune them.

use crate::{NnError, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init, Module};
use tch::Tensor;

/// Hidden-layer activation (`"tanh"`, `"relu"`, `"silu"` in configs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// tanh (DiffRec's default).
    #[default]
    Tanh,
    /// ReLU (tianshou's `Net`).
    Relu,
    /// SiLU.
    Silu,
}

impl Activation {
    /// The activation of `x`, as a new tensor.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Tanh => x.f_tanh()?,
            Self::Relu => x.f_relu()?,
            Self::Silu => x.f_silu()?,
        })
    }

    /// The activation of `x`, in place (inference: no graph is recorded).
    pub fn apply_(self, x: &mut Tensor) -> Result<()> {
        let _ = match self {
            Self::Tanh => x.f_tanh_()?,
            Self::Relu => x.f_relu_()?,
            Self::Silu => x.f_silu_()?,
        };
        Ok(())
    }
}

/// One linear layer: `[out, in]` weight and `[out]` bias.
#[derive(Debug)]
pub struct Layer {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Tensor,
}

/// A multi-layer perceptron (see the module docs).
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<Layer>,
    activation: Activation,
    activate_last: bool,
}

fn check_sizes(sizes: &[i64], min_len: usize) -> Result<()> {
    if sizes.len() < min_len || sizes.iter().any(|s| *s < 1) {
        return Err(NnError::Shape(format!("layer sizes {sizes:?}: need an input and an output, all >= 1")));
    }
    Ok(())
}

impl Mlp {
    /// `sizes = [input, hidden..., output]` (at least two entries, all >= 1), PyTorch's default
    /// initialisation, variables `l{i}/weight` and `l{i}/bias` under `vs`. Panics on invalid sizes, like tch's
    /// constructors; [`Mlp::try_new`] returns the error instead.
    pub fn new(vs: &nn::Path, sizes: &[i64], activation: Activation) -> Self {
        match Self::try_new(vs, sizes, activation) {
            Ok(mlp) => mlp,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Mlp::new`], with invalid sizes as an error.
    pub fn try_new(vs: &nn::Path, sizes: &[i64], activation: Activation) -> Result<Self> {
        check_sizes(sizes, 2)?;
        Ok(Self { layers: torch_layers(vs, sizes), activation, activate_last: false })
    }

    /// The hidden layers of a trunk: `sizes = [input, hidden...]`, PyTorch's default initialisation, the
    /// activation after every layer (the last included). `sizes = [input]` is the identity.
    pub fn hidden_stack(vs: &nn::Path, sizes: &[i64], activation: Activation) -> Result<Self> {
        check_sizes(sizes, 1)?;
        Ok(Self { layers: torch_layers(vs, sizes), activation, activate_last: true })
    }

    /// DiffRec's initialisation: weights N(0, 2/(fan_in + fan_out)), biases N(0, `bias_std`²), variables
    /// `l{i}/weight` and `l{i}/bias` under `path`.
    pub fn xavier_normal(path: &nn::Path, sizes: &[i64], activation: Activation, bias_std: f64) -> Result<Self> {
        check_sizes(sizes, 2)?;
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| -> Result<Layer> {
                let (fan_in, fan_out) = (w[0], w[1]);
                let stdev = (2.0 / (fan_in + fan_out) as f64).sqrt();
                let sub = path.sub(format!("l{i}"));
                Ok(Layer {
                    weight: sub.f_var("weight", &[fan_out, fan_in], Init::Randn { mean: 0.0, stdev })?,
                    bias: sub.f_var("bias", &[fan_out], Init::Randn { mean: 0.0, stdev: bias_std })?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers, activation, activate_last: false })
    }

    /// Rebuilds a network from `named`'s `{prefix}.l{i}.weight` / `.bias` tensors (detached, shapes checked),
    /// drawing no random numbers.
    pub fn from_named(
        tensors: &[(String, Tensor)],
        prefix: &str,
        sizes: &[i64],
        activation: Activation,
    ) -> Result<Self> {
        check_sizes(sizes, 2)?;
        let get = |name: String, shape: &[i64]| -> Result<Tensor> {
            let t = tensors
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| NnError::Shape(format!("checkpoint lacks tensor {name}")))?;
            if t.size() != shape {
                return Err(NnError::Shape(format!("tensor {name}: shape {:?}, expected {shape:?}", t.size())));
            }
            Ok(t.f_detach()?)
        };
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| -> Result<Layer> {
                Ok(Layer {
                    weight: get(format!("{prefix}.l{i}.weight"), &[w[1], w[0]])?,
                    bias: get(format!("{prefix}.l{i}.bias"), &[w[1]])?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers, activation, activate_last: false })
    }

    /// A trainable copy of these weights as variables `l{i}/weight`, `l{i}/bias` under `path`.
    pub fn trainable_copy(&self, path: &nn::Path) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| -> Result<Layer> {
                let sub = path.sub(format!("l{i}"));
                Ok(Layer { weight: sub.f_var_copy("weight", &l.weight)?, bias: sub.f_var_copy("bias", &l.bias)? })
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers, activation: self.activation, activate_last: self.activate_last })
    }

    /// The weights as `{prefix}.l{i}.weight` / `.bias` (shallow clones), for checkpoints.
    pub fn named(&self, prefix: &str) -> Vec<(String, Tensor)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                [
                    (format!("{prefix}.l{i}.weight"), l.weight.shallow_clone()),
                    (format!("{prefix}.l{i}.bias"), l.bias.shallow_clone()),
                ]
            })
            .collect()
    }

    /// A handle sharing the same weights (tensors are `Send` but not `Sync`, so sharing a trained model goes
    /// through shallow clones, not references).
    pub fn shallow_clone(&self) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|l| Layer { weight: l.weight.shallow_clone(), bias: l.bias.shallow_clone() })
            .collect();
        Self { layers, activation: self.activation, activate_last: self.activate_last }
    }

    /// `[B, in] -> [B, out]`. The activation runs in place when no graph is recorded (inference).
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = self.layers.len();
        let mut h = x.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = h.f_linear(&layer.weight, Some(&layer.bias))?;
            if i + 1 < n || self.activate_last {
                if h.requires_grad() {
                    h = self.activation.apply(&h)?;
                } else {
                    self.activation.apply_(&mut h)?;
                }
            }
        }
        Ok(h)
    }

    /// The layers, first to last.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The hidden-layer activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Whether the activation also follows the last layer ([`Mlp::hidden_stack`]).
    pub fn activates_last(&self) -> bool {
        self.activate_last
    }
}

/// PyTorch's default initialisation, layer by layer (tch's `nn::linear`, which creates each layer's variables).
fn torch_layers(vs: &nn::Path, sizes: &[i64]) -> Vec<Layer> {
    sizes
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let l = nn::linear(vs / format!("l{i}"), w[0], w[1], Default::default());
            let bias = l.bs.expect("nn::linear has a bias by default");
            Layer { weight: l.ws, bias }
        })
        .collect()
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Tensor {
        match self.try_forward(xs) {
            Ok(y) => y,
            Err(e) => panic!("mlp: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::OptimizerConfig;
    use tch::{Device, Kind};

    #[test]
    fn mlp_learns_a_linear_map_and_is_seeded() {
        let _torch = crate::runtime::exclusive();
        let make = || {
            tch::manual_seed(3);
            let vs = nn::VarStore::new(Device::Cpu);
            let mlp = Mlp::new(&vs.root(), &[4, 16, 1], Activation::Relu);
            (vs, mlp)
        };
        let (vs, mlp) = make();
        let (_, mlp2) = make();
        let x = Tensor::randn([64, 4], (Kind::Float, Device::Cpu));
        assert!(mlp.forward(&x).equal(&mlp2.forward(&x)), "same seed, same initialisation");
        let y = x.sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
        let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
        let first = mlp.forward(&x).mse_loss(&y, tch::Reduction::Mean).double_value(&[]);
        for _ in 0..300 {
            let loss = mlp.forward(&x).mse_loss(&y, tch::Reduction::Mean);
            opt.backward_step(&loss);
        }
        let last = mlp.forward(&x).mse_loss(&y, tch::Reduction::Mean).double_value(&[]);
        assert!(last < first * 0.05, "loss {first} -> {last}");
    }

    #[test]
    fn named_weights_rebuild_the_same_function_and_bad_sizes_are_errors() {
        let _torch = crate::runtime::exclusive();
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let mlp = Mlp::xavier_normal(&vs.root(), &[3, 8, 2], Activation::Tanh, 0.001).unwrap();
        let back = Mlp::from_named(&mlp.named("net"), "net", &[3, 8, 2], Activation::Tanh).unwrap();
        let x = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
        assert!(mlp.try_forward(&x).unwrap().equal(&back.try_forward(&x).unwrap()));
        assert!(Mlp::from_named(&mlp.named("net"), "other", &[3, 8, 2], Activation::Tanh).is_err());
        assert!(Mlp::try_new(&vs.root(), &[3], Activation::Relu).is_err());
        let trunk = Mlp::hidden_stack(&(vs.root() / "t"), &[3], Activation::Relu).unwrap();
        assert!(trunk.try_forward(&x).unwrap().equal(&x), "no hidden layer: the identity");
        let relu = Mlp::hidden_stack(&(vs.root() / "r"), &[3, 4], Activation::Relu).unwrap();
        assert!(relu.try_forward(&x).unwrap().min().double_value(&[]) >= 0.0, "activated after the last layer");
    }
}
