//! A trained actor-critic agent (A2C, PPO, FCPO) as a [`dsrm_policy::Policy`], so the evaluation protocol
//! (`dsrm-eval`) runs it like any baseline: its policy logits are the scores of a
//! [`ScoredPolicy`](crate::scored_policy::ScoredPolicy), which builds a one-row history batch per step, runs
//! tracker and actor without gradients, blocks masked items (probability 0, as the anchors' logits at −∞), and
//! samples from the softmax (`Sampled`, the anchors' published numbers) or takes the argmax. The policy holds a
//! *snapshot*: its own copies of the tracker and networks, switched to evaluation behaviour and to the ground
//! truth's reward range (`docs/protocol.md` §3), so evaluating never disturbs training.

use crate::actor_critic::ActorCritic;
use crate::scored_policy::{ScoredPolicy, Scorer};
use crate::Result;
use dsrm_nn::tch::Tensor;
use dsrm_state::StateTracker;

/// A frozen actor-critic agent that recommends with its policy head.
pub type RlPolicy = ScoredPolicy;

impl Scorer for ActorCritic {
    fn scores(&self, states: &Tensor) -> Result<Tensor> {
        self.logits(states)
    }
}

/// Wraps copies of a tracker and networks. `tracker` must be a tracker of its own (not the one being trained);
/// it is switched to evaluation behaviour and to `reward_range`, the ground truth's (min, max).
pub fn actor_critic_policy(
    name: &str,
    tracker: Box<dyn StateTracker>,
    net: ActorCritic,
    reward_range: (f64, f64),
) -> Result<RlPolicy> {
    if tracker.state_dim() != net.state_dim() {
        return Err(crate::AgentError::Config(format!(
            "tracker states have {} dimensions but the policy reads {}",
            tracker.state_dim(),
            net.state_dim()
        )));
    }
    let n_items = net.n_items() as usize;
    ScoredPolicy::new(name, tracker, Box::new(net), n_items, reward_range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::EvalPolicy;
    use crate::test_support::MeanTracker;
    use dsrm_nn::tch::{self, Device};
    use dsrm_policy::{ItemMask, Observation, Policy, PolicyRng, Selection};
    use rand::SeedableRng;

    #[test]
    fn never_returns_a_masked_item() {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_nn::runtime::seed(1);
        let n_items = 6;
        let tracker = Box::new(MeanTracker::new(n_items, 4, 3));
        let net = ActorCritic::new(5, n_items as i64, &[8], true, Device::Cpu).unwrap();
        // Make item 2 overwhelmingly likely, then block it: neither selection may return it.
        tch::no_grad(|| {
            let vars = net.vs.variables();
            let mut bias = vars["actor.bias"].shallow_clone();
            let _ = bias.fill_(0.0);
            let _ = bias.narrow(0, 2, 1).fill_(50.0);
        });
        let mut policy = actor_critic_policy("a2c", tracker, net, (0.0, 5.0)).unwrap();
        let mut rng = PolicyRng::seed_from_u64(0);
        let obs = Observation { user: 0, items: &[1, 3], rewards: &[0.5, 1.0], initial_item: None };
        let mut mask = ItemMask::all(n_items);
        assert_eq!(policy.act(&obs, &mask, Selection::Argmax, &mut rng), 2);
        mask.block(2);
        mask.block(4);
        let mut clone = policy.clone();
        for _ in 0..300 {
            for p in [&mut policy, &mut clone] {
                for sel in [Selection::Sampled, Selection::Argmax] {
                    let a = p.act(&obs, &mask, sel, &mut rng);
                    assert!(mask.allows(a), "{sel:?} returned blocked item {a}");
                }
            }
        }
        assert!(policy.take_error().is_none());
    }
}
