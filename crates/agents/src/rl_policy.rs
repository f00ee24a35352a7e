//! A trained agent as a [`Policy`], so the evaluation protocol (`dsrm-eval`) runs it like any baseline.
//!
//! Each step builds a one-row [`HistoryBatch`] from the observation (the ground-truth rewards the user gave
//! so far), runs tracker and actor without gradients, blocks masked items (probability 0, as the anchors'
//! logits at −∞), and samples from the softmax (`Sampled`, the anchors' published numbers) or takes the
//! argmax. The policy holds a *snapshot*: its own copies of the tracker and networks, switched to evaluation
//! behaviour and to the ground truth's reward range (`simulators.md` §3), so evaluating never disturbs
//! training. Clones share the snapshot behind a mutex (evaluation only reads it).

use crate::actor_critic::ActorCritic;
use crate::Result;
use dsrm_nn::tch::{self, Device, Kind};
use dsrm_policy::select::{select, uniform_allowed};
use dsrm_policy::{ItemMask, Observation, Policy, PolicyRng, Selection};
use dsrm_state::{HistoryBatch, StateTracker};
use std::sync::{Arc, Mutex};

struct Snapshot {
    tracker: Box<dyn StateTracker>,
    net: ActorCritic,
    n_items: usize,
    scores: Vec<f64>,
    logits: Vec<f32>,
    /// The first libtorch error met while acting (acting cannot return errors; see [`RlPolicy::take_error`]).
    error: Option<String>,
}

/// A frozen agent that recommends with its policy head.
#[derive(Clone)]
pub struct RlPolicy {
    name: String,
    inner: Arc<Mutex<Snapshot>>,
}

impl RlPolicy {
    /// Wraps copies of a tracker and networks. `tracker` must be a tracker of its own (not the one being
    /// trained); it is switched to evaluation behaviour and to `reward_range`, the ground truth's (min, max).
    pub fn new(
        name: impl Into<String>,
        mut tracker: Box<dyn StateTracker>,
        net: ActorCritic,
        reward_range: (f64, f64),
    ) -> Result<Self> {
        tracker.set_training(false);
        tracker.set_reward_range(reward_range.0, reward_range.1)?;
        if tracker.state_dim() != net.state_dim() {
            return Err(crate::AgentError::Config(format!(
                "tracker states have {} dimensions but the policy reads {}",
                tracker.state_dim(),
                net.state_dim()
            )));
        }
        let n_items = net.n_items() as usize;
        let snapshot =
            Snapshot { tracker, net, n_items, scores: vec![0.0; n_items], logits: vec![0.0; n_items], error: None };
        Ok(Self { name: name.into(), inner: Arc::new(Mutex::new(snapshot)) })
    }

    /// The first error met while acting, if any (then that step fell back to a uniform allowed item). The
    /// trainer checks this after every evaluation so a failure is reported, not averaged into metrics.
    pub fn take_error(&self) -> Option<String> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).error.take()
    }
}

impl Snapshot {
    /// Fills `scores` with the logits for the observation.
    fn score(&mut self, obs: &Observation) -> Result<()> {
        let device = self.net.vs.device();
        let batch =
            HistoryBatch::new(&[(obs.user, obs.items, obs.rewards)], self.tracker.window(), self.n_items, device);
        let logits = tch::no_grad(|| -> Result<_> {
            let states = self.tracker.try_states(&batch)?;
            Ok(self.net.logits(&states)?.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?)
        })?;
        logits.f_copy_data(&mut self.logits, self.n_items)?;
        self.scores.iter_mut().zip(&self.logits).for_each(|(s, &l)| *s = f64::from(l));
        Ok(())
    }
}

impl crate::learner::EvalPolicy for RlPolicy {
    fn take_error(&self) -> Option<String> {
        RlPolicy::take_error(self)
    }
}

impl Policy for RlPolicy {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn act(&mut self, obs: &Observation, mask: &ItemMask, selection: Selection, rng: &mut PolicyRng) -> u32 {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match s.score(obs) {
            // Masked items get probability 0 (argmax skips them); ties go to the smallest id.
            Ok(()) => select(&s.scores, mask, selection, rng),
            Err(e) => {
                s.error.get_or_insert_with(|| e.to_string());
                uniform_allowed(mask, rng)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::MeanTracker;
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
        let mut policy = RlPolicy::new("a2c", tracker, net, (0.0, 5.0)).unwrap();
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
