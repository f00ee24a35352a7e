//! DNaIR (Shi, Zhao, et al., TOIS 2023, "Relieving Popularity Bias in Interactive Recommendation: A
//! Diversity-Novelty-Aware Reinforcement Learning Approach"): a DQN whose training reward adds a
//! diversity-novelty term that favours good but unpopular items, and whose candidates are the items most
//! similar to the last one recommended. Online in the simulated environment like DQN (same buffer of whole
//! episodes, n-step double-DQN targets, the tracker trained through the Q loss).
//!
//! ```text
//! once, from the training log (never the ground truth):
//!   θ_a   = (positives_a + 1) / (rows_a + 2)                 # quality; positive: the data set's threshold
//!   pop_a = min-max scaled rows_a  ∈ [0, 1]
//!   dn_a  = minmax_a( θ_a / log10(pop_a + 1.1) ) ∈ [0, 1]     # diversity-novelty, scaled over the catalogue
//!   C(i)  = the `candidates` items of highest cos(ê_i, ê_j), j ≠ i  # ê: normalised MF item factors
//! w = β · (r_max − r_min) of the training reward               # the bonus can neither dominate nor vanish
//! collect: C = C(last shown item), or the whole catalogue on the first step
//!          a = argmax_{a ∈ C} Q(s, a) with probability `greedy`, else a uniform item of C
//! each gradient step on a uniform minibatch of n-step transitions (s, a, R, s', done):
//!   R'  = R + w Σ_{k<n} γ^k dn_{a_{t+k}}                      # the diversity-novelty reward, n-step
//!   a*  = argmax_{a ∈ C(a_{t+n−1})} Q(s', a)                   # online network picks among s'’s candidates
//!   y   = R' + γ^n (1 − done) Q_target(s', a*)                 # no gradient
//!   loss = mean_B (Q(tracker(history), a) − y)²               # one backward pass; Adam on Q and the tracker
//!   every `target_update` gradient steps: Q_target <- Q
//! evaluate: Q over C(last shown item) (the rest only when every candidate is blocked), argmax or softmax
//! with `mask_shown`: the episode's shown items leave C in collection, in the target's argmax and in every
//!   evaluation (C emptied that way: every unshown item)
//! ```
//!
//! What is adapted from DNaIR's MovieLens setting, and why:
//!
//! * **Positives.** MovieLens's good ratings (≥ 4) become each data set's positive: watch ratio ≥ 0.6 on
//!   KuaiRec (the threshold of DORL's MCD, here on the logged ratio as the environment rewards it), `is_click` on
//!   KuaiRand-Pure, rating ≥ 4 on Coat. Popularity counts the training log's rows of the item.
//! * **Weight.** DNaIR adds 0.4 · θ_a / log10(pop_a + 1.1) to a rating-scale relevance reward. Our rewards have
//!   other scales (watch ratios, clicks, world-model predictions), and an unscaled term would dwarf a click and
//!   vanish beside a long watch ratio; so the term is min-max scaled over the catalogue and weighted by β (0.4)
//!   times the training reward's range.
//! * **Similarity.** Candidates come from the cosine of the MF item factors of the training log
//!   (`item_factors.rs`), which exist for every data set here; on an episode's first step, with no last item,
//!   every item is a candidate.
//! * **State.** DNaIR encodes the last items itself; here it reads the project's tracker like every headline row,
//!   so the comparison is between the algorithms, not their encoders.
//! * **Target and evaluation.** The target's argmax runs over the successor's candidates (the only actions DNaIR
//!   can take there), and evaluation recommends the best candidate of the last shown item; in the no-repeat modes
//!   every candidate may already be shown, and then the best other unblocked item is taken instead of stopping.
//! * The histories the tracker reads keep the environment's reward: the bonus enters the TD target only, so the
//!   state means the same at training and evaluation.
//!
//! With `updates_per_1k_steps` (the paper study's equal compute, `crate::pace`) a collection of n steps after S
//! earns ⌊(S + n)u/1000⌋ − ⌊Su/1000⌋ gradient steps instead of ⌈n · update_per_step⌉.

use crate::item_factors::{ItemFactors, MfConfig};
use crate::learner::{EvalPolicy, Iteration, Learner, TrainingEnv};
use crate::losses::finite;
use crate::pace::paced_updates;
use crate::qnet::{soft_update, FrozenNet, ScoreNet};
use crate::replay::{Collection, ReplayBuffer};
use crate::scored_policy::{ScoredPolicy, Scorer};
use crate::step_counter::{counter_tensor, restore_counter};
use crate::td::double_q_target;
use crate::trained_tracker::{joint_step, TrainedTracker};
use crate::{AgentError, Result, UpdateStats};
use dsrm_nn::checkpoint;
use dsrm_nn::optim::{Adam, AdamConfig};
use dsrm_nn::tch::nn::VarStore;
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_sim::World;
use dsrm_state::StateTracker;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// Added to the Q-values of non-candidates: they are chosen only when no candidate can be.
const OUTSIDE: f64 = -1e6;

/// DNaIR hyper-parameters. Defaults: DNaIR's β 0.4, 10 candidates, greedy 0.95; the rest DQN's (EasyRL4Rec's
/// off-policy settings, DORL's lr, γ and network).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnairConfig {
    /// Adam learning rate of the Q-network.
    pub lr: f64,
    /// Adam learning rate of the state tracker (its own optimiser).
    pub tracker_lr: f64,
    /// Discount γ.
    pub gamma: f64,
    /// Steps of the n-step return.
    pub n_step: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Replay buffer capacity in steps.
    pub buffer_size: usize,
    /// Gradient steps between copies of the Q-network into the target network.
    pub target_update: usize,
    /// Weight β of the diversity-novelty term, in units of the training reward's range.
    pub beta: f64,
    /// Candidates per step: the items most similar to the last one.
    pub candidates: usize,
    /// Probability of the best candidate while collecting (else a uniform candidate).
    pub greedy: f64,
    /// Gradient steps per collected step (unless paced).
    pub update_per_step: f64,
    /// Paced gradient steps per 1,000 environment steps (`crate::pace`); overrides `update_per_step`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates_per_1k_steps: Option<f64>,
    /// Hidden layers of the Q-network.
    pub hidden: Vec<i64>,
    /// The MF whose normalised item factors define the similarity.
    pub mf: MfConfig,
    /// Never recommend an item the episode has shown: collection, target and evaluation skip them
    /// (`crate::shown`).
    pub mask_shown: bool,
}

impl Default for DnairConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            tracker_lr: 1e-3,
            gamma: 0.9,
            n_step: 3,
            batch_size: 64,
            buffer_size: 100_000,
            target_update: 320,
            beta: 0.4,
            candidates: 10,
            greedy: 0.95,
            update_per_step: 0.125,
            updates_per_1k_steps: None,
            hidden: vec![64, 64],
            mf: MfConfig::default(),
            mask_shown: false,
        }
    }
}

impl DnairConfig {
    /// Settings out of their domain.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.batch_size == 0 || self.n_step == 0 || self.target_update == 0 || self.buffer_size == 0 {
            p.push("dnair batch_size, n_step, target_update and buffer_size >= 1".into());
        }
        if self.candidates == 0 {
            p.push("dnair candidates >= 1".into());
        }
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.greedy) {
            p.push("dnair gamma and greedy in [0, 1]".into());
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            p.push("dnair beta finite and >= 0".into());
        }
        if self.update_per_step <= 0.0 {
            p.push("dnair update_per_step > 0".into());
        }
        if self.mf.dim == 0 {
            p.push("dnair mf.dim >= 1".into());
        }
        p
    }
}

/// The training log's positive threshold of a data set (see the module's header).
fn positive_threshold(dataset: &str) -> Result<f64> {
    match dataset {
        "kuairec" => Ok(0.6),
        "kuairand-pure" => Ok(0.5),
        "coat" => Ok(4.0),
        other => Err(AgentError::Config(format!(
            "dnair: no positive threshold for data set {other:?} (kuairec, kuairand-pure, coat)"
        ))),
    }
}

/// Min-max scaling to [0, 1] (all 0 when constant).
fn min_max(x: &[f64]) -> Vec<f64> {
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    x.iter().map(|&v| if hi > lo { (v - lo) / (hi - lo) } else { 0.0 }).collect()
}

/// dn_a over the catalogue from the training log (see the module's header).
pub fn diversity_novelty(world: &World) -> Result<Vec<f64>> {
    let threshold = positive_threshold(&world.dataset)?;
    let n_items = world.spec.n_items();
    let (mut rows, mut positives) = (vec![0u64; n_items], vec![0u64; n_items]);
    for (&item, &target) in world.train.item.iter().zip(&world.train.target) {
        if let Some(r) = rows.get_mut(item as usize) {
            *r += 1;
            positives[item as usize] += u64::from(target >= threshold);
        }
    }
    let pop = min_max(&rows.iter().map(|&r| r as f64).collect::<Vec<_>>());
    let raw: Vec<f64> = (0..n_items)
        .map(|a| {
            let quality = (positives[a] as f64 + 1.0) / (rows[a] as f64 + 2.0);
            quality / (pop[a] + 1.1).log10()
        })
        .collect();
    Ok(min_max(&raw))
}

/// A DNaIR agent: Q-network, target network, optimiser, replay buffer, the per-item bonus and candidates.
#[derive(Debug)]
pub struct Dnair {
    /// Hyper-parameters.
    pub cfg: DnairConfig,
    /// Q(s, ·) over the catalogue, in `vs`.
    pub q: ScoreNet,
    /// Q's weights.
    pub vs: VarStore,
    /// The periodically copied target network, in `target_vs`.
    pub target: ScoreNet,
    /// The target network's weights.
    pub target_vs: VarStore,
    /// Q's optimiser (the tracker has its own).
    pub adam: Adam,
    /// Collected episodes (with the environment's rewards; the bonus is added in the target).
    pub buffer: ReplayBuffer,
    /// Gradient steps so far (schedules the target copies).
    pub grad_steps: u64,
    /// dn_a per item, in [0, 1].
    pub novelty: Vec<f64>,
    /// Per item, its `candidates` nearest items by cosine (row-major, `candidates` per item).
    pub neighbours: Arc<Vec<u32>>,
}

impl Dnair {
    /// A fresh agent for `world` (computes the bonus and the candidates from its training log; seed libtorch
    /// first).
    pub fn new(cfg: DnairConfig, state_dim: i64, world: &World, device: Device) -> Result<Self> {
        let n_items = world.spec.n_items();
        if cfg.candidates == 0 || cfg.candidates >= n_items {
            return Err(AgentError::Config(format!(
                "dnair candidates = {}: needs 1 ..= {} (fewer than the {n_items} items)",
                cfg.candidates,
                n_items.saturating_sub(1)
            )));
        }
        let novelty = diversity_novelty(world)?;
        let factors = ItemFactors::fit(world, &cfg.mf)?;
        let neighbours: Vec<u32> = (0..n_items).flat_map(|i| factors.nearest(i, cfg.candidates)).collect();
        let (vs, target_vs) = (VarStore::new(device), VarStore::new(device));
        let q = ScoreNet::new(&vs, "q", state_dim, &cfg.hidden, n_items as i64)?;
        let target = ScoreNet::new(&target_vs, "q", state_dim, &cfg.hidden, n_items as i64)?;
        soft_update(&target_vs, &vs, 1.0)?;
        let adam = Adam::new(&vs, AdamConfig { lr: cfg.lr, ..Default::default() });
        let buffer = ReplayBuffer::new(cfg.buffer_size);
        Ok(Self {
            cfg,
            q,
            vs,
            target,
            target_vs,
            adam,
            buffer,
            grad_steps: 0,
            novelty,
            neighbours: Arc::new(neighbours),
        })
    }

    /// The candidates of the step after `last` was shown.
    fn candidates(&self, last: u32) -> &[u32] {
        let k = self.cfg.candidates;
        &self.neighbours[last as usize * k..(last as usize + 1) * k]
    }

    /// The items the step after `last` may show, in order: its candidates (every item on an episode's first
    /// step); with `shown` (masking on), those not shown, or every unshown item when all candidates were.
    fn open_candidates(&self, last: Option<u32>, shown: Option<&[u32]>) -> Vec<u32> {
        let n_items = self.q.n_out() as u32;
        let all = || (0..n_items).collect::<Vec<u32>>();
        let cands = last.map_or_else(all, |l| self.candidates(l).to_vec());
        let Some(shown) = shown else { return cands };
        let open: Vec<u32> = cands.into_iter().filter(|i| !shown.contains(i)).collect();
        if open.is_empty() {
            all().into_iter().filter(|i| !shown.contains(i)).collect()
        } else {
            open
        }
    }

    /// One gradient step on a uniform minibatch, with the bonus weighted by `weight` (= β · reward range).
    pub fn learn(&mut self, tracker: &mut TrainedTracker, weight: f64, rng: &mut ChaCha8Rng) -> Result<UpdateStats> {
        let (window, n_items, device) = (tracker.tracker.window(), self.q.n_out() as usize, self.vs.device());
        let (gamma, n_step) = (self.cfg.gamma, self.cfg.n_step);
        let steps = self.buffer.sample(self.cfg.batch_size, rng);
        let mut tr = self.buffer.transitions(&steps, n_step, gamma, window, n_items, device)?;

        // The n-step diversity-novelty bonus, and the successor's candidates (those of its last item).
        let mut bonus = Vec::with_capacity(steps.len());
        let mut offset = vec![OUTSIDE as f32; steps.len() * n_items];
        for (row, &s) in steps.iter().enumerate() {
            let end = self.buffer.starts[self.buffer.episode_of[s] as usize + 1];
            let last = (s + n_step.max(1)).min(end);
            let b: f64 = self.buffer.actions[s..last]
                .iter()
                .enumerate()
                .map(|(k, &a)| gamma.powi(k as i32) * self.novelty[a as usize])
                .sum();
            bonus.push((weight * b) as f32);
            for &c in self.candidates(self.buffer.actions[last - 1]) {
                offset[row * n_items + c as usize] = 0.0;
            }
        }
        let bonus = Tensor::from_slice(&bonus).f_to_device(device)?;
        tr.rewards = tr.rewards.f_add(&bonus)?;
        let mut offset =
            Tensor::from_slice(&offset).f_view([steps.len() as i64, n_items as i64])?.f_to_device(device)?;
        if self.cfg.mask_shown {
            offset = offset.f_add(&self.buffer.shown_penalty(&steps, n_step, n_items, device)?)?;
        }
        let y = double_q_target(&self.q, &self.target, tracker, &tr, gamma, n_step, Some(&offset))?;

        let states = tracker.states(&tr.states)?;
        let q_sa = self.q.forward(&states)?.f_gather(1, &tr.actions, false)?.f_squeeze_dim(1)?;
        let loss = q_sa.f_sub(&y)?.f_square()?.f_mean(Kind::Float)?;
        let loss_value = finite("dnair", &loss, self.grad_steps)?;
        joint_step(&loss, &mut self.adam, tracker)?;
        self.grad_steps += 1;
        if self.grad_steps.is_multiple_of(self.cfg.target_update as u64) {
            soft_update(&self.target_vs, &self.vs, 1.0)?;
        }
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("q_mean".to_string(), q_sa.f_mean(Kind::Float)?.f_double_value(&[])?);
        extra.insert("dn_bonus".to_string(), bonus.f_mean(Kind::Float)?.f_double_value(&[])?);
        Ok(UpdateStats { loss: loss_value, vf_loss: loss_value, grad_steps: 1, extra, ..Default::default() })
    }
}

impl Learner for Dnair {
    fn name(&self) -> &'static str {
        "dnair"
    }

    fn iterate(&mut self, env: &TrainingEnv, tracker: &mut TrainedTracker, rng: &mut ChaCha8Rng) -> Result<Iteration> {
        let t = Instant::now();
        let device = self.vs.device();
        let rollout = {
            let this = &*self;
            let n_items = this.q.n_out() as usize;
            let collection = Collection::new(env, tracker.tracker.as_ref(), device).masking_shown(this.cfg.mask_shown);
            collection.run(rng, |rows, rng| {
                let q = tch::no_grad(|| this.q.forward(&rows.states))?.f_to_device(Device::Cpu)?.f_contiguous()?;
                let mut flat = vec![0f32; rows.len() * n_items];
                let len = flat.len();
                q.f_copy_data(&mut flat, len)?;
                Ok(flat
                    .chunks(n_items)
                    .enumerate()
                    .map(|(k, q)| {
                        let cands = this.open_candidates(rows.last(k), rows.blocks_shown(k).then_some(rows.shown[k]));
                        // One coin and one uniform draw per row, so the stream does not depend on Q.
                        let (coin, pick) = (rng.gen::<f64>(), rng.gen_range(0..cands.len()));
                        if coin < this.cfg.greedy {
                            cands
                                .iter()
                                .copied()
                                .max_by(|&a, &b| q[a as usize].total_cmp(&q[b as usize]).then(b.cmp(&a)))
                                .unwrap_or(0)
                        } else {
                            cands[pick]
                        }
                    })
                    .collect())
            })?
        };
        self.buffer.push_rollout(&rollout);
        let collect_s = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let (lo, hi) = env.reward_model.range();
        let weight = self.cfg.beta * (hi - lo);
        let updates = match self.cfg.updates_per_1k_steps {
            Some(u) if !self.buffer.is_empty() => paced_updates(u, env.steps_before, rollout.len()),
            None if self.buffer.len() >= self.cfg.batch_size => {
                (rollout.len() as f64 * self.cfg.update_per_step).ceil() as usize
            }
            _ => 0,
        };
        let mut stats = UpdateStats::default();
        for _ in 0..updates {
            stats.merge(&self.learn(tracker, weight, rng)?);
        }
        Ok(Iteration::of(&rollout, stats, collect_s, t.elapsed().as_secs_f64()))
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut t = checkpoint::named("dnair_q", &self.vs);
        t.extend(checkpoint::named("dnair_target", &self.target_vs));
        t.extend(self.adam.state("dnair_adam"));
        t.extend(self.buffer.tensors("dnair_replay"));
        t.push(counter_tensor("dnair/grad_steps", self.grad_steps));
        t
    }

    fn restore(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        checkpoint::restore("dnair_q", &mut self.vs, tensors)?;
        checkpoint::restore("dnair_target", &mut self.target_vs, tensors)?;
        self.adam.restore("dnair_adam", tensors)?;
        self.buffer.restore("dnair_replay", tensors)?;
        self.grad_steps = restore_counter("dnair/grad_steps", tensors)?;
        Ok(())
    }

    fn snapshot(&self, tracker: Box<dyn StateTracker>, reward_range: (f64, f64)) -> Result<Box<dyn EvalPolicy>> {
        let n_items = self.q.n_out() as usize;
        let scorer = CandidateScorer {
            net: self.q.freeze(&self.vs)?,
            neighbours: Arc::clone(&self.neighbours),
            k: self.cfg.candidates,
            n_items,
        };
        let policy = ScoredPolicy::new("dnair", tracker, Box::new(scorer), n_items, reward_range)?;
        Ok(Box::new(policy.masking_shown(self.cfg.mask_shown)))
    }
}

/// A frozen Q-network whose scores favour the candidates of the last shown item.
struct CandidateScorer {
    net: FrozenNet,
    neighbours: Arc<Vec<u32>>,
    k: usize,
    n_items: usize,
}

impl Scorer for CandidateScorer {
    fn scores(&self, states: &Tensor) -> Result<Tensor> {
        self.net.net.forward(states)
    }

    fn scores_after(&self, states: &Tensor, last: Option<u32>) -> Result<Tensor> {
        let q = self.net.net.forward(states)?;
        let Some(last) = last else { return Ok(q) };
        let mut offset = vec![OUTSIDE as f32; self.n_items];
        for &c in &self.neighbours[last as usize * self.k..(last as usize + 1) * self.k] {
            offset[c as usize] = 0.0;
        }
        let offset = Tensor::from_slice(&offset).f_to_device(q.device())?.f_unsqueeze(0)?;
        q.f_add(&offset).map_err(AgentError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::Algorithm;

    #[test]
    fn the_bonus_favours_good_unpopular_items_and_is_scaled_to_the_unit_interval() {
        let world = dsrm_sim::test_support::tiny_world();
        let dn = diversity_novelty(world).unwrap();
        assert_eq!(dn.len(), world.spec.n_items());
        assert!(dn.iter().all(|&x| (0.0..=1.0).contains(&x)));
        assert!(dn.contains(&0.0) && dn.contains(&1.0));
        // Among items with as many training rows, more positives (watch ratio >= 0.6) score higher.
        let n = world.spec.n_items();
        let (mut rows, mut pos) = (vec![0u32; n], vec![0u32; n]);
        for (&i, &y) in world.train.item.iter().zip(&world.train.target) {
            if (i as usize) < n {
                rows[i as usize] += 1;
                pos[i as usize] += u32::from(y >= 0.6);
            }
        }
        let mut compared = 0;
        for a in 0..n {
            for b in 0..n {
                if rows[a] == rows[b] && pos[a] > pos[b] {
                    assert!(dn[a] > dn[b], "items {a}, {b}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 0);
        let mut coat = world.clone();
        coat.dataset = "movielens".into();
        assert!(diversity_novelty(&coat).unwrap_err().to_string().contains("movielens"));
    }

    #[test]
    fn settings_out_of_their_domain_are_named() {
        let named = |c: DnairConfig, key: &str| {
            let p = Algorithm::Dnair(c).problems().join("; ");
            assert!(p.contains(key), "{key}: {p}");
        };
        named(DnairConfig { candidates: 0, ..Default::default() }, "candidates");
        named(DnairConfig { greedy: 1.5, ..Default::default() }, "greedy");
        named(DnairConfig { beta: -1.0, ..Default::default() }, "beta");
        named(DnairConfig { updates_per_1k_steps: Some(-1.0), ..Default::default() }, "updates_per_1k_steps");
        assert!(Algorithm::Dnair(DnairConfig::default()).problems().is_empty());
        let world = dsrm_sim::test_support::tiny_world();
        let too_many = DnairConfig { candidates: world.spec.n_items(), ..Default::default() };
        let err = Dnair::new(too_many, 4, world, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("candidates"), "{err}");
    }
}
