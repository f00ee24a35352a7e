//! The frozen HRL agent for the evaluation protocol.

use super::config::GoalType;
use super::networks::{
    aux_tensor, goal_vector, group_weights, ratio_vector, standard_normal, to_vec, GroupFacts, HrlNets,
};
use super::serving::CpuHeads;
use crate::learner::{EvalPolicy, Hierarchical};
use crate::shown::with_shown_blocked;
use crate::Result;
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_policy::select::{select, uniform_allowed};
use dsrm_policy::{ItemMask, Observation, Policy, PolicyRng, Selection};
use dsrm_state::{HistoryBatch, StateTracker};
use std::sync::{Arc, Mutex};

/// A frozen HRL agent acting on the ground truth: the high level sets a goal every c steps (sampled, or its
/// mean under argmax selection), the low level's distribution is masked, reweighted to the goal, and then
/// sampled or maximised.
#[derive(Clone)]
pub struct HrlPolicy {
    pub(super) inner: Arc<Mutex<HrlSnapshot>>,
}

pub(super) struct HrlSnapshot {
    pub(super) tracker: Box<dyn StateTracker>,
    pub(super) nets: HrlNets,
    pub(super) facts: Arc<GroupFacts>,
    pub(super) goal_type: GoalType,
    pub(super) interval: usize,
    pub(super) fixed_ratio: Option<f64>,
    /// Block the items already shown in the episode in every mode (`HrlConfig::mask_shown`).
    pub(super) mask_shown: bool,
    /// The goal type and ρ* the agent was trained with (what [`Hierarchical::set_fixed_ratio`] `None` restores).
    pub(super) trained: (GoalType, Option<f64>),
    /// The goal of the current segment (episodes are played one at a time).
    pub(super) goal: [f32; 2],
    /// Keep `goal` at the next scoring even where a new segment would start (a server's session already drew it).
    pub(super) hold_goal: bool,
    pub(super) logits: Vec<f32>,
    pub(super) scores: Vec<f64>,
    pub(super) error: Option<String>,
    /// The actors without libtorch, once a server asked for them ([`EvalPolicy::prepare_serving`]).
    pub(super) cpu: Option<CpuHeads>,
}

impl HrlSnapshot {
    /// Fills `scores` with log p of the goal-reweighted distribution over the allowed items (−∞ elsewhere).
    fn score(&mut self, obs: &Observation, mask: &ItemMask, selection: Selection, rng: &mut PolicyRng) -> Result<()> {
        let with_shown = with_shown_blocked(self.mask_shown, mask, obs.items);
        let mask = with_shown.as_ref().unwrap_or(mask);
        let device = self.nets.low_vs.device();
        let n_items = self.logits.len();
        let batch = || HistoryBatch::new(&[(obs.user, obs.items, obs.rewards)], self.tracker.window(), n_items, device);
        let aux = self.facts.aux(obs.user, obs.items);
        let new_segment = obs.items.len().is_multiple_of(self.interval) && !std::mem::take(&mut self.hold_goal);
        let draws_goal = new_segment && self.fixed_ratio.is_none();
        if let Some(cpu) = &mut self.cpu {
            // Serving: the actors without libtorch, and the tracker too where it has a batch-one form
            // (`serving.rs`).
            if !cpu.track(obs.items, obs.rewards)? {
                let states = tch::no_grad(|| self.tracker.try_states(&batch()))?;
                cpu.read_state(&states)?;
            }
            let mean = if draws_goal { cpu.goal_mean(aux)? } else { Vec::new() };
            if new_segment {
                self.goal = next_goal(self.goal_type, self.fixed_ratio, &mean, cpu.std(), selection, rng);
            }
            cpu.low_logits(self.goal, &mut self.logits)?;
        } else {
            let logits = tch::no_grad(|| -> Result<Tensor> {
                let states = self.tracker.try_states(&batch())?;
                let mean = if draws_goal {
                    let x_high = Tensor::f_cat(&[&states, &aux_tensor(&[aux], device)?], 1)?;
                    to_vec(&self.nets.goal_mean(&x_high)?.f_flatten(0, -1)?)?
                } else {
                    Vec::new()
                };
                if new_segment {
                    let std = if draws_goal { self.nets.std()? } else { Vec::new() };
                    self.goal = next_goal(self.goal_type, self.fixed_ratio, &mean, &std, selection, rng);
                }
                let logits = self.nets.low_logits(&states, &aux_tensor(&[self.goal], device)?)?;
                Ok(logits.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?)
            })?;
            logits.f_copy_data(&mut self.logits, n_items)?;
        }
        // m, the long-tail mass of p̃ over the allowed items (masking first, as §4.4 says): only a target ratio
        // reads it. Then log p̃ + log w.
        let (mut total, mut tail) = (0.0, 0.0);
        if self.goal_type == GoalType::TargetRatio {
            let max = (0..n_items)
                .filter(|&i| mask.allows(i as u32))
                .map(|i| f64::from(self.logits[i]))
                .fold(f64::NEG_INFINITY, f64::max);
            for i in (0..n_items).filter(|&i| mask.allows(i as u32)) {
                let e = (f64::from(self.logits[i]) - max).exp();
                total += e;
                if !self.facts.popular[i] {
                    tail += e;
                }
            }
        }
        let (w_pop, w_lt) = group_weights(self.goal_type, self.goal, if total > 0.0 { tail / total } else { 0.0 });
        let (l_pop, l_lt) = (w_pop.ln(), w_lt.ln());
        for (i, s) in self.scores.iter_mut().enumerate() {
            *s = if mask.allows(i as u32) {
                f64::from(self.logits[i]) + if self.facts.popular[i] { l_pop } else { l_lt }
            } else {
                f64::NEG_INFINITY
            };
        }
        Ok(())
    }
}

/// The goal of a new segment: ρ* when fixed, else a draw from N(`mean`, `std`²) (its mean under argmax).
fn next_goal(
    goal_type: GoalType,
    fixed_ratio: Option<f64>,
    mean: &[f32],
    std: &[f64],
    selection: Selection,
    rng: &mut PolicyRng,
) -> [f32; 2] {
    match fixed_ratio {
        Some(rho) => ratio_vector(rho),
        None => {
            let z: Vec<f64> = mean
                .iter()
                .zip(std)
                .map(|(&m, &s)| match selection {
                    Selection::Argmax => f64::from(m),
                    Selection::Sampled => f64::from(m) + s * standard_normal(rng),
                })
                .collect();
            goal_vector(goal_type, &z)
        }
    }
}

impl EvalPolicy for HrlPolicy {
    fn take_error(&self) -> Option<String> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).error.take()
    }

    fn score_all(
        &mut self,
        obs: &Observation,
        mask: &ItemMask,
        selection: Selection,
        rng: &mut PolicyRng,
        scores: &mut Vec<f64>,
    ) -> Result<()> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.score(obs, mask, selection, rng)?;
        scores.clear();
        scores.extend_from_slice(&s.scores);
        Ok(())
    }

    fn prepare_serving(&mut self) -> Result<bool> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.cpu = Some(CpuHeads::of(&s.nets, s.tracker.batch_one()?)?);
        Ok(true)
    }

    fn hierarchical(&mut self) -> Option<&mut dyn Hierarchical> {
        Some(self)
    }
}

impl Hierarchical for HrlPolicy {
    fn goal(&self) -> [f32; 2] {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).goal
    }

    fn set_goal(&mut self, goal: [f32; 2], hold: bool) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.goal = goal;
        s.hold_goal = hold;
    }

    fn interval(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).interval
    }

    fn fixed_ratio(&self) -> Option<f64> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).fixed_ratio
    }

    fn set_fixed_ratio(&mut self, rho: Option<f64>) -> Result<()> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match rho {
            None => (s.goal_type, s.fixed_ratio) = s.trained,
            Some(rho) if !(0.0..=1.0).contains(&rho) => {
                return Err(crate::AgentError::Config(format!("a target ratio must lie in [0, 1], got {rho}")));
            }
            Some(_) if s.trained.0 == GoalType::Paper => {
                return Err(crate::AgentError::Config(
                    "this high level emits the paper's goal (ω_acc, ω_fair), which a target ratio cannot replace"
                        .into(),
                ));
            }
            Some(rho) => (s.goal_type, s.fixed_ratio) = (GoalType::TargetRatio, Some(rho)),
        }
        Ok(())
    }
}

impl Policy for HrlPolicy {
    fn name(&self) -> String {
        "hrl".into()
    }

    fn act(&mut self, obs: &Observation, mask: &ItemMask, selection: Selection, rng: &mut PolicyRng) -> u32 {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match s.score(obs, mask, selection, rng) {
            Ok(()) => select(&s.scores, mask, selection, rng),
            Err(e) => {
                s.error.get_or_insert_with(|| e.to_string());
                uniform_allowed(mask, rng)
            }
        }
    }
}
