//! Many episodes stepped together, structure-of-arrays, no allocation after construction.
//!
//! Same semantics as [`crate::Env`] (tested against it); this is the path for rollouts and benchmarks.
//! Independent episodes in one loop also let the CPU overlap their ground-truth lookups, which are cache
//! misses on a 37 MB table.

use crate::env::{EnvSpec, Step};
use crate::quit::Ending;
use rand::Rng;
use std::ops::Deref;

/// A batch of `n` episodes over one [`EnvSpec`], held by anything that dereferences to it: `&EnvSpec` for
/// rollouts, a shared owner (e.g. an `Arc` of the world) where the batch must own its environment (the Python
/// package).
#[derive(Debug, Clone)]
pub struct VecEnv<S: Deref<Target = EnvSpec>> {
    spec: S,
    capacity: usize,
    users: Vec<u32>,
    lens: Vec<usize>,
    /// `n * capacity` items, episode i at `i * capacity`.
    history: Vec<u32>,
    cumulative: Vec<f64>,
}

impl<S: Deref<Target = EnvSpec>> VecEnv<S> {
    /// `n` episodes, each able to hold `capacity` steps (at least `max_turn`; more for NX_k with k > max_turn).
    pub fn new(spec: S, n: usize, capacity: usize) -> Self {
        let capacity = capacity.max(spec.max_turn).max(1);
        Self {
            spec,
            capacity,
            users: vec![0; n],
            lens: vec![0; n],
            history: vec![0; n * capacity],
            cumulative: vec![0.0; n],
        }
    }

    /// Number of episodes in the batch.
    pub fn len(&self) -> usize {
        self.users.len()
    }
    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Restarts episode `i` for `user`.
    #[inline]
    pub fn reset(&mut self, i: usize, user: u32) {
        self.users[i] = user;
        self.lens[i] = 0;
        self.cumulative[i] = 0.0;
    }

    /// Restarts episode `i` with a uniformly drawn user.
    #[inline]
    pub fn reset_random<R: Rng>(&mut self, i: usize, rng: &mut R) -> u32 {
        let user = rng.gen_range(0..self.spec.n_users() as u32);
        self.reset(i, user);
        user
    }

    /// Shows `item` in episode `i`. Panics if the episode already holds `capacity` steps.
    #[inline]
    pub fn step(&mut self, i: usize, item: u32) -> Step {
        let t = self.lens[i];
        assert!(t < self.capacity, "episode {i} is full ({} steps)", self.capacity);
        let start = i * self.capacity;
        let ending = self.spec.ending_after(&self.history[start..start + t], item);
        let (quit, done) = (ending.is_some_and(|e| e != Ending::MaxLen), ending.is_some());
        self.history[start + t] = item;
        self.lens[i] = t + 1;
        let reward = self.spec.rewards.reward(self.users[i], item);
        self.cumulative[i] += reward;
        Step { reward, done, quit, ending }
    }

    /// The user of episode `i`.
    pub fn user(&self, i: usize) -> u32 {
        self.users[i]
    }
    /// Items shown in episode `i`.
    pub fn items(&self, i: usize) -> &[u32] {
        &self.history[i * self.capacity..i * self.capacity + self.lens[i]]
    }
    /// Cumulative reward of episode `i`.
    pub fn cumulative_reward(&self, i: usize) -> f64 {
        self.cumulative[i]
    }
}

/// Totals of a random-policy rollout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutStats {
    pub steps: u64,
    pub episodes: u64,
    pub reward: f64,
    /// `length_counts[L]` = completed episodes of length L.
    pub length_counts: Vec<u64>,
}

impl RolloutStats {
    /// Adds another rollout's totals (for per-thread results).
    pub fn merge(&mut self, other: &RolloutStats) {
        self.steps += other.steps;
        self.episodes += other.episodes;
        self.reward += other.reward;
        if self.length_counts.len() < other.length_counts.len() {
            self.length_counts.resize(other.length_counts.len(), 0);
        }
        self.length_counts.iter_mut().zip(&other.length_counts).for_each(|(a, b)| *a += b);
    }
    /// Mean length of completed episodes.
    pub fn mean_length(&self) -> f64 {
        let total: u64 = self.length_counts.iter().enumerate().map(|(l, c)| l as u64 * c).sum();
        total as f64 / self.episodes.max(1) as f64
    }
}

/// Runs a uniform-random policy for `steps` steps over `batch` concurrent episodes, resetting finished
/// episodes with a fresh uniform user (resets are part of the measured work). Used by `dsrm bench env`.
pub fn rollout_random<R: Rng>(spec: &EnvSpec, batch: usize, steps: u64, rng: &mut R) -> RolloutStats {
    let batch = batch.max(1);
    let mut env = VecEnv::new(spec, batch, spec.max_turn);
    (0..batch).for_each(|i| {
        env.reset_random(i, rng);
    });
    let n_items = spec.n_items() as u32;
    let mut stats = RolloutStats { length_counts: vec![0; spec.max_turn + 1], ..Default::default() };
    let mut done_steps = 0u64;
    while done_steps < steps {
        for i in 0..batch {
            let step = env.step(i, rng.gen_range(0..n_items));
            stats.reward += step.reward;
            if step.done {
                stats.length_counts[env.items(i).len()] += 1;
                stats.episodes += 1;
                env.reset_random(i, rng);
            }
        }
        done_steps += batch as u64;
    }
    stats.steps = done_steps;
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::tests::toy_spec;
    use crate::Env;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn batched_steps_equal_single_env_steps() {
        for (window, threshold, legacy) in [(4, 0, true), (9, 1, true), (1, 0, true), (4, 0, false), (10, 1, true)] {
            let spec = toy_spec(window, threshold, 30, legacy);
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let mut batch = VecEnv::new(&spec, 8, 30);
            let mut singles: Vec<Env> = (0..8).map(|_| Env::new(&spec)).collect();
            for (i, single) in singles.iter_mut().enumerate() {
                let u = rng.gen_range(0..2);
                batch.reset(i, u);
                single.reset_to(u, None);
            }
            for _ in 0..200 {
                for (i, single) in singles.iter_mut().enumerate() {
                    let a = rng.gen_range(0..6);
                    let (x, y) = (batch.step(i, a), single.step(a));
                    assert_eq!(x, y);
                    if x.done {
                        let u = rng.gen_range(0..2);
                        batch.reset(i, u);
                        single.reset_to(u, None);
                    }
                }
            }
        }
    }

    #[test]
    fn rollout_counts_every_step_and_episode() {
        let spec = toy_spec(4, 0, 30, true);
        let stats = rollout_random(&spec, 16, 10_000, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(stats.steps, 10_000);
        let finished: u64 = stats.length_counts.iter().enumerate().map(|(l, c)| l as u64 * c).sum();
        assert!(finished <= stats.steps && stats.steps - finished < 16 * 30);
        assert_eq!(stats.length_counts[0] + stats.length_counts[1], 0, "episodes hold at least 2 items");
    }
}
