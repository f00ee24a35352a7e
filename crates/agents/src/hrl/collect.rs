//! Collection: whole episodes played with both levels in the training environment, laid out as steps for the
//! low level and segments for the high level, with the fairness term of each segment.

use super::config::FairnessTerm;
use super::networks::{aux_tensor, goal_vector, group_weights, ratio_vector, standard_normal, to_vec, LN_SQRT_2PI};
use super::Hrl;
use crate::rollout::{logits_row, Rollout};
use crate::shown::block_shown_exactly;
use crate::{AgentError, Result};
use dsrm_metrics::gini;
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_sim::{EnvSpec, RewardModel, VecEnv};
use dsrm_state::{HistoryBatch, StateTracker};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One collection, laid out for both levels: `low` holds steps (V_L, log π_L, GAE(γ, λ)); `high` holds
/// segments as its steps (R_H as reward, V_H, log π_H, GAE(γ^c, λ)).
#[derive(Debug, Clone, Default)]
pub struct HierRollout {
    /// Per step.
    pub low: Rollout,
    /// Per segment (its `actions` are unused).
    pub high: Rollout,
    /// Per step: (upp_u, running LT share) at that step.
    pub aux: Vec<[f32; 2]>,
    /// Per step: its segment.
    pub segment_of: Vec<usize>,
    /// Per segment: its first step.
    pub segment_start: Vec<usize>,
    /// Per segment: the raw high-level action z (goal_dim values).
    pub raw_goal: Vec<Vec<f32>>,
    /// Per segment: the goal vector the low level reads.
    pub goal: Vec<[f32; 2]>,
    /// Long-tail steps of the collection (its pooled LT share numerator).
    pub long_tail_steps: usize,
}

struct OpenSegment {
    start: usize,
    raw: Vec<f32>,
    goal: [f32; 2],
    log_prob: f32,
    value: f32,
    reward: f64,
    long_tail: usize,
}

/// A closed segment of one episode.
struct Segment {
    start: usize,
    raw: Vec<f32>,
    goal: [f32; 2],
    log_prob: f32,
    value: f32,
    reward_h: f64,
}

impl Hrl {
    /// Plays `episodes` whole episodes in the training environment with both levels (FB: nothing masked, unless
    /// `mask_shown`: then each episode's shown items).
    pub fn collect(
        &self,
        spec: &EnvSpec,
        reward_model: &dyn RewardModel,
        tracker: &dyn StateTracker,
        episodes: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<HierRollout> {
        let (n, n_items, c) = (episodes.max(1), spec.n_items(), self.cfg.interval);
        if n_items as i64 != self.nets.n_items || spec.n_users() == 0 {
            return Err(AgentError::Config(format!(
                "the agent has {} actions but the environment has {n_items} items and {} users",
                self.nets.n_items,
                spec.n_users()
            )));
        }
        let device = self.nets.low_vs.device();
        let std = self.nets.std()?;
        let mut env = VecEnv::new(spec, n, spec.max_turn);
        let users: Vec<u32> = (0..n).map(|i| env.reset_random(i, rng)).collect();
        let mut rewards: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut values_l: Vec<Vec<f32>> = vec![Vec::new(); n];
        let mut log_probs_l: Vec<Vec<f32>> = vec![Vec::new(); n];
        let mut aux: Vec<Vec<[f32; 2]>> = vec![Vec::new(); n];
        let mut segments: Vec<Vec<Segment>> = (0..n).map(|_| Vec::new()).collect();
        let mut open: Vec<Option<OpenSegment>> = (0..n).map(|_| None).collect();
        let mut active: Vec<usize> = (0..n).collect();
        let mut probs: Vec<f32> = Vec::new();
        let mut long_tail_steps = 0usize;

        while !active.is_empty() {
            // ŝ_t, x_H = [ŝ_t, upp, LT], values, goal means, for every unfinished episode.
            let rows: Vec<(u32, &[u32], &[f64])> =
                active.iter().map(|&i| (users[i], env.items(i), rewards[i].as_slice())).collect();
            let step_aux: Vec<[f32; 2]> = active.iter().map(|&i| self.facts.aux(users[i], env.items(i))).collect();
            let batch = HistoryBatch::new(&rows, tracker.window(), n_items, device);
            let (states, x_high, v_h, mean) = tch::no_grad(|| -> Result<_> {
                let states = tracker.try_states(&batch)?;
                let x_high = Tensor::f_cat(&[&states, &aux_tensor(&step_aux, device)?], 1)?;
                let v_h = self.nets.value_high(&x_high)?;
                let mean = self.nets.goal_mean(&x_high)?;
                Ok((states, x_high, to_vec(&v_h)?, to_vec(&mean.f_flatten(0, -1)?)?))
            })?;

            // The high level acts at t = 0, c, 2c, ...: draw z ~ N(μ, σ²).
            let gd = self.cfg.goal_dim() as usize;
            for (k, &i) in active.iter().enumerate() {
                let t = env.items(i).len();
                if !t.is_multiple_of(c) {
                    continue;
                }
                let (raw, goal, log_prob) = match self.cfg.fixed_ratio {
                    Some(rho) => (vec![rho as f32], ratio_vector(rho), 0.0),
                    None => {
                        let mut raw = Vec::with_capacity(gd);
                        let mut lp = 0.0;
                        for d in 0..gd {
                            let eps = standard_normal(rng);
                            let z = f64::from(mean[k * gd + d]) + std[d] * eps;
                            lp += -0.5 * eps * eps - std[d].ln() - LN_SQRT_2PI;
                            raw.push(z);
                        }
                        let goal = goal_vector(self.cfg.goal, &raw);
                        (raw.iter().map(|&z| z as f32).collect(), goal, lp as f32)
                    }
                };
                open[i] = Some(OpenSegment { start: t, raw, goal, log_prob, value: v_h[k], reward: 0.0, long_tail: 0 });
            }

            // The low level: V_L and p̃ under the goal, then the goal's group reweighting.
            let goals: Vec<[f32; 2]> = active.iter().map(|&i| open[i].as_ref().map_or([0.0; 2], |s| s.goal)).collect();
            let (p, v_l, logits) = tch::no_grad(|| -> Result<_> {
                let goals = aux_tensor(&goals, device)?;
                let v_l = to_vec(&self.nets.value_low(&x_high, &goals)?)?;
                let logits = self.nets.low_logits(&states, &goals)?;
                Ok((logits.f_softmax(-1, Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?, v_l, logits))
            })?;
            probs.resize(active.len() * n_items, 0.0);
            p.f_copy_data(&mut probs, active.len() * n_items)?;

            let mut still = Vec::with_capacity(active.len());
            for (k, &i) in active.iter().enumerate() {
                let row = &mut probs[k * n_items..(k + 1) * n_items];
                if self.cfg.mask_shown {
                    // sample_reweighted renormalises
                    block_shown_exactly(row, env.items(i), || logits_row(&logits, k))?;
                }
                let (item, log_prob) = self.sample_reweighted(row, goals[k], rng);
                let r = reward_model.reward(users[i], item, env.items(i));
                let step = env.step(i, item);
                rewards[i].push(r);
                values_l[i].push(v_l[k]);
                log_probs_l[i].push(log_prob);
                aux[i].push(step_aux[k]);
                let tail = !self.facts.popular[item as usize];
                long_tail_steps += usize::from(tail);
                let seg = open[i].as_mut().expect("a goal is set at the start of every segment");
                seg.reward += r;
                seg.long_tail += usize::from(tail);
                let t = env.items(i).len();
                if step.done || t.is_multiple_of(c) {
                    let seg = open[i].take().expect("open segment");
                    let fairness = self.fairness(users[i], env.items(i), seg.start, seg.long_tail);
                    segments[i].push(Segment {
                        start: seg.start,
                        raw: seg.raw,
                        goal: seg.goal,
                        log_prob: seg.log_prob,
                        value: seg.value,
                        reward_h: seg.reward + self.cfg.lambda_f * fairness,
                    });
                }
                if !step.done {
                    still.push(i);
                }
            }
            active = still;
        }

        // Lay both levels out episode after episode, then GAE at each level.
        let mut out = HierRollout { long_tail_steps, ..Default::default() };
        out.low.users = users.clone();
        out.high.users = users;
        for i in 0..n {
            let (step0, seg0) = (out.low.actions.len(), out.high.rewards.len());
            out.low.starts.push(step0);
            out.high.starts.push(seg0);
            let len = rewards[i].len();
            out.low.episode_of.extend(std::iter::repeat_n(i as u32, len));
            out.low.actions.extend_from_slice(env.items(i));
            out.low.rewards.extend_from_slice(&rewards[i]);
            out.low.dones.extend((0..len).map(|t| t + 1 == len));
            out.low.values.extend_from_slice(&values_l[i]);
            out.low.log_probs.extend_from_slice(&log_probs_l[i]);
            out.aux.extend_from_slice(&aux[i]);
            let n_seg = segments[i].len();
            for (j, s) in segments[i].drain(..).enumerate() {
                let end = if j + 1 < n_seg { s.start + c } else { len };
                out.segment_of.extend(std::iter::repeat_n(seg0 + j, end - s.start));
                out.segment_start.push(step0 + s.start);
                out.raw_goal.push(s.raw);
                out.goal.push(s.goal);
                out.high.episode_of.push(i as u32);
                out.high.actions.push(0);
                out.high.rewards.push(s.reward_h);
                out.high.dones.push(j + 1 == n_seg);
                out.high.values.push(s.value);
                out.high.log_probs.push(s.log_prob);
            }
        }
        out.low.starts.push(out.low.actions.len());
        out.high.starts.push(out.high.rewards.len());
        out.low.compute_gae(self.cfg.gamma, self.cfg.gae_lambda);
        out.high.compute_gae(self.cfg.gamma.powi(c as i32), self.cfg.gae_lambda);
        Ok(out)
    }

    /// The fairness term F of the segment that started at step `start` of an episode now showing `items`:
    /// LT_seg / (1 + upp_u), −ΔGini of the episode's exposure over the whole catalogue, or −Gini of the window
    /// of the last `gini_window` recommendations.
    pub(super) fn fairness(&self, user: u32, items: &[u32], start: usize, long_tail: usize) -> f64 {
        match self.cfg.fairness {
            FairnessTerm::LongTail => {
                let lt_seg = long_tail as f64 / (items.len() - start).max(1) as f64;
                lt_seg / (1.0 + f64::from(self.facts.aux(user, &[])[0]))
            }
            FairnessTerm::DeltaGini => {
                let n = self.facts.popular.len();
                let mut counts = vec![0u64; n];
                items[..start].iter().for_each(|&i| counts[i as usize] += 1);
                let before = gini(&counts);
                items[start..].iter().for_each(|&i| counts[i as usize] += 1);
                before - gini(&counts)
            }
            FairnessTerm::WindowGini => {
                -self.facts.window_gini(&items[items.len().saturating_sub(self.cfg.gini_window)..])
            }
        }
    }

    /// Draws an item from p ∝ p̃ · w(group) and returns it with log p(item).
    pub(super) fn sample_reweighted(&self, row: &[f32], goal: [f32; 2], rng: &mut ChaCha8Rng) -> (u32, f32) {
        let popular = &self.facts.popular;
        let lt_mass: f64 = row.iter().zip(popular).filter(|(_, &p)| !p).map(|(&x, _)| f64::from(x)).sum::<f64>()
            / row.iter().map(|&x| f64::from(x)).sum::<f64>().max(f64::MIN_POSITIVE);
        let (w_pop, w_lt) = group_weights(self.cfg.goal, goal, lt_mass);
        let weight = |i: usize| if popular[i] { w_pop } else { w_lt };
        let total: f64 = row.iter().enumerate().map(|(i, &x)| f64::from(x) * weight(i)).sum();
        let mut u = rng.gen::<f64>() * total;
        let mut chosen = None;
        let mut last = 0;
        for (i, &x) in row.iter().enumerate() {
            let q = f64::from(x) * weight(i);
            if q > 0.0 {
                if u < q {
                    chosen = Some(i);
                    break;
                }
                u -= q;
                last = i;
            }
        }
        let a = chosen.unwrap_or(last);
        (a as u32, (f64::from(row[a]) * weight(a) / total).ln() as f32)
    }
}
