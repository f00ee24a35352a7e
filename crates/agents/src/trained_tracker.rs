//! The state tracker as the agents train it: the tracker (the state encoder every agent reads, behind
//! `dsrm_state::StateTracker`: a plain tracker, or the DSRM stage's purified one) with its own optimiser, and
//! the one joint optimisation step of an agent's loss through the states into the tracker.

use crate::Result;
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::Tensor;
use dsrm_state::{HistoryBatch, StateTracker};
use std::cell::RefCell;

/// A state tracker and the Adam that trains it (DORL's separate `optim_state`).
pub struct TrainedTracker {
    /// The tracker being trained.
    pub tracker: Box<dyn StateTracker>,
    /// Its optimiser.
    pub adam: Adam,
    /// The tracker's auxiliary losses (`StateTracker::auxiliary_loss`) of the states computed since the last
    /// [`joint_step`], which adds them to the agent's loss.
    pending: RefCell<Option<Tensor>>,
}

impl TrainedTracker {
    /// Wraps a tracker with a fresh Adam (learning rate `lr`, PyTorch defaults otherwise, no clipping).
    pub fn new(tracker: Box<dyn StateTracker>, lr: f64) -> Self {
        let adam = Adam::new(tracker.var_store(), AdamConfig { lr, ..Default::default() });
        Self { tracker, adam, pending: RefCell::new(None) }
    }

    /// `[B, state_dim]` states, differentiable with respect to the tracker. States with a graph (an update's,
    /// not a target's computed under `no_grad`) also queue the tracker's auxiliary loss for [`joint_step`].
    pub fn states(&self, batch: &HistoryBatch) -> Result<Tensor> {
        let states = self.tracker.try_states(batch)?;
        if states.requires_grad() {
            if let Some(aux) = self.tracker.auxiliary_loss(batch)? {
                let mut pending = self.pending.borrow_mut();
                *pending = Some(match pending.take() {
                    Some(sum) => sum.f_add(&aux)?,
                    None => aux,
                });
            }
        }
        Ok(states)
    }

    /// Takes the queued auxiliary loss.
    fn take_auxiliary(&self) -> Option<Tensor> {
        self.pending.borrow_mut().take()
    }
}

/// One optimisation step of the policy networks *and* the tracker on one loss: a single backward pass, then
/// each Adam applies its own update (DORL: `loss.backward(); optim_RL.step(); optim_state.step()`).
///
/// `dsrm_nn::optim::Adam` only offers `backward_step`, which zeroes its gradients and back-propagates. So the
/// policy optimiser runs the backward pass (which also fills the tracker's gradients g), and the tracker
/// optimiser is then stepped on the surrogate Σ ⟨p, g⟩ whose gradient with respect to p is exactly g (the
/// multiplication by the upstream 1.0 is exact in floating point). The result is bit-identical to stepping
/// two optimisers on shared gradients; the policy optimiser's gradient clipping (PPO) covers the policy
/// networks only, as tianshou clips `actor_critic.parameters()`.
///
/// The tracker's queued auxiliary loss (the DSRM's λ_D · L_DSRM under joint fine-tuning) joins `loss` here.
pub(crate) fn joint_step(loss: &Tensor, policy: &mut Adam, tracker: &mut TrainedTracker) -> Result<()> {
    let params = tracker.tracker.var_store().trainable_variables();
    for p in &params {
        let mut p = p.shallow_clone();
        p.zero_grad();
    }
    match tracker.take_auxiliary() {
        Some(aux) => policy.backward_step(&loss.f_add(&aux)?)?,
        None => policy.backward_step(loss)?,
    }
    step_on_existing_grads(&params, &mut tracker.adam)
}

/// Steps `adam` on the gradients the last backward pass left in `params`: its `backward_step` on the surrogate
/// Σ⟨p, g⟩, whose gradient with respect to p is exactly g. How a second optimiser takes its step from one shared
/// backward pass (the tracker's in [`joint_step`]; the HRL critic's beside an actor's).
pub(crate) fn step_on_existing_grads(params: &[Tensor], adam: &mut Adam) -> Result<()> {
    let mut surrogate: Option<Tensor> = None;
    for p in params {
        let g = p.grad();
        if !g.defined() {
            continue;
        }
        // A copy, not a view: the optimiser zeroes the gradient in place before back-propagating.
        let term = p.f_mul(&g.f_detach_copy()?)?.f_sum(p.kind())?;
        surrogate = Some(match surrogate {
            Some(s) => s.f_add(&term)?,
            None => term,
        });
    }
    if let Some(s) = surrogate {
        adam.backward_step(&s)?;
    }
    Ok(())
}
