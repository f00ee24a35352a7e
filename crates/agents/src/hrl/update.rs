//! The update: PPO (or A2C) on both levels — the low level over steps, the high level over segments — with the
//! shared clipped surrogate (`crate::losses`), the critics V_H and V_L, and the tracker trained jointly.

use super::collect::HierRollout;
use super::config::GoalType;
use super::config::Updater;
use super::networks::{aux_tensor, group_weights, MASS_EPS, WEIGHT_FLOOR};
use super::Hrl;
use crate::losses::{clipped_surrogate, normalise_advantages};
use crate::pace::{paced_minibatches, paced_updates};
use crate::rollout::minibatches;
use crate::shown::mask_logits;
use crate::trained_tracker::{joint_step, step_on_existing_grads, TrainedTracker};
use crate::update_stats::UpdateStats;
use crate::{AgentError, Result};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Kind, Tensor};
use rand_chacha::ChaCha8Rng;

impl Hrl {
    /// `[B, n_items]` log p of the reweighted low-level distribution, differentiable through the logits (and,
    /// for a target ratio, through the long-tail mass m).
    pub(super) fn reweighted_log_probs(&self, logits: &Tensor, goals: &Tensor, weights: &Tensor) -> Result<Tensor> {
        let log_p = logits.f_log_softmax(-1, Kind::Float)?;
        let (w_pop, w_lt) = match self.cfg.goal {
            GoalType::Paper => return Ok(log_p),
            GoalType::Weights => (weights.f_select(1, 0)?, weights.f_select(1, 1)?),
            GoalType::TargetRatio => {
                let tail = self.popular_f.f_neg()?.f_add_scalar(1.0)?;
                let m = log_p.f_exp()?.f_mul(&tail)?.f_sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)?;
                let degenerate = m.f_le(MASS_EPS)?.f_logical_or(&m.f_ge(1.0 - MASS_EPS)?)?.f_detach()?;
                let m = m.f_clamp(MASS_EPS, 1.0 - MASS_EPS)?;
                let rho = goals.f_select(1, 1)?.f_clamp(0.0, 1.0)?;
                let one = Tensor::f_ones_like(&m)?;
                let w_lt = one.f_where_self(&degenerate, &rho.f_div(&m)?)?;
                let w_pop = one.f_where_self(
                    &degenerate,
                    &rho.f_neg()?.f_add_scalar(1.0)?.f_div(&m.f_neg()?.f_add_scalar(1.0)?)?,
                )?;
                (w_pop.f_clamp_min(WEIGHT_FLOOR)?, w_lt.f_clamp_min(WEIGHT_FLOOR)?)
            }
        };
        let (lw_pop, lw_lt) = (w_pop.f_log()?.f_unsqueeze(1)?, w_lt.f_log()?.f_unsqueeze(1)?);
        let log_w = lw_lt.f_add(&self.popular_f.f_unsqueeze(0)?.f_mul(&lw_pop.f_sub(&lw_lt)?)?)?;
        let log_q = log_p.f_add(&log_w)?;
        Ok(log_q.f_sub(&log_q.f_logsumexp([-1i64].as_slice(), true)?)?)
    }

    /// The clipped surrogate (PPO, `crate::losses`) or −log π · A (A2C), with per-minibatch advantage
    /// normalisation; also the approximate KL and the clip fraction.
    pub(super) fn actor_loss(&self, log_prob: &Tensor, old: &Tensor, adv: &Tensor) -> Result<(Tensor, f64, f64)> {
        let adv = if self.cfg.norm_advantages { normalise_advantages(adv)? } else { adv.shallow_clone() };
        if self.cfg.updater == Updater::A2c {
            let approx_kl = log_prob.f_sub(old)?.f_neg()?.f_mean(Kind::Float)?.f_double_value(&[])?;
            return Ok((log_prob.f_mul(&adv)?.f_mean(Kind::Float)?.f_neg()?, approx_kl, 0.0));
        }
        let surrogate = clipped_surrogate(log_prob, old, &adv, self.cfg.clip)?;
        Ok((surrogate.loss, surrogate.approx_kl, surrogate.clip_fraction))
    }

    /// States of `steps` from the tracker: with gradients into it unless the low level (and so the tracker) is
    /// frozen.
    pub(super) fn states(&self, ro: &HierRollout, steps: &[usize], tracker: &TrainedTracker) -> Result<Tensor> {
        let batch = ro.low.history_batch(
            steps,
            tracker.tracker.window(),
            self.nets.n_items as usize,
            self.nets.low_vs.device(),
        );
        if self.cfg.freeze_low_level {
            Ok(tch::no_grad(|| tracker.states(&batch))?.f_detach()?)
        } else {
            tracker.states(&batch)
        }
    }

    /// One gradient step of `loss` on the level's actor and its critic (V_H or V_L; and the tracker unless
    /// frozen): one backward pass; each network's Adam then applies its own update to the gradients it received.
    pub(super) fn step(&mut self, loss: &Tensor, high: bool, tracker: &mut TrainedTracker) -> Result<()> {
        zero_grads(&self.nets.critic_vs);
        let actor = if high { &mut self.high_adam } else { &mut self.low_adam };
        if self.cfg.freeze_low_level {
            actor.backward_step(loss)?;
        } else {
            joint_step(loss, actor, tracker)?;
        }
        let critic: Vec<Tensor> = self.nets.critic_vars(high).into_iter().map(|(_, t)| t).collect();
        let critic_adam = if high { &mut self.critic_high_adam } else { &mut self.critic_low_adam };
        step_on_existing_grads(&critic, critic_adam)
    }

    /// PPO (or A2C) on both levels: low level over steps, then high level over segments, per pass; or, paced
    /// (`updates_per_1k_steps`, `crate::pace`), half of the collection's paced updates at each level.
    pub fn update(
        &mut self,
        ro: &HierRollout,
        tracker: &mut TrainedTracker,
        rng: &mut ChaCha8Rng,
        steps_before: u64,
    ) -> Result<UpdateStats> {
        let (mut low, mut high) = (UpdateStats::default(), UpdateStats::default());
        let learn_low = !self.cfg.freeze_low_level;
        let size = self.cfg.batch_size;
        match self.cfg.updates_per_1k_steps {
            None => {
                for _ in 0..self.cfg.repeat_per_collect {
                    if learn_low {
                        for steps in minibatches(ro.low.len(), size, rng) {
                            low.merge(&self.low_minibatch(ro, &steps, tracker)?);
                        }
                    }
                    for segs in minibatches(ro.high.len(), size, rng) {
                        high.merge(&self.high_minibatch(ro, &segs, tracker)?);
                    }
                }
            }
            Some(per_1k) => {
                let k = paced_updates(per_1k / 2.0, steps_before, ro.low.len());
                if learn_low {
                    for steps in paced_minibatches(ro.low.len(), size, k, rng) {
                        low.merge(&self.low_minibatch(ro, &steps, tracker)?);
                    }
                }
                for segs in paced_minibatches(ro.high.len(), size, k, rng) {
                    high.merge(&self.high_minibatch(ro, &segs, tracker)?);
                }
            }
        }
        // The low level's numbers are the headline fields; the high level's go to `extra`.
        let mut stats = if self.cfg.freeze_low_level { high.clone() } else { low };
        for (key, value) in [
            ("high_loss", high.loss),
            ("high_actor_loss", high.actor_loss),
            ("high_vf_loss", high.vf_loss),
            ("high_entropy", high.entropy),
            ("high_approx_kl", high.approx_kl),
            ("high_clip_fraction", high.clip_fraction),
        ] {
            stats.extra.insert(key.into(), value);
        }
        if !self.cfg.freeze_low_level {
            stats.grad_steps += high.grad_steps;
        }
        let n = ro.low.len().max(1) as f64;
        let segments = ro.high.len().max(1) as f64;
        stats.extra.insert("long_tail_share".into(), ro.long_tail_steps as f64 / n);
        stats.extra.insert("segment_return".into(), ro.high.rewards.iter().sum::<f64>() / segments);
        stats.extra.insert("goal_long_tail".into(), ro.goal.iter().map(|g| f64::from(g[1])).sum::<f64>() / segments);
        if self.cfg.goal == GoalType::Paper {
            // g = (ω_acc, ω_fair): with goal_long_tail (mean ω_fair) the ratio the low level's Ψ / ω_acc reads.
            stats
                .extra
                .insert("goal_omega_acc".into(), ro.goal.iter().map(|g| f64::from(g[0])).sum::<f64>() / segments);
        }
        Ok(stats)
    }

    /// One low-level minibatch: π_L and V_L on `steps`.
    fn low_minibatch(
        &mut self,
        ro: &HierRollout,
        steps: &[usize],
        tracker: &mut TrainedTracker,
    ) -> Result<UpdateStats> {
        let device = self.nets.low_vs.device();
        let pick = |v: &[f32], idx: &[usize]| gather(v, idx, device);
        let states = self.states(ro, steps, tracker)?;
        let aux: Vec<[f32; 2]> = steps.iter().map(|&s| ro.aux[s]).collect();
        let goals: Vec<[f32; 2]> = steps.iter().map(|&s| ro.goal[ro.segment_of[s]]).collect();
        let weights: Vec<[f32; 2]> = goals
            .iter()
            .map(|&g| {
                let (p, l) = group_weights(self.cfg.goal, g, 0.5);
                [p as f32, l as f32]
            })
            .collect();
        let x_high = Tensor::f_cat(&[&states, &aux_tensor(&aux, device)?], 1)?;
        let goals = aux_tensor(&goals, device)?;
        let logits = mask_logits(self.nets.low_logits(&states, &goals)?, self.cfg.mask_shown, &ro.low, steps)?;
        let log_q = self.reweighted_log_probs(&logits, &goals, &aux_tensor(&weights, device)?)?;
        let actions: Vec<i64> = steps.iter().map(|&s| i64::from(ro.low.actions[s])).collect();
        let actions = Tensor::from_slice(&actions).f_to_device(device)?.f_unsqueeze(1)?;
        let log_prob = log_q.f_gather(1, &actions, false)?.f_squeeze_dim(1)?;
        let entropy = log_q
            .f_exp()?
            .f_mul(&log_q)?
            .f_sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)?
            .f_mean(Kind::Float)?
            .f_neg()?;
        let (actor_loss, approx_kl, clip_fraction) =
            self.actor_loss(&log_prob, &pick(&ro.low.log_probs, steps)?, &pick(&ro.low.advantages, steps)?)?;
        let v_l = self.nets.value_low(&x_high, &goals)?;
        let vf_loss = pick(&ro.low.returns, steps)?.f_sub(&v_l)?.f_square()?.f_mean(Kind::Float)?;
        let loss = actor_loss
            .f_add(&vf_loss.f_mul_scalar(self.cfg.vf_coef)?)?
            .f_sub(&entropy.f_mul_scalar(self.cfg.ent_coef)?)?;
        let stats = stats_of(&loss, &actor_loss, &vf_loss, &entropy, approx_kl, clip_fraction)?;
        self.step(&loss, false, tracker)?;
        Ok(stats)
    }

    /// One high-level minibatch: π_H and V_H on segments `segs` (V_H is trained even when ρ* is fixed).
    fn high_minibatch(
        &mut self,
        ro: &HierRollout,
        segs: &[usize],
        tracker: &mut TrainedTracker,
    ) -> Result<UpdateStats> {
        let device = self.nets.low_vs.device();
        let pick = |v: &[f32], idx: &[usize]| gather(v, idx, device);
        let learn_high = self.cfg.fixed_ratio.is_none();
        let starts: Vec<usize> = segs.iter().map(|&k| ro.segment_start[k]).collect();
        let states = self.states(ro, &starts, tracker)?;
        let aux: Vec<[f32; 2]> = starts.iter().map(|&s| ro.aux[s]).collect();
        let x_high = Tensor::f_cat(&[&states, &aux_tensor(&aux, device)?], 1)?;
        let v_h = self.nets.value_high(&x_high)?;
        let vf_loss = pick(&ro.high.returns, segs)?.f_sub(&v_h)?.f_square()?.f_mean(Kind::Float)?;
        let mut loss = vf_loss.f_mul_scalar(self.cfg.vf_coef)?;
        let (mut actor_loss, mut entropy, mut kl, mut clip_fraction) =
            (Tensor::from(0.0f32), Tensor::from(0.0f32), 0.0, 0.0);
        if learn_high {
            let z: Vec<f32> = segs.iter().flat_map(|&k| ro.raw_goal[k].iter().copied()).collect();
            let z = Tensor::from_slice(&z).f_to_device(device)?.f_view([segs.len() as i64, self.cfg.goal_dim()])?;
            let (log_prob, ent) = self.nets.goal_log_prob(&x_high, &z)?;
            (actor_loss, kl, clip_fraction) =
                self.actor_loss(&log_prob, &pick(&ro.high.log_probs, segs)?, &pick(&ro.high.advantages, segs)?)?;
            entropy = ent;
            loss = loss.f_add(&actor_loss)?.f_sub(&entropy.f_mul_scalar(self.cfg.ent_coef)?)?;
        }
        let stats = stats_of(&loss, &actor_loss, &vf_loss, &entropy, kl, clip_fraction)?;
        self.step(&loss, true, tracker)?;
        Ok(stats)
    }
}

/// `v` at `idx`, as a tensor on `device`.
fn gather(v: &[f32], idx: &[usize], device: tch::Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(&idx.iter().map(|&s| v[s]).collect::<Vec<f32>>()).f_to_device(device)?)
}

fn stats_of(loss: &Tensor, actor: &Tensor, vf: &Tensor, entropy: &Tensor, kl: f64, clip: f64) -> Result<UpdateStats> {
    let loss_value = loss.f_double_value(&[])?;
    if !loss_value.is_finite() {
        return Err(AgentError::Diverged(format!("hrl loss {loss_value}")));
    }
    Ok(UpdateStats {
        loss: loss_value,
        actor_loss: actor.f_double_value(&[])?,
        vf_loss: vf.f_double_value(&[])?,
        entropy: entropy.f_double_value(&[])?,
        approx_kl: kl,
        clip_fraction: clip,
        grad_steps: 1,
        ..Default::default()
    })
}

fn zero_grads(vs: &VarStore) {
    for mut p in vs.trainable_variables() {
        p.zero_grad();
    }
}
