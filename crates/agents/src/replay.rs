//! The experience of the off-policy learners: whole episodes kept compactly, filled online (DQN, SAC) or once
//! from the logged training data (BCQ, CQL, CRR, SQN), and sampled as n-step transitions.
//!
//! Episodes are laid out one after another like a [`Rollout`]: per episode its user and first step, per step
//! the item and the reward. A transition is a step index s; its state is rebuilt from the history *before*
//! s and its n-step successor from the history before s + n, exactly as the rollout rebuilds tracker inputs
//! (so nothing of size `window × state_dim` is stored per step, and a tracker trained jointly always sees
//! fresh states).
//!
//! **The logged buffer** ([`ReplayBuffer::from_log`]) follows DORL's `policy_utils.py`: every user's logged
//! sequence, in time order, is replayed through the environment's quit rule, which cuts it into episodes
//! (an episode ends where the real environment would have ended it: quit or `max_turn`); a sequence's
//! last piece ends with the log. Rewards are the log's targets, on the ground truth's scale (KuaiRec: watch
//! ratio capped like the truth; KuaiRand: `is_click`). Only catalogue items can be actions, so the log is
//! the world's `train` (the big matrix restricted to catalogue videos for KuaiRec; the whole standard log
//! for KuaiRand-Pure, whose catalogue is every video). Users outside the environment keep their ids: the
//! trackers read items and rewards only.
//!
//! [`OfflineConfig`] holds the settings the offline learners share and runs their training iteration (a fixed
//! number of gradient steps on logged minibatches; `Iteration.steps` counts the logged transitions consumed).

use crate::learner::TrainingEnv;
use crate::rollout::Rollout;
use crate::shown::{masks_shown, shown_penalty};
use crate::trained_tracker::TrainedTracker;
use crate::{AgentError, Iteration, Result, UpdateStats};
use dsrm_models::Interactions;
use dsrm_nn::tch::{self, Device, Kind, Tensor};
use dsrm_sim::{EnvSpec, VecEnv};
use dsrm_state::{HistoryBatch, StateTracker};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Whole episodes, oldest first, up to a capacity in steps (older episodes are dropped first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayBuffer {
    /// Most steps kept (0: unbounded, the logged buffer).
    pub capacity: usize,
    /// Per episode: the user.
    pub users: Vec<u32>,
    /// Per episode: offset of its first step; one more entry than episodes.
    pub starts: Vec<usize>,
    /// Per step: the episode it belongs to.
    pub episode_of: Vec<u32>,
    /// Per step: the recommended (or logged) item.
    pub actions: Vec<u32>,
    /// Per step: its reward.
    pub rewards: Vec<f64>,
}

/// A minibatch of n-step transitions, ready for a Q update.
pub struct Transitions {
    /// Tracker input of the states s_t.
    pub states: HistoryBatch,
    /// Tracker input of the states s_{t+n} (meaningless where `dones` is 1).
    pub next: HistoryBatch,
    /// `[B, 1]` int64 actions a_t.
    pub actions: Tensor,
    /// `[B]` Σ_{k<n} γ^k r_{t+k}, stopping at the episode's end.
    pub rewards: Tensor,
    /// `[B]` 1 where the episode ended within the n steps (no bootstrap).
    pub dones: Tensor,
}

impl ReplayBuffer {
    /// An empty buffer keeping at most `capacity` steps (0: unbounded).
    pub fn new(capacity: usize) -> Self {
        Self { capacity, starts: vec![0], ..Default::default() }
    }

    /// Number of steps (transitions).
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// True when no step is stored.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Number of episodes.
    pub fn n_episodes(&self) -> usize {
        self.users.len()
    }

    /// The logged training data as episodes cut by the environment's quit rule (see the module docs).
    pub fn from_log(log: &Interactions, spec: &EnvSpec) -> Result<Self> {
        let n_items = spec.n_items();
        let mut buf = Self::new(0);
        let mut history: Vec<u32> = Vec::with_capacity(spec.max_turn);
        let mut prev_user = None;
        for row in 0..log.len() {
            let (user, item, reward) = (log.user[row], log.item[row], log.target[row]);
            if item as usize >= n_items {
                continue;
            }
            if !reward.is_finite() {
                return Err(AgentError::Config(format!("training log row {row}: reward {reward} is not finite")));
            }
            if prev_user != Some(user) {
                if prev_user.is_some_and(|p| p > user) {
                    return Err(AgentError::Config(format!(
                        "training log row {row}: rows must be ordered by user (user {user} after {})",
                        prev_user.unwrap_or_default()
                    )));
                }
                buf.close_episode();
                history.clear();
                prev_user = Some(user);
            }
            if history.is_empty() {
                buf.users.push(user);
            }
            let (_, done) = spec.done_after(&history, item);
            buf.episode_of.push((buf.users.len() - 1) as u32);
            buf.actions.push(item);
            buf.rewards.push(reward);
            history.push(item);
            if done {
                buf.close_episode();
                history.clear();
            }
        }
        buf.close_episode();
        if buf.is_empty() {
            return Err(AgentError::Config("the training log holds no catalogue item: nothing to learn from".into()));
        }
        Ok(buf)
    }

    /// Ends the open episode, if it has steps.
    fn close_episode(&mut self) {
        if self.starts.last() != Some(&self.actions.len()) {
            self.starts.push(self.actions.len());
        }
    }

    /// Appends the whole episodes of a collection, then drops the oldest episodes beyond the capacity.
    pub fn push_rollout(&mut self, rollout: &Rollout) {
        for e in 0..rollout.n_episodes() {
            let (start, end) = (rollout.starts[e], rollout.starts[e + 1]);
            self.users.push(rollout.users[e]);
            let id = (self.users.len() - 1) as u32;
            self.episode_of.extend(std::iter::repeat_n(id, end - start));
            self.actions.extend_from_slice(&rollout.actions[start..end]);
            self.rewards.extend_from_slice(&rollout.rewards[start..end]);
            self.starts.push(self.actions.len());
        }
        if self.capacity > 0 && self.len() > self.capacity {
            // Smallest number of oldest episodes whose removal brings the buffer within capacity.
            let excess = self.len() - self.capacity;
            let drop = self.starts.partition_point(|&s| s < excess);
            let cut = self.starts[drop];
            self.users.drain(..drop);
            self.actions.drain(..cut);
            self.rewards.drain(..cut);
            self.episode_of.drain(..cut);
            self.episode_of.iter_mut().for_each(|e| *e -= drop as u32);
            self.starts.drain(..drop);
            self.starts.iter_mut().for_each(|s| *s -= cut);
        }
    }

    /// `size` step indices drawn uniformly with replacement.
    pub fn sample(&self, size: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
        (0..size).map(|_| rng.gen_range(0..self.len())).collect()
    }

    /// The history before step `s` of its episode (s may be the episode's end, then it is the whole episode).
    fn history_before(&self, e: usize, s: usize) -> (u32, &[u32], &[f64]) {
        let start = self.starts[e];
        (self.users[e], &self.actions[start..s], &self.rewards[start..s])
    }

    /// The n-step transitions of `steps` with discount `gamma`.
    pub fn transitions(
        &self,
        steps: &[usize],
        n_step: usize,
        gamma: f64,
        window: usize,
        n_items: usize,
        device: Device,
    ) -> Result<Transitions> {
        let n_step = n_step.max(1);
        let mut now = Vec::with_capacity(steps.len());
        let mut next = Vec::with_capacity(steps.len());
        let (mut returns, mut dones, mut actions) = (Vec::new(), Vec::new(), Vec::new());
        for &s in steps {
            let e = self.episode_of[s] as usize;
            let end = self.starts[e + 1];
            let last = (s + n_step).min(end);
            let mut g = 0.0;
            for (k, r) in self.rewards[s..last].iter().enumerate() {
                g += gamma.powi(k as i32) * r;
            }
            now.push(self.history_before(e, s));
            next.push(self.history_before(e, last));
            returns.push(g as f32);
            dones.push(if last == end { 1f32 } else { 0.0 });
            actions.push(i64::from(self.actions[s]));
        }
        Ok(Transitions {
            states: HistoryBatch::new(&now, window, n_items, device),
            next: HistoryBatch::new(&next, window, n_items, device),
            actions: Tensor::from_slice(&actions).f_to_device(device)?.f_unsqueeze(1)?,
            rewards: Tensor::from_slice(&returns).f_to_device(device)?,
            dones: Tensor::from_slice(&dones).f_to_device(device)?,
        })
    }

    /// `[steps.len(), n_items]`: −1e9 at the items each step's episode had shown `ahead` steps after it (capped
    /// at the episode's end; `ahead` 0 is the state s_t, `n_step` its n-step successor), 0 elsewhere: the
    /// `mask_shown` of the Q-targets and of the policy updates (`crate::shown`).
    pub fn shown_penalty(&self, steps: &[usize], ahead: usize, n_items: usize, device: Device) -> Result<Tensor> {
        let shown: Vec<&[u32]> = steps
            .iter()
            .map(|&s| {
                let e = self.episode_of[s] as usize;
                &self.actions[self.starts[e]..(s + ahead).min(self.starts[e + 1])]
            })
            .collect();
        shown_penalty(&shown, n_items, device)
    }

    /// (min, max) of the stored rewards, the range the tracker normalises logged rewards with.
    pub fn reward_range(&self) -> (f64, f64) {
        let lo = self.rewards.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.rewards.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo < hi {
            (lo, hi)
        } else {
            (lo, lo + 1.0)
        }
    }

    /// The buffer as checkpoint tensors under `prefix/` (an online buffer is part of a resumable state).
    pub fn tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let lengths: Vec<i64> = self.starts.windows(2).map(|w| (w[1] - w[0]) as i64).collect();
        let users: Vec<i64> = self.users.iter().map(|&u| i64::from(u)).collect();
        let actions: Vec<i64> = self.actions.iter().map(|&a| i64::from(a)).collect();
        vec![
            (format!("{prefix}/lengths"), Tensor::from_slice(&lengths)),
            (format!("{prefix}/users"), Tensor::from_slice(&users)),
            (format!("{prefix}/actions"), Tensor::from_slice(&actions)),
            (format!("{prefix}/rewards"), Tensor::from_slice(&self.rewards)),
        ]
    }

    /// Restores what [`tensors`](Self::tensors) wrote (the capacity stays this buffer's).
    pub fn restore(&mut self, prefix: &str, tensors: &[(String, Tensor)]) -> Result<()> {
        let get = |name: &str| -> Result<Tensor> {
            let key = format!("{prefix}/{name}");
            tensors
                .iter()
                .find(|(n, _)| *n == key)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| AgentError::Config(format!("the checkpoint lacks the replay buffer tensor {key}")))
        };
        let lengths = Vec::<i64>::try_from(get("lengths")?)?;
        let users = Vec::<i64>::try_from(get("users")?)?;
        let actions = Vec::<i64>::try_from(get("actions")?)?;
        let rewards = Vec::<f64>::try_from(get("rewards")?.f_to_kind(Kind::Double)?)?;
        let total: i64 = lengths.iter().sum();
        if users.len() != lengths.len() || actions.len() != rewards.len() || total as usize != actions.len() {
            return Err(AgentError::Config(format!("the checkpoint's replay buffer {prefix} is inconsistent")));
        }
        let mut restored = Self::new(self.capacity);
        for (e, (&len, &user)) in lengths.iter().zip(&users).enumerate() {
            restored.users.push(user as u32);
            restored.episode_of.extend(std::iter::repeat_n(e as u32, len as usize));
            restored.starts.push(restored.starts[e] + len as usize);
        }
        restored.actions = actions.iter().map(|&a| a as u32).collect();
        restored.rewards = rewards;
        *self = restored;
        Ok(())
    }
}

/// One step of a [`Collection`] as its action rule sees it: the active rows, their states and what their
/// episodes have shown so far. The rule returns one item per row, never a blocked one (`crate::shown`).
pub struct StepRows<'a> {
    /// `[B, state_dim]` tracker states, computed without gradients.
    pub states: Tensor,
    /// With [`Collection::reading`]: each row's last steps, as a batch of that window (SAC4IR's encoder).
    pub own: Option<HistoryBatch>,
    /// Each row's episode: its index in `0..episodes`, the rollout's episode order (MoFIR's per-episode ω).
    pub episodes: &'a [usize],
    /// Each row's items shown so far in its episode.
    pub shown: Vec<&'a [u32]>,
    mask_shown: bool,
    n_items: usize,
}

impl StepRows<'_> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.shown.len()
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    /// Row `k`'s last shown item (`None` on its episode's first step; DNaIR's candidates follow it).
    pub fn last(&self, k: usize) -> Option<u32> {
        self.shown[k].last().copied()
    }

    /// Whether the collection blocks the items row `k` has shown (`mask_shown` on, and they are not the
    /// whole catalogue).
    pub fn blocks_shown(&self, k: usize) -> bool {
        self.mask_shown && masks_shown(self.shown[k], self.n_items)
    }

    /// `[B, n_items]` scores or logits with each row's blocked items pushed to −1e9 (argmax never takes them,
    /// softmax gives them probability 0); unchanged when nothing is masked.
    pub fn masked(&self, scores: Tensor) -> Result<Tensor> {
        if !self.mask_shown {
            return Ok(scores);
        }
        Ok(scores.f_add(&shown_penalty(&self.shown, self.n_items, scores.device())?)?)
    }
}

/// Whole episodes played in the training environment with actions from an action rule: like
/// [`crate::rollout::collect`] but for any rule (ε-greedy over Q, a sampled softmax, an argmax over a
/// proto-action's neighbours). The returned rollout holds users, steps, actions, training rewards and dones;
/// values and log-probabilities are 0.
pub struct Collection<'a> {
    env: &'a TrainingEnv<'a>,
    tracker: &'a dyn StateTracker,
    device: Device,
    own_window: Option<usize>,
    mask_shown: bool,
}

impl<'a> Collection<'a> {
    /// `env.episodes` episodes whose states the `tracker` computes on `device`.
    pub fn new(env: &'a TrainingEnv<'a>, tracker: &'a dyn StateTracker, device: Device) -> Self {
        Self { env, tracker, device, own_window: None, mask_shown: false }
    }

    /// With `on`, the rule sees each episode's shown items as blocked ([`StepRows::masked`]), and a rule that
    /// returns one of them is an error.
    pub fn masking_shown(mut self, on: bool) -> Self {
        self.mask_shown = on;
        self
    }

    /// The rule also reads each row's last `window` steps ([`StepRows::own`]; the tracker keeps its own).
    pub fn reading(mut self, window: usize) -> Self {
        self.own_window = Some(window);
        self
    }

    /// Plays the episodes.
    pub fn run(
        &self,
        rng: &mut ChaCha8Rng,
        mut act: impl FnMut(&StepRows, &mut ChaCha8Rng) -> Result<Vec<u32>>,
    ) -> Result<Rollout> {
        let (spec, reward_model) = (self.env.spec, self.env.reward_model);
        let n = self.env.episodes.max(1);
        let n_items = spec.n_items();
        if spec.n_users() == 0 {
            return Err(AgentError::Config("the training environment has no users".into()));
        }
        let window = self.tracker.window();
        let mut env = VecEnv::new(spec, n, spec.max_turn);
        let users: Vec<u32> = (0..n).map(|i| env.reset_random(i, rng)).collect();
        let mut rewards: Vec<Vec<f64>> = vec![Vec::with_capacity(spec.max_turn); n];
        let mut active: Vec<usize> = (0..n).collect();
        while !active.is_empty() {
            let chosen = {
                let rows: Vec<(u32, &[u32], &[f64])> =
                    active.iter().map(|&i| (users[i], env.items(i), rewards[i].as_slice())).collect();
                let batch = HistoryBatch::new(&rows, window, n_items, self.device);
                let step = StepRows {
                    states: tch::no_grad(|| self.tracker.try_states(&batch))?,
                    own: self.own_window.map(|w| HistoryBatch::new(&rows, w, n_items, self.device)),
                    episodes: &active,
                    shown: rows.iter().map(|r| r.1).collect(),
                    mask_shown: self.mask_shown,
                    n_items,
                };
                let chosen = act(&step, rng)?;
                if chosen.len() != active.len() || chosen.iter().any(|&a| a as usize >= n_items) {
                    return Err(AgentError::Config(format!(
                        "the action rule returned {} actions for {} episodes (or an item outside the catalogue)",
                        chosen.len(),
                        active.len()
                    )));
                }
                if let Some(k) = (0..chosen.len()).find(|&k| step.blocks_shown(k) && step.shown[k].contains(&chosen[k]))
                {
                    return Err(AgentError::Config(format!(
                        "the action rule recommended item {} that its episode had already shown, with mask_shown on",
                        chosen[k]
                    )));
                }
                chosen
            };
            let mut still = Vec::with_capacity(active.len());
            for (k, &i) in active.iter().enumerate() {
                let r = reward_model.reward(users[i], chosen[k], env.items(i));
                let step = env.step(i, chosen[k]);
                rewards[i].push(r);
                if !step.done {
                    still.push(i);
                }
            }
            active = still;
        }
        let mut out = Rollout { users, ..Default::default() };
        for (i, rs) in rewards.iter().enumerate() {
            out.starts.push(out.actions.len());
            out.episode_of.extend(std::iter::repeat_n(i as u32, rs.len()));
            out.actions.extend_from_slice(env.items(i));
            out.rewards.extend_from_slice(rs);
            out.dones.extend((0..rs.len()).map(|t| t + 1 == rs.len()));
        }
        out.starts.push(out.actions.len());
        out.values = vec![0.0; out.len()];
        out.log_probs = vec![0.0; out.len()];
        Ok(out)
    }
}

/// Row-wise argmax of `[B, n]` scores, on the CPU.
pub fn argmax_rows(scores: &Tensor) -> Result<Vec<u32>> {
    let idx = scores.f_argmax(-1, false)?.f_to_device(Device::Cpu)?;
    Ok(Vec::<i64>::try_from(idx)?.into_iter().map(|a| a as u32).collect())
}

/// Row-wise draws from softmax(`logits`) with the run's generator (never libtorch's).
pub fn sample_rows(logits: &Tensor, rng: &mut ChaCha8Rng) -> Result<Vec<u32>> {
    let probs = logits.f_softmax(-1, Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?;
    let (b, n) = (probs.size()[0] as usize, probs.size()[1] as usize);
    let mut flat = vec![0f32; b * n];
    probs.f_copy_data(&mut flat, b * n)?;
    Ok(flat
        .chunks(n)
        .map(|row| {
            let total: f64 = row.iter().map(|&p| f64::from(p)).sum();
            let mut u = rng.gen::<f64>() * total;
            let mut last = 0;
            for (i, &p) in row.iter().enumerate() {
                let p = f64::from(p);
                if p > 0.0 {
                    if u < p {
                        return i as u32;
                    }
                    u -= p;
                    last = i;
                }
            }
            last as u32
        })
        .collect())
}

/// The offline learners' iteration report: `grad_steps` gradient steps on minibatches of `batch_size`
/// logged transitions consume `grad_steps × batch_size` transitions, which is what `Iteration.steps` counts
/// (so `steps_per_epoch` is a budget of logged transitions; no environment step is taken, and `episodes`
/// is 0).
pub(crate) fn offline_iteration(
    grad_steps: usize,
    batch_size: usize,
    update: impl FnOnce() -> Result<UpdateStats>,
) -> Result<Iteration> {
    let t = std::time::Instant::now();
    let stats = update()?;
    Ok(Iteration {
        steps: (grad_steps * batch_size) as u64,
        episodes: 0,
        reward_sum: 0.0,
        update: stats,
        collect_s: 0.0,
        update_s: t.elapsed().as_secs_f64(),
    })
}

/// The settings every offline learner shares (the batch-RL row of `docs/protocol.md` §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineConfig {
    /// Adam learning rate of the networks.
    pub lr: f64,
    /// Adam learning rate of the state tracker (its own optimiser).
    pub tracker_lr: f64,
    /// Discount γ.
    pub gamma: f64,
    /// Steps of the n-step return.
    pub n_step: usize,
    /// Logged transitions per gradient step.
    pub batch_size: usize,
    /// Gradient steps per training iteration (the trainer runs iterations until `steps_per_epoch` logged
    /// transitions, i.e. `grad_steps × batch_size` each, are consumed).
    pub grad_steps: usize,
    /// Gradient steps between copies into the target networks.
    pub target_update: usize,
    /// Hidden layers of each network.
    pub hidden: Vec<i64>,
    /// Never recommend an item the episode has shown (`crate::shown`): the target's successor never takes
    /// one its logged episode had shown, and evaluation blocks them in every mode. The losses that fit the
    /// logged actions (BCQ's imitation, CRR's actor, SQN's supervised head) read them as logged.
    pub mask_shown: bool,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            tracker_lr: 1e-3,
            gamma: 0.9,
            n_step: 3,
            batch_size: 64,
            grad_steps: 100,
            target_update: 320,
            hidden: vec![64, 64],
            mask_shown: false,
        }
    }
}

impl OfflineConfig {
    /// With `mask_shown`, the `[B, n_items]` penalty of the items each step's n-step successor had shown
    /// ([`ReplayBuffer::shown_penalty`]), to add to Q(s', ·) or the policy's logits at s'; `None` otherwise.
    pub(crate) fn next_blocked(
        &self,
        buffer: &ReplayBuffer,
        steps: &[usize],
        n_items: usize,
        device: Device,
    ) -> Result<Option<Tensor>> {
        match self.mask_shown {
            true => Ok(Some(buffer.shown_penalty(steps, self.n_step, n_items, device)?)),
            false => Ok(None),
        }
    }

    /// Settings out of their domain.
    pub fn problems(&self, name: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.batch_size == 0 || self.n_step == 0 || self.grad_steps == 0 || self.target_update == 0 {
            p.push(format!("{name} batch_size, n_step, grad_steps and target_update >= 1"));
        }
        if !(0.0..=1.0).contains(&self.gamma) {
            p.push(format!("{name} gamma in [0, 1]"));
        }
        p
    }

    /// What an offline learner on `buffer` reports as its training data (`Learner::offline_source`).
    pub(crate) fn source(buffer: &ReplayBuffer) -> String {
        format!(
            "offline: {} logged transitions in {} episodes of the training log (no world model, no environment step)",
            buffer.len(),
            buffer.n_episodes()
        )
    }

    /// Runs one offline iteration: the tracker normalises the logged rewards with the log's
    /// `reward_range`, then `grad_steps` calls of `step`.
    pub(crate) fn iterate(
        &self,
        (lo, hi): (f64, f64),
        tracker: &mut TrainedTracker,
        mut step: impl FnMut(&mut TrainedTracker) -> Result<UpdateStats>,
    ) -> Result<Iteration> {
        tracker.tracker.set_reward_range(lo, hi)?;
        offline_iteration(self.grad_steps, self.batch_size, || {
            let mut stats = UpdateStats::default();
            for _ in 0..self.grad_steps {
                stats.merge(&step(tracker)?);
            }
            Ok(stats)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rollout(lengths: &[usize]) -> Rollout {
        let mut r = Rollout::default();
        for (e, &len) in lengths.iter().enumerate() {
            r.users.push(e as u32);
            r.starts.push(r.actions.len());
            for t in 0..len {
                r.episode_of.push(e as u32);
                r.actions.push((10 * e + t) as u32);
                r.rewards.push((t + 1) as f64);
                r.dones.push(t + 1 == len);
            }
        }
        r.starts.push(r.actions.len());
        r
    }

    #[test]
    fn n_step_transitions_stop_at_the_episode_end() {
        let mut buf = ReplayBuffer::new(0);
        buf.push_rollout(&rollout(&[4, 2]));
        let t = buf.transitions(&[0, 2, 4], 3, 0.5, 3, 100, Device::Cpu).unwrap();
        let r = Vec::<f32>::try_from(&t.rewards).unwrap();
        // step 0: 1 + 0.5·2 + 0.25·3; step 2: 3 + 0.5·4 (episode ends); step 4: 1 + 0.5·2.
        assert_eq!(r, [2.75, 5.0, 2.0]);
        assert_eq!(Vec::<f32>::try_from(&t.dones).unwrap(), [0.0, 1.0, 1.0]);
        assert_eq!(Vec::<i64>::try_from(&t.next.steps).unwrap(), [3, 4, 2]);
        assert_eq!(Vec::<i64>::try_from(&t.states.steps).unwrap(), [0, 2, 0]);
        assert_eq!(Vec::<i64>::try_from(t.actions.reshape([-1])).unwrap(), [0, 2, 10]);
    }

    #[test]
    fn the_shown_penalty_reads_the_episode_up_to_the_state_or_its_successor() {
        let mut buf = ReplayBuffer::new(0);
        buf.push_rollout(&rollout(&[4, 2]));
        // Episode 0 shows items 0, 1, 2, 3; episode 1 shows 10, 11.
        let blocked = |steps: &[usize], ahead: usize| -> Vec<Vec<usize>> {
            let p =
                Vec::<f32>::try_from(buf.shown_penalty(steps, ahead, 20, Device::Cpu).unwrap().reshape([-1])).unwrap();
            p.chunks(20).map(|row| (0..20).filter(|&i| row[i] < -1e8).collect()).collect()
        };
        assert_eq!(blocked(&[0, 2, 5], 0), vec![vec![], vec![0, 1], vec![10]]);
        // n = 3 ahead: step 2's successor is the episode's end, so all four items; step 4's is after 10, 11.
        assert_eq!(blocked(&[0, 2, 4], 3), vec![vec![0, 1, 2], vec![0, 1, 2, 3], vec![10, 11]]);
    }

    #[test]
    fn a_masked_collection_refuses_a_rule_that_repeats_an_item() {
        let _torch = dsrm_nn::runtime::exclusive();
        let world = dsrm_sim::test_support::tiny_world();
        let n = world.spec.n_items();
        let reward = dsrm_sim::GroundTruthReward::new(&world.spec.rewards);
        let tracker = crate::test_support::MeanTracker::new(n, 4, 3);
        let env = TrainingEnv { spec: &world.spec, reward_model: &reward, episodes: 30, steps_before: 0 };
        let zeros = |rows: &StepRows| Tensor::zeros([rows.len() as i64, n as i64], (Kind::Float, Device::Cpu));
        for mask in [false, true] {
            let collection = Collection::new(&env, &tracker, Device::Cpu).masking_shown(mask);
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            // Always the best item of flat scores: item 0 unless the mask removes it.
            let ro = collection.run(&mut rng, |rows, _| argmax_rows(&rows.masked(zeros(rows))?)).unwrap();
            let repeats = (0..ro.n_episodes())
                .map(|e| {
                    let items = &ro.actions[ro.starts[e]..ro.starts[e + 1]];
                    (0..items.len()).filter(|&t| items[..t].contains(&items[t])).count()
                })
                .sum::<usize>();
            assert_eq!(repeats == 0, mask, "mask {mask}: {repeats} repeats");
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let ignoring = collection.run(&mut rng, |rows, _| argmax_rows(&zeros(rows)));
            match mask {
                true => assert!(ignoring.unwrap_err().to_string().contains("already shown"), "mask on"),
                false => assert!(ignoring.is_ok()),
            }
        }
    }

    #[test]
    fn capacity_drops_whole_oldest_episodes_and_round_trips() {
        let mut buf = ReplayBuffer::new(5);
        buf.push_rollout(&rollout(&[3, 2]));
        buf.push_rollout(&rollout(&[2]));
        // 7 steps > 5: the first episode (3 steps) goes.
        assert_eq!((buf.len(), buf.n_episodes()), (4, 2));
        assert_eq!(buf.starts, [0, 2, 4]);
        assert_eq!(buf.episode_of, [0, 0, 1, 1]);
        assert_eq!(buf.actions, [10, 11, 0, 1]);
        let mut back = ReplayBuffer::new(5);
        back.restore("r", &buf.tensors("r")).unwrap();
        assert_eq!(back, buf);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(buf.sample(50, &mut rng).iter().all(|&s| s < 4));
    }
}
