//! The reward of a *training* environment. In every anchor, policies never see the ground truth while they
//! train: they train in a simulated environment that keeps the real quit and length logic but takes its
//! reward from a learned world model (`docs/protocol.md` §4.3). This trait is that reward; the ground-truth
//! table implements it too, for clearly labelled diagnostic runs.

use crate::ground_truth::RewardTable;

/// A reward for showing `item` to `user` after the episode's `history` (items shown before, oldest first).
pub trait RewardModel: Send + Sync {
    /// The reward of one step.
    fn reward(&self, user: u32, item: u32, history: &[u32]) -> f64;
    /// (min, max) of the reward over the model's domain: the `avg` tracker normalises rewards with it.
    fn range(&self) -> (f64, f64);
    /// Short description recorded with results (e.g. `world model (DORL penalties λ_var 0.05, λ_ent 5)`).
    fn describe(&self) -> String;
}

/// The ground truth as a training reward: online training on the evaluation simulator, for diagnostics only.
pub struct GroundTruthReward<'a> {
    table: &'a RewardTable,
    range: (f64, f64),
}

impl<'a> GroundTruthReward<'a> {
    /// Wraps a ground-truth table (computes its range once).
    pub fn new(table: &'a RewardTable) -> Self {
        Self { table, range: table.range() }
    }
}

impl RewardModel for GroundTruthReward<'_> {
    fn reward(&self, user: u32, item: u32, _history: &[u32]) -> f64 {
        self.table.reward(user, item)
    }
    fn range(&self) -> (f64, f64) {
        self.range
    }
    fn describe(&self) -> String {
        "ground truth (DIAGNOSTIC: online training on the evaluation simulator)".into()
    }
}
