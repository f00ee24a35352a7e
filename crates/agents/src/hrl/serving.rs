//! The HRL policy's two actors at batch one without libtorch, for a server (`EvalPolicy::prepare_serving`).
//!
//! The same functions as `HrlNets::goal_mean` and `HrlNets::low_logits` on one state, from frozen copies of
//! the weights (`dsrm_nn::frozen_mlp`):
//!
//! ```text
//! x_H  = [ŝ, upp_u, LT]             mean = g(π_H(x_H))   g: softmax (weights), identity (target ratio),
//!                                                           softplus(· + offset) (the paper's ω)
//! (a), (b):  logits = π_L([ŝ, z])
//! (c):       q = π_L(ŝ);  logits_i = (ω_acc · cos(q, e_i) − ω_fair · c̄_i) / τ
//! ```
//!
//! The state comes from the tracker's batch-one form where it has one (`StateTracker::batch_one`: the `avg`
//! tracker, with a distilled or identity DSRM stage behind it), else from the libtorch tracker, read once.
//! Scores equal the libtorch path's to rounding (`a_served_policy_scores_what_the_evaluated_one_does` in the
//! tests).

use super::config::GoalType;
use super::networks::{HrlNets, PAPER_GOAL_OFFSET};
use crate::{AgentError, Result};
use dsrm_nn::frozen_mlp::{to_f32, FrozenLayer, FrozenMlp, Scratch};
use dsrm_nn::tch::{Device, Kind, Tensor};
use dsrm_state::BatchOneTracker;

/// Goal type (c)'s item side: the unit item embeddings, their exposure costs and τ.
struct PaperItems {
    unit_items: FrozenLayer,
    cost: Vec<f32>,
    temperature: f32,
}

/// Frozen copies of π_H and π_L with their buffers.
pub(super) struct CpuHeads {
    tracker: Option<Box<dyn BatchOneTracker>>,
    goal_type: GoalType,
    high: FrozenMlp,
    low: FrozenMlp,
    std: Vec<f64>,
    paper: Option<PaperItems>,
    state: Vec<f32>,
    input: Vec<f32>,
    out: Vec<f32>,
    scratch: Scratch,
}

impl CpuHeads {
    /// Copies `nets`' actors (their current weights); `tracker`: the tracker's batch-one form, if it has one.
    pub(super) fn of(nets: &HrlNets, tracker: Option<Box<dyn BatchOneTracker>>) -> Result<Self> {
        if let Some(t) = &tracker {
            if t.state_dim() != nets.state_dim as usize {
                return Err(AgentError::Config(format!(
                    "the tracker gives {} values, the agent reads {}",
                    t.state_dim(),
                    nets.state_dim
                )));
            }
        }
        let paper = match (nets.goal, &nets.item_emb) {
            (GoalType::Paper, Some(emb)) => {
                let cost = nets.item_cost.as_ref().ok_or_else(|| {
                    AgentError::Config(
                        "the paper's goal needs the items' exposure costs (HrlNets::set_item_cost)".into(),
                    )
                })?;
                let norm = emb.f_norm_scalaropt_dim(2.0, [-1i64].as_slice(), true)?.f_clamp_min(1e-8)?;
                let unit = emb.f_div(&norm)?;
                Some(PaperItems {
                    unit_items: FrozenLayer::new(&unit, None)?,
                    cost: to_f32(cost)?,
                    temperature: nets.temperature as f32,
                })
            }
            _ => None,
        };
        let std = Vec::<f64>::try_from(nets.log_std.f_exp()?.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?)?;
        Ok(Self {
            tracker,
            goal_type: nets.goal,
            high: FrozenMlp::of(&nets.high)?,
            low: FrozenMlp::of(&nets.low)?,
            std,
            paper,
            state: vec![0.0; nets.state_dim as usize],
            input: Vec::new(),
            out: Vec::new(),
            scratch: Scratch::default(),
        })
    }

    /// σ of the goal Gaussian.
    pub(super) fn std(&self) -> &[f64] {
        &self.std
    }

    /// Computes ŝ_t with the tracker's batch-one form; `false` when there is none (then [`Self::read_state`]).
    pub(super) fn track(&mut self, items: &[u32], rewards: &[f64]) -> Result<bool> {
        match &mut self.tracker {
            Some(t) => {
                t.state(items, rewards, &mut self.state)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Reads the `[1, state_dim]` state the libtorch tracker returned.
    pub(super) fn read_state(&mut self, states: &Tensor) -> Result<()> {
        let states = states.f_to_kind(Kind::Float)?.f_contiguous()?;
        if states.numel() != self.state.len() {
            return Err(AgentError::Config(format!(
                "serving reads one state of {} values, the tracker returned {:?}",
                self.state.len(),
                states.size()
            )));
        }
        let n = self.state.len();
        states.f_copy_data(&mut self.state, n)?;
        Ok(())
    }

    /// The goal Gaussian's mean for x_H = [ŝ, `aux`].
    pub(super) fn goal_mean(&mut self, aux: [f32; 2]) -> Result<Vec<f32>> {
        self.input.clear();
        self.input.extend_from_slice(&self.state);
        self.input.extend_from_slice(&aux);
        self.out.resize(self.high.output_dim(), 0.0);
        self.high.forward(&self.input, &mut self.scratch, &mut self.out)?;
        let out = &mut self.out;
        match self.goal_type {
            GoalType::Weights => {
                let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                out.iter_mut().for_each(|v| *v = (*v - max).exp());
                let total: f32 = out.iter().sum();
                out.iter_mut().for_each(|v| *v /= total);
            }
            GoalType::TargetRatio => {}
            GoalType::Paper => {
                for (v, offset) in out.iter_mut().zip(PAPER_GOAL_OFFSET) {
                    *v = softplus(*v + offset);
                }
            }
        }
        Ok(out.clone())
    }

    /// The low level's logits over the catalogue under `goal`.
    pub(super) fn low_logits(&mut self, goal: [f32; 2], logits: &mut [f32]) -> Result<()> {
        self.input.clear();
        self.input.extend_from_slice(&self.state);
        let Some(paper) = &self.paper else {
            self.input.extend_from_slice(&goal);
            return Ok(self.low.forward(&self.input, &mut self.scratch, logits)?);
        };
        self.out.resize(self.low.output_dim(), 0.0);
        self.low.forward(&self.input, &mut self.scratch, &mut self.out)?;
        let norm = self.out.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-8);
        self.out.iter_mut().for_each(|v| *v /= norm);
        paper.unit_items.apply(&self.out, logits);
        let (w_acc, w_fair) = (goal[0], goal[1]);
        for (l, c) in logits.iter_mut().zip(&paper.cost) {
            *l = (*l * w_acc - w_fair * c) / paper.temperature;
        }
        Ok(())
    }
}

/// libtorch's softplus (β = 1, linear above 20).
fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}
