//! A plain MLP: Linear -> activation -> ... -> Linear.

use tch::nn::{self, Module};
use tch::Tensor;

/// Hidden-layer activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
    Silu,
}

/// A multi-layer perceptron with PyTorch's default initialisation (tch's `nn::linear`).
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
    activation: Activation,
}

impl Mlp {
    /// `sizes = [input, hidden..., output]`; at least two entries.
    pub fn new(vs: &nn::Path, sizes: &[i64], activation: Activation) -> Self {
        assert!(sizes.len() >= 2, "an MLP needs an input and an output size");
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| nn::linear(vs / format!("l{i}"), w[0], w[1], Default::default()))
            .collect();
        Self { layers, activation }
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(xs.shallow_clone(), |x, (i, layer)| {
            let y = layer.forward(&x);
            if i == last {
                y
            } else {
                match self.activation {
                    Activation::Relu => y.relu(),
                    Activation::Tanh => y.tanh(),
                    Activation::Silu => y.silu(),
                }
            }
        })
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
}
