//! Collecting experience in the *training* environment, and turning it into advantages.
//!
//! The training environment is the anchors' simulated environment (`docs/protocol.md` §4.3): the real
//! environment's quit and length logic (a [`VecEnv`] over the world's [`EnvSpec`]) with the reward replaced
//! by a [`RewardModel`] (a world model; the ground truth only in labelled diagnostic runs). Everything else
//! keeps the environment's semantics: the step that triggers the quit is rewarded and ends the episode.
//!
//! One collection is tianshou's `collector.collect(n_episode = episode_per_collect)` with as many
//! environments as episodes: every environment plays exactly one whole episode for a uniformly drawn user,
//! in lockstep, and the policy runs once per step on all unfinished episodes together (one batched forward
//! instead of one per environment). Actions are sampled in Rust from the softmax probabilities with the
//! run's ChaCha generator, so collection never touches libtorch's generator. Training uses FB mode: nothing
//! is masked, repeats are allowed.
//!
//! The rollout stores what the update needs to *recompute* the states with gradients (each step's user and
//! the items and rewards before it), the action, the training reward, done, and the value and log-probability
//! at collection time.

use crate::actor_critic::ActorCritic;
use crate::shown::block_shown_exactly;
use crate::Result;
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_sim::{EnvSpec, RewardModel, VecEnv};
use dsrm_state::{HistoryBatch, StateTracker};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How one collection runs and how its advantages are computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RolloutConfig {
    /// Episodes per collection = parallel environments (DORL: 100 envs, `episode_per_collect` 100).
    pub episodes: usize,
    /// Discount γ.
    pub gamma: f64,
    /// GAE λ (1.0: discounted Monte-Carlo return minus the value, A2C's setting in DORL).
    pub gae_lambda: f64,
    /// Block each episode's shown items (`crate::shown`); off, nothing is masked (FB).
    pub mask_shown: bool,
}

/// Whole episodes laid out one after another (episode e owns steps `starts[e]..starts[e + 1]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollout {
    /// Per episode: the user.
    pub users: Vec<u32>,
    /// Per episode: offset of its first step; one more entry than episodes.
    pub starts: Vec<usize>,
    /// Per step: the episode it belongs to.
    pub episode_of: Vec<u32>,
    /// Per step: the recommended item.
    pub actions: Vec<u32>,
    /// Per step: the training reward (the reward model's, not the ground truth).
    pub rewards: Vec<f64>,
    /// Per step: the episode ended here (quit rule or cap).
    pub dones: Vec<bool>,
    /// Per step: V(s_t) at collection time.
    pub values: Vec<f32>,
    /// Per step: log π(a_t | s_t) at collection time.
    pub log_probs: Vec<f32>,
    /// Per step: GAE advantage.
    pub advantages: Vec<f32>,
    /// Per step: advantage + value (the critic's target).
    pub returns: Vec<f32>,
}

impl Rollout {
    /// Number of steps.
    pub fn len(&self) -> usize {
        self.actions.len()
    }
    /// True when no step was collected.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
    /// Number of episodes.
    pub fn n_episodes(&self) -> usize {
        self.users.len()
    }

    /// The history *before* step `s` (its user, the items and training rewards earlier in its episode).
    pub fn history(&self, s: usize) -> (u32, &[u32], &[f64]) {
        let e = self.episode_of[s] as usize;
        let start = self.starts[e];
        (self.users[e], &self.actions[start..s], &self.rewards[start..s])
    }

    /// The tracker input for the states of `steps`.
    pub fn history_batch(&self, steps: &[usize], window: usize, n_items: usize, device: Device) -> HistoryBatch {
        let rows: Vec<(u32, &[u32], &[f64])> = steps.iter().map(|&s| self.history(s)).collect();
        HistoryBatch::new(&rows, window, n_items, device)
    }

    /// Mean training reward per episode (the cumulative reward the agent maximises).
    pub fn mean_episode_reward(&self) -> f64 {
        self.rewards.iter().sum::<f64>() / self.n_episodes().max(1) as f64
    }

    /// Mean episode length.
    pub fn mean_length(&self) -> f64 {
        self.len() as f64 / self.n_episodes().max(1) as f64
    }

    /// Fills `advantages` and `returns` with GAE(γ, λ), episode by episode (tianshou's
    /// `compute_episodic_return`): δ_t = r_t + γ (1 − done_t) V(s_{t+1}) − V(s_t),
    /// A_t = δ_t + γ λ (1 − done_t) A_{t+1}, return_t = A_t + V(s_t). Every stored episode ends with done, so no
    /// value is bootstrapped past its end.
    pub fn compute_gae(&mut self, gamma: f64, lambda: f64) {
        let n = self.len();
        self.advantages = vec![0.0; n];
        self.returns = vec![0.0; n];
        for e in 0..self.n_episodes() {
            let (start, end) = (self.starts[e], self.starts[e + 1]);
            let mut next_adv = 0.0f64;
            let mut next_value = 0.0f64;
            for t in (start..end).rev() {
                let live = if self.dones[t] { 0.0 } else { 1.0 };
                let v = f64::from(self.values[t]);
                let delta = self.rewards[t] + gamma * live * next_value - v;
                next_adv = delta + gamma * lambda * live * next_adv;
                next_value = v;
                self.advantages[t] = next_adv as f32;
                self.returns[t] = (next_adv + v) as f32;
            }
        }
    }
}

/// Row `k` of `[B, n]` logits, on the CPU.
pub(crate) fn logits_row(logits: &Tensor, k: usize) -> Result<Vec<f32>> {
    let row = logits.f_get(k as i64)?.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?;
    Ok(Vec::<f32>::try_from(row)?)
}

/// Draws an index from unnormalised probabilities (`u · Σp`, then a linear scan). Rounding can leave `u` past
/// the last bucket; then the last item with positive probability is returned.
pub(crate) fn sample_index(probs: &[f32], rng: &mut ChaCha8Rng) -> usize {
    let total: f64 = probs.iter().map(|&p| f64::from(p)).sum();
    let mut u = rng.gen::<f64>() * total;
    let mut last = 0;
    for (i, &p) in probs.iter().enumerate() {
        let p = f64::from(p);
        if p > 0.0 {
            if u < p {
                return i;
            }
            u -= p;
            last = i;
        }
    }
    last
}

/// Plays `cfg.episodes` whole episodes in the training environment and returns them with GAE computed.
///
/// Users are drawn uniformly from all of the environment's users (the anchors train on every user of the
/// simulated environment; the validation / test split only concerns evaluation). The reward of each step is
/// `reward_model.reward(user, item, items shown before)`, and the tracker sees these training rewards.
pub fn collect(
    spec: &EnvSpec,
    reward_model: &dyn RewardModel,
    net: &ActorCritic,
    tracker: &dyn StateTracker,
    cfg: &RolloutConfig,
    rng: &mut ChaCha8Rng,
) -> Result<Rollout> {
    let n = cfg.episodes.max(1);
    let n_items = spec.n_items();
    if n_items as i64 != net.n_items() || spec.n_users() == 0 {
        return Err(crate::AgentError::Config(format!(
            "the policy has {} actions but the environment has {n_items} items and {} users",
            net.n_items(),
            spec.n_users()
        )));
    }
    let device = net.vs.device();
    let window = tracker.window();
    let mut env = VecEnv::new(spec, n, spec.max_turn);
    let users: Vec<u32> = (0..n).map(|i| env.reset_random(i, rng)).collect();
    let mut rewards: Vec<Vec<f64>> = vec![Vec::with_capacity(spec.max_turn); n];
    let mut values: Vec<Vec<f32>> = vec![Vec::with_capacity(spec.max_turn); n];
    let mut log_probs: Vec<Vec<f32>> = vec![Vec::with_capacity(spec.max_turn); n];
    let mut active: Vec<usize> = (0..n).collect();
    let mut probs: Vec<f32> = Vec::new();
    let mut chosen: Vec<u32> = Vec::with_capacity(n);
    let mut chosen_lp: Vec<f32> = Vec::with_capacity(n);

    while !active.is_empty() {
        let rows: Vec<(u32, &[u32], &[f64])> =
            active.iter().map(|&i| (users[i], env.items(i), rewards[i].as_slice())).collect();
        let batch = HistoryBatch::new(&rows, window, n_items, device);
        let (p, v, logits) = tch::no_grad(|| -> Result<(Tensor, Tensor, Tensor)> {
            let states = tracker.try_states(&batch)?;
            let (logits, v) = net.forward(&states)?;
            Ok((logits.f_softmax(-1, Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?, v, logits))
        })?;
        probs.resize(active.len() * n_items, 0.0);
        p.f_copy_data(&mut probs, active.len() * n_items)?;
        let v: Vec<f32> = Vec::<f32>::try_from(v.f_to_device(Device::Cpu)?)?;
        chosen.clear();
        chosen_lp.clear();
        for (k, &i) in active.iter().enumerate() {
            let row = &mut probs[k * n_items..(k + 1) * n_items];
            let mass = match cfg.mask_shown {
                true => block_shown_exactly(row, env.items(i), || logits_row(&logits, k))?,
                false => 1.0,
            };
            let a = sample_index(row, rng);
            chosen.push(a as u32);
            // log π(a|s) from the float32 probability: within 1e-7 of log_softmax for any item that can be
            // drawn, and it saves a second pass over the [B, n_items] logits per step.
            chosen_lp.push((f64::from(row[a]) / mass).ln() as f32);
        }

        let mut still = Vec::with_capacity(active.len());
        for (k, &i) in active.iter().enumerate() {
            let item = chosen[k];
            let r = reward_model.reward(users[i], item, env.items(i));
            let step = env.step(i, item);
            rewards[i].push(r);
            values[i].push(v[k]);
            log_probs[i].push(chosen_lp[k]);
            if !step.done {
                still.push(i);
            }
        }
        active = still;
    }

    let total: usize = rewards.iter().map(Vec::len).sum();
    let mut out = Rollout {
        users,
        starts: Vec::with_capacity(n + 1),
        episode_of: Vec::with_capacity(total),
        actions: Vec::with_capacity(total),
        rewards: Vec::with_capacity(total),
        dones: Vec::with_capacity(total),
        values: Vec::with_capacity(total),
        log_probs: Vec::with_capacity(total),
        ..Default::default()
    };
    for i in 0..n {
        out.starts.push(out.actions.len());
        let len = rewards[i].len();
        out.episode_of.extend(std::iter::repeat_n(i as u32, len));
        out.actions.extend_from_slice(env.items(i));
        out.rewards.extend_from_slice(&rewards[i]);
        out.dones.extend((0..len).map(|t| t + 1 == len));
        out.values.extend_from_slice(&values[i]);
        out.log_probs.extend_from_slice(&log_probs[i]);
    }
    out.starts.push(out.actions.len());
    out.compute_gae(cfg.gamma, cfg.gae_lambda);
    Ok(out)
}

/// tianshou's `Batch.split(size, shuffle=True, merge_last=True)`: a random permutation cut into chunks of
/// `size`, where a short remainder is merged into the chunk before it (so chunks hold `size` to `2 size - 1`
/// steps, and everything when `n <= size`).
pub fn minibatches(n: usize, size: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    let size = size.max(1);
    let mut order: Vec<usize> = (0..n).collect();
    // Fisher-Yates with our generator (never numpy's; the stream is the run's).
    for i in (1..n).rev() {
        let j = rng.gen_range(0..=i);
        order.swap(i, j);
    }
    let merge_last = !n.is_multiple_of(size);
    let mut out = Vec::new();
    let mut idx = 0;
    while idx < n {
        if merge_last && idx + 2 * size >= n {
            out.push(order[idx..].to_vec());
            break;
        }
        out.push(order[idx..(idx + size).min(n)].to_vec());
        idx += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn gae_with_lambda_one_is_the_discounted_return_minus_value() {
        let mut r = Rollout {
            users: vec![0, 1],
            starts: vec![0, 3, 5],
            episode_of: vec![0, 0, 0, 1, 1],
            actions: vec![0; 5],
            rewards: vec![1.0, 2.0, 3.0, 1.0, 1.0],
            dones: vec![false, false, true, false, true],
            values: vec![0.5, 0.25, 0.0, 1.0, 0.0],
            log_probs: vec![0.0; 5],
            ..Default::default()
        };
        r.compute_gae(0.9, 1.0);
        let g0 = 1.0 + 0.9 * 2.0 + 0.81 * 3.0;
        assert!((r.returns[0] as f64 - g0).abs() < 1e-5);
        assert!((r.advantages[0] as f64 - (g0 - 0.5)).abs() < 1e-5);
        assert!((r.returns[2] - 3.0).abs() < 1e-6);
        assert!((r.returns[3] as f64 - 1.9).abs() < 1e-6, "episodes do not leak into each other");
        // λ = 0: one-step TD error.
        r.compute_gae(0.9, 0.0);
        assert!((r.advantages[0] as f64 - (1.0 + 0.9 * 0.25 - 0.5)).abs() < 1e-6);
        assert_eq!(r.history(4), (1, &[0u32][..], &[1.0][..]));
    }

    #[test]
    fn minibatches_follow_tianshou_merge_last() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let sizes = |n, s, rng: &mut ChaCha8Rng| minibatches(n, s, rng).iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(sizes(2048, 1024, &mut rng), [1024, 1024]);
        assert_eq!(sizes(2500, 1024, &mut rng), [1024, 1476]);
        assert_eq!(sizes(3500, 1024, &mut rng), [1024, 1024, 1452]);
        assert_eq!(sizes(700, 1024, &mut rng), [700]);
        let mut all: Vec<usize> = minibatches(2500, 1024, &mut rng).concat();
        all.sort_unstable();
        assert_eq!(all, (0..2500).collect::<Vec<_>>());
    }

    #[test]
    fn sampling_follows_the_probabilities() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let p = [0.0f32, 0.25, 0.0, 0.75];
        let mut counts = [0u32; 4];
        for _ in 0..20_000 {
            counts[sample_index(&p, &mut rng)] += 1;
        }
        assert_eq!(counts[0] + counts[2], 0);
        assert!((counts[3] as f64 / 20_000.0 - 0.75).abs() < 0.015, "{counts:?}");
    }
}
