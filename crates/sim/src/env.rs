//! One episode at a time, in exactly the anchors' order of operations (`docs/protocol.md` §1.4).
//!
//! `step(a)` with t items already shown and history h:
//! 1. done <- quit(t, a)   (never at t = 0)
//! 2. if t >= max_turn - 1 then done <- true
//! 3. append a to h
//! 4. r <- M[u, a]; cumulative reward += r; t <- t + 1
//!
//! So the item that triggers the quit is rewarded and counted in the length.

use crate::ground_truth::RewardTable;
use crate::quit::{quits, window_range, QuitRule};
use crate::tags::TagMasks;
use crate::user_stream::UserStream;

/// Everything that defines an environment. Shared read-only by every episode and thread.
#[derive(Debug, Clone)]
pub struct EnvSpec {
    /// Ground truth M (users x items).
    pub rewards: RewardTable,
    /// Item categories for the category quit rule.
    pub tags: TagMasks,
    pub quit: QuitRule,
    /// Episode cap (`max_turn`).
    pub max_turn: usize,
    /// Reproduce the anchors' shrinking window (quirk 1).
    pub legacy_window: bool,
    /// EasyRL4Rec's `random_init`: a uniformly random initial item shown in the observation at reset,
    /// drawn after the user and *not* added to the quit history.
    pub random_initial_item: bool,
}

impl EnvSpec {
    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.rewards.n_users()
    }
    /// Number of catalogue items.
    pub fn n_items(&self) -> usize {
        self.rewards.n_items()
    }

    /// Would showing `item` after `history` make the user quit (steps 1–2 of `step`)?
    #[inline]
    pub fn done_after(&self, history: &[u32], item: u32) -> (bool, bool) {
        let t = history.len();
        let quit = t > 0
            && quits(
                &self.quit,
                &self.tags,
                self.n_items(),
                &history[window_range(t, self.quit.window(), self.legacy_window)],
                item,
            );
        (quit, quit || t + 1 >= self.max_turn)
    }
}

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub reward: f64,
    /// The episode is over (quit rule or cap).
    pub done: bool,
    /// The quit rule fired on this step (the step is still rewarded and counted).
    pub quit: bool,
}

/// One user's episode.
#[derive(Debug, Clone)]
pub struct Env<'s> {
    spec: &'s EnvSpec,
    user: u32,
    initial_item: Option<u32>,
    items: Vec<u32>,
    rewards: Vec<f64>,
    cumulative: f64,
}

impl<'s> Env<'s> {
    /// A new environment; call [`Env::reset`] or [`Env::reset_to`] before stepping.
    pub fn new(spec: &'s EnvSpec) -> Self {
        Self {
            spec,
            user: 0,
            initial_item: None,
            items: Vec::with_capacity(spec.max_turn),
            rewards: Vec::with_capacity(spec.max_turn),
            cumulative: 0.0,
        }
    }

    /// Starts an episode with a uniformly drawn user (then, with `random_initial_item`, a uniform initial
    /// item: the anchors' draw order). Returns the user.
    pub fn reset(&mut self, users: &mut UserStream) -> u32 {
        let user = users.below(self.spec.n_users() as u32);
        let initial = self.spec.random_initial_item.then(|| users.below(self.spec.n_items() as u32));
        self.reset_to(user, initial);
        user
    }

    /// Starts an episode for a given user (and initial item), e.g. to replay a logged trajectory.
    pub fn reset_to(&mut self, user: u32, initial_item: Option<u32>) {
        self.user = user;
        self.initial_item = initial_item;
        self.items.clear();
        self.rewards.clear();
        self.cumulative = 0.0;
    }

    /// Shows `item` to the user.
    pub fn step(&mut self, item: u32) -> Step {
        let (quit, done) = self.spec.done_after(&self.items, item);
        self.items.push(item);
        let reward = self.spec.rewards.reward(self.user, item);
        self.rewards.push(reward);
        self.cumulative += reward;
        Step { reward, done, quit }
    }

    /// The episode's user.
    pub fn user(&self) -> u32 {
        self.user
    }
    /// EasyRL4Rec's initial item, when drawn.
    pub fn initial_item(&self) -> Option<u32> {
        self.initial_item
    }
    /// Items shown so far.
    pub fn items(&self) -> &[u32] {
        &self.items
    }
    /// Rewards paid so far.
    pub fn rewards(&self) -> &[f64] {
        &self.rewards
    }
    /// Sum of rewards so far.
    pub fn cumulative_reward(&self) -> f64 {
        self.cumulative
    }
    /// The specification this episode runs under.
    pub fn spec(&self) -> &'s EnvSpec {
        self.spec
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 2 users x 6 items; item tags chosen to exercise overlaps.
    pub(crate) fn toy_spec(window: usize, threshold: u32, max_turn: usize, legacy: bool) -> EnvSpec {
        let tags = vec![vec![0], vec![1], vec![2], vec![0, 3], vec![4], vec![-1]];
        EnvSpec {
            rewards: RewardTable::Dense { n_users: 2, n_items: 6, values: (0..12).map(|v| v as f64 / 10.0).collect() },
            tags: TagMasks::new(&tags).unwrap(),
            quit: QuitRule::Category { window, threshold },
            max_turn,
            legacy_window: legacy,
            random_initial_item: false,
        }
    }

    fn replay(spec: &EnvSpec, user: u32, actions: &[u32]) -> (Vec<f64>, usize) {
        let mut env = Env::new(spec);
        env.reset_to(user, None);
        for &a in actions {
            if env.step(a).done {
                break;
            }
        }
        (env.rewards().to_vec(), env.items().len())
    }

    #[test]
    fn first_step_never_quits_and_the_quitting_step_is_paid() {
        let spec = toy_spec(4, 0, 30, true);
        // 0 then 3 share tag 0 -> quit on step 2, which is still rewarded.
        let (rewards, len) = replay(&spec, 1, &[0, 3, 1]);
        assert_eq!(len, 2);
        assert_eq!(rewards, [0.6, 0.9]);
        // Repeating the same item immediately also quits at length 2.
        assert_eq!(replay(&spec, 0, &[2, 2, 2]).1, 2);
    }

    #[test]
    fn legacy_window_forgets_at_t3_for_n4() {
        // N=4 legacy window at t=3 is h[2..3]: only the third item. Items 0,1,2 then 3 (tag 0, like item 0).
        let legacy = toy_spec(4, 0, 30, true);
        let fixed = toy_spec(4, 0, 30, false);
        assert_eq!(replay(&legacy, 0, &[0, 1, 2, 3, 4]).1, 5, "item 0 is outside the shrunken window");
        assert_eq!(replay(&fixed, 0, &[0, 1, 2, 3, 4]).1, 4, "the intended window sees item 0");
    }

    #[test]
    fn cap_ends_at_max_turn() {
        let spec = toy_spec(1, 0, 3, true);
        let (rewards, len) = replay(&spec, 0, &[0, 1, 0, 1, 0]);
        assert_eq!(len, 3);
        assert_eq!(rewards.len(), 3);
    }

    #[test]
    fn pseudo_tag_untagged_items_collide() {
        // item 5 has pseudo-tag -1: two of them in the window quit at θ = 0 (quirk 2).
        let spec = toy_spec(4, 0, 30, true);
        assert_eq!(replay(&spec, 0, &[5, 5]).1, 2);
    }
}
