//! The network every off-policy learner builds on: an MLP from the tracker's state to one score per catalogue
//! item (Q-values, policy logits or imitation logits), tianshou's `Net(state_dim, hidden_sizes, n_items)`
//! (Linear-ReLU per hidden layer, a linear output).
//!
//! A [`ScoreNet`] lives under a name in a [`VarStore`] the agent owns, so several networks that one
//! optimiser trains together (SAC's twin critics) share a store, and target networks are a second store
//! with the same names, updated by [`soft_update`]. [`FrozenNet`] is a snapshot's own copy.

use crate::scored_policy::Scorer;
use crate::{AgentError, Result};
use dsrm_nn::mlp::{Activation, Mlp};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Tensor};

/// State -> `[B, n_out]` scores; its weights live in a var store under `name`.
#[derive(Debug)]
pub struct ScoreNet {
    name: String,
    net: Mlp,
    state_dim: i64,
    n_out: i64,
    hidden: Vec<i64>,
}

impl ScoreNet {
    /// Adds the network to `vs` under `name`, with PyTorch's default initialisation (consumes libtorch's
    /// generator: seed it first).
    pub fn new(vs: &VarStore, name: &str, state_dim: i64, hidden: &[i64], n_out: i64) -> Result<Self> {
        if state_dim <= 0 || n_out <= 0 || hidden.iter().any(|&h| h <= 0) {
            return Err(AgentError::Config(format!(
                "network sizes must be positive (state {state_dim}, hidden {hidden:?}, outputs {n_out})"
            )));
        }
        let mut sizes = vec![state_dim];
        sizes.extend_from_slice(hidden);
        sizes.push(n_out);
        let net = Mlp::try_new(&(vs.root() / name), &sizes, Activation::Relu)?;
        Ok(Self { name: name.to_string(), net, state_dim, n_out, hidden: hidden.to_vec() })
    }

    /// Input width.
    pub fn state_dim(&self) -> i64 {
        self.state_dim
    }

    /// Output width.
    pub fn n_out(&self) -> i64 {
        self.n_out
    }

    /// `[B, n_out]` scores of `[B, state_dim]` states.
    pub fn forward(&self, states: &Tensor) -> Result<Tensor> {
        Ok(self.net.try_forward(states)?)
    }

    /// A copy with its own store, holding this network's current weights from `vs` (its store).
    pub fn freeze(&self, vs: &VarStore) -> Result<FrozenNet> {
        let own = VarStore::new(vs.device());
        let net = ScoreNet::new(&own, &self.name, self.state_dim, &self.hidden, self.n_out)?;
        soft_update(&own, vs, 1.0)?;
        Ok(FrozenNet { _vs: own, net })
    }
}

/// θ_target <- (1 − τ) θ_target + τ θ for every variable of `target`, matched by name in `source`
/// (τ = 1 copies).
pub fn soft_update(target: &VarStore, source: &VarStore, tau: f64) -> Result<()> {
    let from = source.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, mut t) in target.variables() {
            let s = from.get(&name).ok_or_else(|| AgentError::Config(format!("no source variable {name}")))?;
            if tau >= 1.0 {
                t.f_copy_(s)?;
            } else {
                let _ = t.f_lerp_(s, tau)?;
            }
        }
        Ok(())
    })
}

/// A network with a store of its own (an evaluation snapshot's).
#[derive(Debug)]
pub struct FrozenNet {
    _vs: VarStore,
    /// The network.
    pub net: ScoreNet,
}

impl Scorer for FrozenNet {
    fn scores(&self, states: &Tensor) -> Result<Tensor> {
        self.net.forward(states)
    }
}
