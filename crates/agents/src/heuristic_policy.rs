//! A heuristic baseline (`dsrm_policy::heuristics`) behind [`EvalPolicy`], so a server can rank its top k
//! (`dsrm serve --heuristic`). Only heuristics whose choice is the argmax or a softmax draw of a score vector
//! have one (`Policy::scores`: random, most-popular, mf-greedy); the others are refused when loaded.

use crate::learner::EvalPolicy;
use crate::{AgentError, Result};
use dsrm_policy::{ItemMask, Observation, Policy, PolicyRng, Selection};

/// A heuristic with a score vector (see the module docs).
#[derive(Clone)]
pub struct HeuristicPolicy {
    inner: Box<dyn Policy>,
}

impl HeuristicPolicy {
    /// Wraps `policy`, refusing one without a score vector (tried on an empty history of user 0).
    pub fn new(mut policy: Box<dyn Policy>) -> Result<Self> {
        let obs = Observation { user: 0, items: &[], rewards: &[], initial_item: None };
        let mut rng = <PolicyRng as rand::SeedableRng>::seed_from_u64(0);
        if !policy.scores(&obs, Selection::Argmax, &mut rng, &mut Vec::new()) {
            return Err(AgentError::Config(format!(
                "the heuristic {} chooses by its own exploration or cycle, not from a score vector, so it cannot \
                 rank a top k (served heuristics: random, most-popular, mf-greedy)",
                policy.name()
            )));
        }
        Ok(Self { inner: policy })
    }
}

impl Policy for HeuristicPolicy {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn act(&mut self, obs: &Observation, mask: &ItemMask, selection: Selection, rng: &mut PolicyRng) -> u32 {
        self.inner.act(obs, mask, selection, rng)
    }

    fn observe(&mut self, user: u32, item: u32, reward: f64) {
        self.inner.observe(user, item, reward)
    }
}

impl EvalPolicy for HeuristicPolicy {
    fn take_error(&self) -> Option<String> {
        None
    }

    fn score_all(
        &mut self,
        obs: &Observation,
        mask: &ItemMask,
        selection: Selection,
        rng: &mut PolicyRng,
        scores: &mut Vec<f64>,
    ) -> Result<()> {
        if !self.inner.scores(obs, selection, rng, scores) || scores.len() != mask.n_items() {
            return Err(AgentError::Config(format!("{} gave no score per catalogue item", self.inner.name())));
        }
        for (i, s) in scores.iter_mut().enumerate() {
            if !mask.allows(i as u32) || !s.is_finite() {
                *s = f64::NEG_INFINITY;
            }
        }
        Ok(())
    }
}
