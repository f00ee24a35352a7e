//! The networks of the on-policy agents, and the state tracker trained jointly with them.
//!
//! DORL's A2C (`run_Policy_Main.py`) builds tianshou's `Net(state_dim, hidden_sizes=[64, 64])` once and hands
//! it to both `Actor(net, n_items)` and `Critic(net)`: one **shared trunk** (Linear-ReLU per hidden layer,
//! ReLU after the last one too) with a linear policy head over the whole catalogue and a linear value head.
//! tianshou's `ActorCritic.parameters()` de-duplicates the shared trunk, so one Adam updates it from the summed
//! loss `actor + vf_coef * critic`. We keep that as the default (`shared_trunk = true`) for parity; a separate
//! critic trunk is an option, since sharing lets the value loss pull the policy's features.
//!
//! The state tracker has its *own* Adam (DORL's `optim_state`, [`crate::trained_tracker`]), stepped on the same
//! loss: gradients flow from the policy and value losses through the states into the tracker's embeddings.

use crate::learner::{Iteration, TrainingEnv};
use crate::rollout::{collect, Rollout, RolloutConfig};
use crate::trained_tracker::TrainedTracker;
use crate::update_stats::UpdateStats;
use crate::Result;
use dsrm_nn::checkpoint;
use dsrm_nn::mlp::{Activation, Mlp};
use dsrm_nn::optim::Adam;
use dsrm_nn::tch::nn::{self, VarStore};
use dsrm_nn::tch::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// Policy (logits over the catalogue) and value heads over the tracker's state.
#[derive(Debug)]
pub struct ActorCritic {
    /// Every parameter of the policy and value networks (the tracker's live in its own store).
    pub vs: VarStore,
    trunk: Mlp,
    /// `Some` when the critic has its own trunk (`shared_trunk = false`).
    critic_trunk: Option<Mlp>,
    actor: nn::Linear,
    critic: nn::Linear,
    state_dim: i64,
    n_items: i64,
    hidden: Vec<i64>,
}

/// tianshou's `Net` trunk: Linear-ReLU per hidden layer, ReLU after the last one too.
fn trunk(path: &nn::Path, state_dim: i64, hidden: &[i64]) -> Result<Mlp> {
    Ok(Mlp::hidden_stack(path, &[&[state_dim][..], hidden].concat(), Activation::Relu)?)
}

impl ActorCritic {
    /// Builds the networks with PyTorch's default initialisation (consumes libtorch's generator, so the
    /// caller seeds it first). `hidden` may be empty (linear heads directly on the state).
    pub fn new(state_dim: i64, n_items: i64, hidden: &[i64], shared_trunk: bool, device: Device) -> Result<Self> {
        if state_dim <= 0 || n_items <= 0 || hidden.iter().any(|&h| h <= 0) {
            return Err(crate::AgentError::Config(format!(
                "network sizes must be positive (state {state_dim}, items {n_items}, hidden {hidden:?})"
            )));
        }
        let vs = VarStore::new(device);
        let root = vs.root();
        let last = hidden.last().copied().unwrap_or(state_dim);
        let trunk_layers = trunk(&(&root / "trunk"), state_dim, hidden)?;
        let critic_trunk = if shared_trunk { None } else { Some(trunk(&(&root / "critic_trunk"), state_dim, hidden)?) };
        let actor = nn::linear(&root / "actor", last, n_items, Default::default());
        let critic = nn::linear(&root / "critic", last, 1, Default::default());
        Ok(Self { vs, trunk: trunk_layers, critic_trunk, actor, critic, state_dim, n_items, hidden: hidden.to_vec() })
    }

    /// An independent copy with the same weights (for evaluation snapshots).
    pub fn try_clone(&self) -> Result<Self> {
        let shared = self.critic_trunk.is_none();
        let mut copy = Self::new(self.state_dim, self.n_items, &self.hidden, shared, self.vs.device())?;
        copy.vs.copy(&self.vs)?;
        Ok(copy)
    }

    /// Input size (the tracker's state dimension).
    pub fn state_dim(&self) -> i64 {
        self.state_dim
    }

    /// Number of actions (catalogue items).
    pub fn n_items(&self) -> i64 {
        self.n_items
    }

    /// `[B, n_items]` logits and `[B]` values for `[B, state_dim]` states.
    pub fn forward(&self, states: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.trunk.try_forward(states)?;
        let logits = h.f_linear(&self.actor.ws, self.actor.bs.as_ref())?;
        let hv = match &self.critic_trunk {
            Some(critic) => critic.try_forward(states)?,
            None => h,
        };
        let values = hv.f_linear(&self.critic.ws, self.critic.bs.as_ref())?.f_squeeze_dim(-1)?;
        Ok((logits, values))
    }

    /// `[B, n_items]` logits only (evaluation).
    pub fn logits(&self, states: &Tensor) -> Result<Tensor> {
        Ok(self.trunk.try_forward(states)?.f_linear(&self.actor.ws, self.actor.bs.as_ref())?)
    }
}

/// One on-policy iteration shared by A2C and PPO: collect whole episodes with `net` (GAE(γ, λ) computed), then
/// run `update` on them.
pub(crate) fn on_policy_iteration<A>(
    agent: &mut A,
    net: impl Fn(&A) -> &ActorCritic,
    env: &TrainingEnv,
    (gamma, gae_lambda, mask_shown): (f64, f64, bool),
    tracker: &mut TrainedTracker,
    rng: &mut ChaCha8Rng,
    update: impl FnOnce(&mut A, &Rollout, &mut TrainedTracker, &mut ChaCha8Rng, u64) -> Result<UpdateStats>,
) -> Result<Iteration> {
    let cfg = RolloutConfig { episodes: env.episodes, gamma, gae_lambda, mask_shown };
    let t = Instant::now();
    let rollout = collect(env.spec, env.reward_model, net(agent), tracker.tracker.as_ref(), &cfg, rng)?;
    let collect_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let stats = update(agent, &rollout, tracker, rng, env.steps_before)?;
    Ok(Iteration::of(&rollout, stats, collect_s, t.elapsed().as_secs_f64()))
}

/// The checkpoint tensors of an actor-critic agent: its networks (`policy.*`) and their Adam (`policy_adam.*`).
pub(crate) fn actor_critic_tensors(net: &ActorCritic, adam: &Adam) -> Vec<(String, Tensor)> {
    let mut tensors = checkpoint::named("policy", &net.vs);
    tensors.extend(adam.state("policy_adam"));
    tensors
}

/// Restores what [`actor_critic_tensors`] wrote.
pub(crate) fn restore_actor_critic(net: &mut ActorCritic, adam: &mut Adam, tensors: &[(String, Tensor)]) -> Result<()> {
    checkpoint::restore("policy", &mut net.vs, tensors)?;
    adam.restore("policy_adam", tensors)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsrm_nn::tch::{Kind, Tensor};

    #[test]
    fn shared_trunk_has_one_trunk_and_separate_has_two() {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_nn::runtime::seed(0);
        let shared = ActorCritic::new(5, 7, &[8, 8], true, Device::Cpu).unwrap();
        let separate = ActorCritic::new(5, 7, &[8, 8], false, Device::Cpu).unwrap();
        assert_eq!(shared.vs.variables().len(), 2 * 2 + 2 + 2);
        assert_eq!(separate.vs.variables().len(), 4 * 2 + 2 + 2);
        let x = Tensor::randn([3, 5], (Kind::Float, Device::Cpu));
        let (logits, values) = shared.forward(&x).unwrap();
        assert_eq!(logits.size(), [3, 7]);
        assert_eq!(values.size(), [3]);
        assert!(shared.forward(&Tensor::zeros([3, 4], (Kind::Float, Device::Cpu))).is_err(), "wrong width");
    }
}
