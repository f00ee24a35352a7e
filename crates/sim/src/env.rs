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
use crate::quit::{quits, window_range, Ending, PopularityQuit, QuitRule};
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
    /// `quit` is on (`EnvSettings::category_rule`).
    pub base_rule: bool,
    /// Popularity-aware abandonment, when on.
    pub popularity: Option<PopularityQuit>,
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

    /// Would showing `item` after `history` make the user quit (steps 1–2 of `step`)? `(quit, done)`.
    #[inline]
    pub fn done_after(&self, history: &[u32], item: u32) -> (bool, bool) {
        match self.ending_after(history, item) {
            None => (false, false),
            Some(Ending::MaxLen) => (false, true),
            Some(_) => (true, true),
        }
    }

    /// What ends the episode if `item` is shown after `history`, if anything: at t > 0 the data set's own rule
    /// (category / distance), then popularity-aware abandonment, then the cap. A rule that fires on the last
    /// allowed step is named over the cap.
    #[inline]
    pub fn ending_after(&self, history: &[u32], item: u32) -> Option<Ending> {
        let t = history.len();
        if t > 0 {
            if self.base_rule
                && quits(
                    &self.quit,
                    &self.tags,
                    self.n_items(),
                    &history[window_range(t, self.quit.window(), self.legacy_window)],
                    item,
                )
            {
                return Some(self.quit.ending());
            }
            if self.popularity.as_ref().is_some_and(|p| p.quits(history, item)) {
                return Some(Ending::Popularity);
            }
        }
        (t + 1 >= self.max_turn).then_some(Ending::MaxLen)
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
    /// What ended the episode on this step, if it ended.
    pub ending: Option<Ending>,
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
        let ending = self.spec.ending_after(&self.items, item);
        let (quit, done) = (ending.is_some_and(|e| e != Ending::MaxLen), ending.is_some());
        self.items.push(item);
        let reward = self.spec.rewards.reward(self.user, item);
        self.rewards.push(reward);
        self.cumulative += reward;
        Step { reward, done, quit, ending }
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
            base_rule: true,
            popularity: None,
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
    fn each_ending_is_named_and_the_rules_switch() {
        // Items 0 and 3 share tag 0; popular = {0, 1, 2}. Category rule N 4, θ 0; popularity N_p 2, θ_p 1.
        let mut spec = toy_spec(4, 0, 30, false);
        spec.popularity =
            Some(PopularityQuit { window: 2, threshold: 1, popular: vec![true, true, true, false, false, false] });
        assert_eq!(spec.ending_after(&[], 0), None, "never at t = 0");
        assert_eq!(spec.ending_after(&[0], 3), Some(Ending::Category));
        assert_eq!(spec.ending_after(&[1, 2], 4), None, "the new item is long-tail");
        assert_eq!(spec.ending_after(&[1, 2], 0), Some(Ending::Popularity), "two of the last two popular");
        assert_eq!(spec.ending_after(&[1, 4, 2], 0), None, "one of the last two popular");
        // Both rules fire: the data set's own rule is named first.
        assert_eq!(spec.ending_after(&[1, 0], 3), Some(Ending::Category));
        assert_eq!(spec.ending_after(&[1, 2, 0], 0), Some(Ending::Category));
        spec.base_rule = false;
        assert_eq!(spec.ending_after(&[1, 2, 0], 0), Some(Ending::Popularity), "the category rule switched off");
        // The cap, and a rule firing on the last allowed step is named over the cap.
        spec.max_turn = 3;
        assert_eq!(spec.ending_after(&[3, 4], 5), Some(Ending::MaxLen));
        assert_eq!(spec.ending_after(&[1, 2], 0), Some(Ending::Popularity));
        let mut env = Env::new(&spec);
        env.reset_to(0, None);
        let steps: Vec<Step> = [3, 4, 5].iter().map(|&a| env.step(a)).collect();
        assert_eq!(steps.iter().map(|s| s.ending).collect::<Vec<_>>(), [None, None, Some(Ending::MaxLen)]);
        assert!(steps[2].done && !steps[2].quit);
    }

    #[test]
    fn pseudo_tag_untagged_items_collide() {
        // item 5 has pseudo-tag -1: two of them in the window quit at θ = 0 (quirk 2).
        let spec = toy_spec(4, 0, 30, true);
        assert_eq!(replay(&spec, 0, &[5, 5]).1, 2);
    }
}
