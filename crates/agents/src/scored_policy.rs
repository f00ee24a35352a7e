//! A frozen agent as an [`EvalPolicy`]: a copy of the tracker and a scoring function over the catalogue
//! (policy logits of the actor-critic agents, Q-values, or BCQ's filtered Q-values): blocked items get
//! probability 0, `Sampled` draws from softmax(scores), `Argmax` takes the best. Clones share the snapshot
//! behind a mutex (evaluation only reads it); a failed step falls back to a uniform allowed item and is
//! reported by [`EvalPolicy::take_error`].
//!
//! For Q-learners `Sampled` is therefore a Boltzmann policy over Q at temperature 1 and `Argmax` the greedy
//! one (the anchors evaluate their Q-learners greedily, with `eps_test` 0.001); both are reported.

use crate::learner::EvalPolicy;
use crate::shown::with_shown_blocked;
use crate::Result;
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_policy::select::{select, uniform_allowed};
use dsrm_policy::{ItemMask, Observation, Policy, PolicyRng, Selection};
use dsrm_state::{HistoryBatch, StateTracker};
use std::sync::{Arc, Mutex};

/// `[B, state_dim]` states -> `[B, n_items]` scores, higher is better (non-finite: never chosen).
pub trait Scorer: Send {
    /// The scores.
    fn scores(&self, states: &Tensor) -> Result<Tensor>;

    /// The scores of a `[1, state_dim]` state whose episode last showed `last` (`None` on the first step); a
    /// scorer that restricts its candidates to that item's neighbours (DNaIR) overrides it.
    fn scores_after(&self, states: &Tensor, _last: Option<u32>) -> Result<Tensor> {
        self.scores(states)
    }
}

struct Snapshot {
    tracker: Box<dyn StateTracker>,
    scorer: Box<dyn Scorer>,
    n_items: usize,
    device: Device,
    scores: Vec<f64>,
    buf: Vec<f32>,
    error: Option<String>,
}

/// A frozen agent acting on the scores of a [`Scorer`].
#[derive(Clone)]
pub struct ScoredPolicy {
    name: String,
    inner: Arc<Mutex<Snapshot>>,
    /// Block the items already shown in the episode in every mode (`crate::shown`).
    mask_shown: bool,
}

impl ScoredPolicy {
    /// Wraps a tracker of its own (switched to evaluation and to the ground truth's `reward_range`) and a scorer.
    pub fn new(
        name: &str,
        mut tracker: Box<dyn StateTracker>,
        scorer: Box<dyn Scorer>,
        n_items: usize,
        reward_range: (f64, f64),
    ) -> Result<Self> {
        tracker.set_training(false);
        tracker.set_reward_range(reward_range.0, reward_range.1)?;
        let device = tracker.var_store().device();
        let snapshot = Snapshot {
            tracker,
            scorer,
            n_items,
            device,
            scores: vec![0.0; n_items],
            buf: vec![0.0; n_items],
            error: None,
        };
        Ok(Self { name: name.to_string(), inner: Arc::new(Mutex::new(snapshot)), mask_shown: false })
    }

    /// With `on`, the policy never recommends an item already shown in the episode, whatever the evaluation
    /// mode's mask (`crate::shown`; the agents trained with `mask_shown`).
    pub fn masking_shown(mut self, on: bool) -> Self {
        self.mask_shown = on;
        self
    }
}

impl Snapshot {
    fn score(&mut self, obs: &Observation) -> Result<()> {
        let batch =
            HistoryBatch::new(&[(obs.user, obs.items, obs.rewards)], self.tracker.window(), self.n_items, self.device);
        let scores = tch::no_grad(|| -> Result<Tensor> {
            let states = self.tracker.try_states(&batch)?;
            Ok(self
                .scorer
                .scores_after(&states, obs.items.last().copied())?
                .f_to_kind(Kind::Float)?
                .f_to_device(Device::Cpu)?
                .f_contiguous()?)
        })?;
        if scores.numel() != self.n_items {
            return Err(crate::AgentError::Config(format!(
                "the scorer returned {} scores for {} items",
                scores.numel(),
                self.n_items
            )));
        }
        scores.f_copy_data(&mut self.buf, self.n_items)?;
        self.scores.iter_mut().zip(&self.buf).for_each(|(s, &b)| *s = f64::from(b));
        Ok(())
    }
}

impl EvalPolicy for ScoredPolicy {
    fn take_error(&self) -> Option<String> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).error.take()
    }

    fn score_all(
        &mut self,
        obs: &Observation,
        mask: &ItemMask,
        _selection: Selection,
        _rng: &mut PolicyRng,
        scores: &mut Vec<f64>,
    ) -> Result<()> {
        let with_shown = with_shown_blocked(self.mask_shown, mask, obs.items);
        let mask = with_shown.as_ref().unwrap_or(mask);
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.score(obs)?;
        scores.clear();
        scores.extend(s.scores.iter().enumerate().map(|(i, &v)| {
            if mask.allows(i as u32) && v.is_finite() {
                v
            } else {
                f64::NEG_INFINITY
            }
        }));
        Ok(())
    }
}

impl Policy for ScoredPolicy {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn act(&mut self, obs: &Observation, mask: &ItemMask, selection: Selection, rng: &mut PolicyRng) -> u32 {
        let with_shown = with_shown_blocked(self.mask_shown, mask, obs.items);
        let mask = with_shown.as_ref().unwrap_or(mask);
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match s.score(obs) {
            Ok(()) => select(&s.scores, mask, selection, rng),
            Err(e) => {
                s.error.get_or_insert_with(|| e.to_string());
                uniform_allowed(mask, rng)
            }
        }
    }
}
