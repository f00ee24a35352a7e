//! Adam with PyTorch's exact update, whose state lives in tensors we can checkpoint (tch's optimizer keeps
//! its moments inside libtorch where they cannot be saved, which would make resumed runs diverge).
//!
//! For each parameter p with gradient g at step t:
//! m <- β1 m + (1-β1) g;  v <- β2 v + (1-β2) g²;
//! p <- p - (lr / (1-β1^t)) · m / (sqrt(v) / sqrt(1-β2^t) + ε)      (torch.optim.Adam, amsgrad off)

use crate::Result;
use tch::nn::VarStore;
use tch::Tensor;

/// Adam hyper-parameters (PyTorch defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Optional global gradient-norm clip (PPO's `max_grad_norm`).
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, max_grad_norm: None }
    }
}

/// Adam over the trainable variables of one var store.
#[derive(Debug)]
pub struct Adam {
    pub cfg: AdamConfig,
    names: Vec<String>,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: i64,
}

impl Adam {
    /// Tracks every trainable variable of `vs`, in name order.
    pub fn new(vs: &VarStore, cfg: AdamConfig) -> Self {
        Self::over(vs.variables().into_iter().collect(), cfg)
    }

    /// Tracks the trainable ones of `vars` (named as in their var store), in name order: one optimiser for a
    /// part of a var store, e.g. one of two networks that must not step each other.
    pub fn over(vars: Vec<(String, Tensor)>, cfg: AdamConfig) -> Self {
        let mut vars: Vec<(String, Tensor)> = vars.into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars.iter().map(|(_, t)| t.zeros_like()).collect();
        let v = vars.iter().map(|(_, t)| t.zeros_like()).collect();
        let (names, params) = vars.into_iter().unzip();
        Self { cfg, names, params, m, v, step: 0 }
    }

    /// Zeroes gradients, back-propagates `loss`, optionally clips, and applies one Adam step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        for p in &mut self.params {
            p.zero_grad();
        }
        loss.f_backward()?;
        if let Some(max) = self.cfg.max_grad_norm {
            self.clip_grad_norm(max)?;
        }
        self.step += 1;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2 = 1.0 - b2.powi(self.step as i32);
        let step_size = self.cfg.lr / bc1;
        let bc2_sqrt = bc2.sqrt();
        let eps = self.cfg.eps;
        tch::no_grad(|| -> Result<()> {
            for ((p, m), v) in self.params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.f_lerp_(&g, 1.0 - b1)?;
                let _ = v.f_mul_scalar_(b2)?.f_addcmul_(&g, &(&g * (1.0 - b2)))?;
                let mut denom = v.f_sqrt()?;
                let _ = denom.f_div_scalar_(bc2_sqrt)?.f_add_scalar_(eps)?;
                let _ = p.f_addcdiv_(&(&*m * -step_size), &denom)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    fn clip_grad_norm(&mut self, max: f64) -> Result<()> {
        let norms: Vec<Tensor> =
            self.params.iter().map(|p| p.grad()).filter(|g| g.defined()).map(|g| g.norm()).collect();
        if norms.is_empty() {
            return Ok(());
        }
        let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
        let coef = max / (total + 1e-6);
        if coef < 1.0 {
            tch::no_grad(|| -> Result<()> {
                for p in &self.params {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.f_mul_scalar_(coef)?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The optimizer state as named tensors (`prefix/m/<var>`, `prefix/v/<var>`, `prefix/step`).
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{prefix}/step"), Tensor::from(self.step))];
        for (i, name) in self.names.iter().enumerate() {
            out.push((format!("{prefix}/m/{name}"), self.m[i].shallow_clone()));
            out.push((format!("{prefix}/v/{name}"), self.v[i].shallow_clone()));
        }
        out
    }

    /// Restores the state written by [`Adam::state`].
    pub fn restore(&mut self, prefix: &str, tensors: &[(String, Tensor)]) -> Result<()> {
        let get = |key: String| {
            tensors.iter().find(|(n, _)| *n == key).map(|(_, t)| t.shallow_clone()).ok_or_else(|| {
                crate::NnError::Corrupt {
                    path: "<checkpoint>".into(),
                    detail: format!("missing optimizer tensor {key}"),
                }
            })
        };
        self.step = get(format!("{prefix}/step"))?.int64_value(&[]);
        tch::no_grad(|| -> Result<()> {
            for (i, name) in self.names.iter().enumerate() {
                self.m[i].f_copy_(&get(format!("{prefix}/m/{name}"))?)?;
                self.v[i].f_copy_(&get(format!("{prefix}/v/{name}"))?)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module, OptimizerConfig};
    use tch::{Device, Kind};

    fn setup() -> (VarStore, nn::Linear, Tensor, Tensor) {
        tch::manual_seed(5);
        let vs = VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root() / "lin", 3, 1, Default::default());
        let x = Tensor::randn([32, 3], (Kind::Float, Device::Cpu));
        let y = x.sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
        (vs, lin, x, y)
    }

    #[test]
    fn matches_torch_adam_within_float_rounding() {
        let _torch = crate::runtime::exclusive();
        let (vs_a, lin_a, x, y) = setup();
        let (vs_b, lin_b, _, _) = setup();
        let mut ours = Adam::new(&vs_a, AdamConfig::default());
        let mut theirs = nn::Adam::default().build(&vs_b, 1e-3).unwrap();
        for _ in 0..50 {
            ours.backward_step(&lin_a.forward(&x).mse_loss(&y, tch::Reduction::Mean)).unwrap();
            theirs.backward_step(&lin_b.forward(&x).mse_loss(&y, tch::Reduction::Mean));
        }
        let diff = (&vs_a.variables()["lin.weight"] - &vs_b.variables()["lin.weight"]).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "max |Δw| = {diff}");
    }

    #[test]
    fn state_round_trip_resumes_identically() {
        let _torch = crate::runtime::exclusive();
        let (vs_a, lin_a, x, y) = setup();
        let mut a = Adam::new(&vs_a, AdamConfig::default());
        for _ in 0..5 {
            a.backward_step(&lin_a.forward(&x).mse_loss(&y, tch::Reduction::Mean)).unwrap();
        }
        // Copy weights and optimizer state into a fresh store, then take 5 more steps on both.
        let (mut vs_b, lin_b, _, _) = setup();
        vs_b.copy(&vs_a).unwrap();
        let mut b = Adam::new(&vs_b, AdamConfig::default());
        b.restore("opt", &a.state("opt")).unwrap();
        for _ in 0..5 {
            a.backward_step(&lin_a.forward(&x).mse_loss(&y, tch::Reduction::Mean)).unwrap();
            b.backward_step(&lin_b.forward(&x).mse_loss(&y, tch::Reduction::Mean)).unwrap();
        }
        assert!(vs_a.variables()["lin.weight"].equal(&vs_b.variables()["lin.weight"]));
    }
}
