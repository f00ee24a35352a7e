//! Dense layer stacks (Linear → activation → … → Linear) whose weights stay in reach.
//!
//! dsrm-nn's `Mlp` hides its layers and uses PyTorch's default initialisation. The denoisers need more: DiffRec's
//! initialisation (`DiffRec/models/DNN.py`: weights N(0, 2/(fan_in + fan_out)), biases N(0, 0.001²)), named
//! tensors for checkpoints, a way to rebuild a loaded model from those names without drawing random numbers
//! (libtorch's generator is process-global, and loading must not shift anyone's seeded stream), and direct
//! access to the weights so the compiled reverse chain ([`crate::chain`]) can fold them.

use crate::{DenoiseError, Result};
use dsrm_nn::tch::nn::{Init, Path};
use dsrm_nn::tch::Tensor;
use serde::{Deserialize, Serialize};

/// Hidden-layer nonlinearity. DiffRec (and so DSRM) uses tanh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Tanh,
    Relu,
    Silu,
}

impl Activation {
    pub(crate) fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Tanh => x.f_tanh()?,
            Self::Relu => x.f_relu()?,
            Self::Silu => x.f_silu()?,
        })
    }

    /// In place, on a tensor the caller owns (the fast inference paths).
    pub(crate) fn apply_(self, x: &mut Tensor) -> Result<()> {
        let _ = match self {
            Self::Tanh => x.f_tanh_()?,
            Self::Relu => x.f_relu_()?,
            Self::Silu => x.f_silu_()?,
        };
        Ok(())
    }
}

/// One affine layer y = x Wᵀ + b.
#[derive(Debug)]
pub(crate) struct Layer {
    /// `[out, in]`, PyTorch's layout.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Tensor,
}

/// Linear layers with `activation` between them and none after the last.
#[derive(Debug)]
pub(crate) struct Dense {
    layers: Vec<Layer>,
    activation: Activation,
}

impl Dense {
    /// A trainable stack `sizes = [input, hidden…, output]` registered under `path` (`l{i}.weight`, `l{i}.bias`),
    /// with DiffRec's initialisation drawn from libtorch's generator.
    pub fn new(path: &Path, sizes: &[i64], activation: Activation) -> Result<Self> {
        check_sizes(sizes)?;
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| -> Result<Layer> {
                let (fan_in, fan_out) = (w[0], w[1]);
                let stdev = (2.0 / (fan_in + fan_out) as f64).sqrt();
                let sub = path.sub(format!("l{i}"));
                Ok(Layer {
                    weight: sub.f_var("weight", &[fan_out, fan_in], Init::Randn { mean: 0.0, stdev })?,
                    bias: sub.f_var("bias", &[fan_out], Init::Randn { mean: 0.0, stdev: 0.001 })?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers, activation })
    }

    /// Rebuilds a stack from the tensors [`named`](Self::named) wrote under `prefix`, checking every shape.
    pub fn from_named(
        tensors: &[(String, Tensor)],
        prefix: &str,
        sizes: &[i64],
        activation: Activation,
    ) -> Result<Self> {
        check_sizes(sizes)?;
        let get = |name: String, shape: &[i64]| -> Result<Tensor> {
            let t = tensors
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| DenoiseError::Config(format!("checkpoint lacks tensor {name}")))?;
            if t.size() != shape {
                return Err(DenoiseError::Config(format!("tensor {name}: shape {:?}, expected {shape:?}", t.size())));
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
        Ok(Self { layers, activation })
    }

    /// A trainable copy of the stack registered under `path` (same names as [`new`](Self::new)); draws nothing
    /// from libtorch's generator.
    pub fn trainable_copy(&self, path: &Path) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| -> Result<Layer> {
                let sub = path.sub(format!("l{i}"));
                Ok(Layer { weight: sub.f_var_copy("weight", &l.weight)?, bias: sub.f_var_copy("bias", &l.bias)? })
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers, activation: self.activation })
    }

    /// The stack's tensors named `{prefix}.l{i}.weight|bias`, for checkpoints.
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

    /// A handle sharing the same weights (tensors are `Send` but not `Sync`, so sharing a trained model between
    /// denoisers goes through shallow clones, not references).
    pub fn shallow_clone(&self) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|l| Layer { weight: l.weight.shallow_clone(), bias: l.bias.shallow_clone() })
            .collect();
        Self { layers, activation: self.activation }
    }

    /// `[B, in] -> [B, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let last = self.layers.len() - 1;
        let mut h = x.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = h.f_linear(&layer.weight, Some(&layer.bias))?;
            if i != last {
                // In place when no graph is recorded (inference): one allocation fewer per layer.
                if h.requires_grad() {
                    h = self.activation.apply(&h)?;
                } else {
                    self.activation.apply_(&mut h)?;
                }
            }
        }
        Ok(h)
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    pub fn activation(&self) -> Activation {
        self.activation
    }
}

fn check_sizes(sizes: &[i64]) -> Result<()> {
    if sizes.len() < 2 || sizes.iter().any(|s| *s < 1) {
        return Err(DenoiseError::Config(format!("layer sizes {sizes:?}: need an input and an output, all >= 1")));
    }
    Ok(())
}
