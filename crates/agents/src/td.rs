//! Temporal-difference targets of the Q-learning agents (DQN, DNaIR, BCQ, CQL, SQN).

use crate::qnet::ScoreNet;
use crate::replay::Transitions;
use crate::trained_tracker::TrainedTracker;
use crate::Result;
use dsrm_nn::tch::{self, Tensor};

/// `y = R + γ^n (1 − done) Q_target(s', argmax_a Q(s', a))`, without gradients; with an `offset`
/// (`[B, n_items]`, 0 for allowed actions and a large negative number elsewhere: DNaIR's candidates, the items
/// `mask_shown` blocks) added to Q(s', ·) before the argmax, which then runs over the allowed set.
pub(crate) fn double_q_target(
    q: &ScoreNet,
    target: &ScoreNet,
    tracker: &TrainedTracker,
    tr: &Transitions,
    gamma: f64,
    n_step: usize,
    offset: Option<&Tensor>,
) -> Result<Tensor> {
    tch::no_grad(|| -> Result<Tensor> {
        let next = tracker.states(&tr.next)?;
        let q_next_online = q.forward(&next)?;
        let best = match offset {
            Some(o) => q_next_online.f_add(o)?.f_argmax(-1, true)?,
            None => q_next_online.f_argmax(-1, true)?,
        };
        let q_next = target.forward(&next)?.f_gather(1, &best, false)?.f_squeeze_dim(1)?;
        let live = tr.dones.f_neg()?.f_add_scalar(1.0)?;
        Ok(tr.rewards.f_add(&q_next.f_mul(&live)?.f_mul_scalar(gamma.powi(n_step as i32))?)?)
    })
}
