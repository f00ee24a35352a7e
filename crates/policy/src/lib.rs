//! The [`Policy`] trait every recommender implements, and the heuristic baselines.
//!
//! A policy sees an [`Observation`] (who the user is and what this episode has shown so far) and an
//! [`ItemMask`] of the items it may recommend now, and returns one catalogue item. It never sees the
//! ground truth and never knows how episodes are collected (evaluation lives in `dsrm-eval`).
//! Users and items are *dense* ids (0..n) of the environment's catalogue.

pub mod heuristics;
pub mod select;

use rand_chacha::ChaCha8Rng;

/// The random source handed to policies: seeded per evaluation run, so runs are reproducible.
pub type PolicyRng = ChaCha8Rng;

/// How a policy turns its scores into one action (`docs/protocol.md` §2: the anchors *sample*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// Draw from the policy's distribution (softmax over scores): the anchors' published numbers.
    Sampled,
    /// Take the highest-scoring allowed item (ties: the smallest id).
    Argmax,
}

/// What a policy may look at before choosing the next item.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Dense user id.
    pub user: u32,
    /// Items shown so far in this episode, oldest first.
    pub items: &'a [u32],
    /// Ground-truth rewards the user gave them (the implicit feedback a live system observes).
    pub rewards: &'a [f64],
    /// EasyRL4Rec's random initial item, when the preset uses one (it is not in `items`).
    pub initial_item: Option<u32>,
}

/// Which items are allowed at this step. In the no-repeat modes (NX_0, NX_k) the items already shown in
/// the episode are blocked; in FB everything is allowed.
#[derive(Debug, Clone)]
pub struct ItemMask {
    blocked: Vec<bool>,
    n_blocked: usize,
}

impl ItemMask {
    /// A mask over `n_items` with nothing blocked.
    pub fn all(n_items: usize) -> Self {
        Self { blocked: vec![false; n_items], n_blocked: 0 }
    }
    /// Number of catalogue items.
    pub fn n_items(&self) -> usize {
        self.blocked.len()
    }
    /// Number of items currently allowed.
    pub fn n_allowed(&self) -> usize {
        self.blocked.len() - self.n_blocked
    }
    /// True when `item` may be recommended now.
    #[inline]
    pub fn allows(&self, item: u32) -> bool {
        !self.blocked[item as usize]
    }
    /// Block `item` (idempotent).
    pub fn block(&mut self, item: u32) {
        let b = &mut self.blocked[item as usize];
        if !*b {
            *b = true;
            self.n_blocked += 1;
        }
    }
    /// Allow everything again (start of an episode).
    pub fn clear(&mut self) {
        if self.n_blocked > 0 {
            self.blocked.iter_mut().for_each(|b| *b = false);
            self.n_blocked = 0;
        }
    }
}

/// A recommender that picks one item per step.
///
/// Policies are cloneable behind the trait ([`PolicyClone`]): an evaluation builds (or trains) a policy
/// once and hands each independent run its own copy, so nothing learned online in one run leaks into another.
pub trait Policy: Send + PolicyClone {
    /// Short name used in tables and file names (e.g. `most-popular`).
    fn name(&self) -> String;

    /// Choose one allowed item. `mask.n_allowed() > 0` is guaranteed by the caller.
    fn act(&mut self, obs: &Observation, mask: &ItemMask, selection: Selection, rng: &mut PolicyRng) -> u32;

    /// Feedback after the step, for policies that learn online (bandits). Default: ignore.
    fn observe(&mut self, _user: u32, _item: u32, _reward: f64) {}

    /// For a server's top k: fills `out` with one score per catalogue item such that [`act`](Self::act)'s
    /// choice is the argmax (under `Argmax`) or a draw from the softmax (under `Sampled`) of the allowed
    /// items' scores, and returns `true`; `false` (the default) for a policy whose choice is not of that form
    /// (its own exploration, a per-session cycle).
    fn scores(&mut self, _obs: &Observation, _selection: Selection, _rng: &mut PolicyRng, _out: &mut Vec<f64>) -> bool {
        false
    }
}

/// Cloning a boxed [`Policy`]; implemented for every `Policy + Clone`.
pub trait PolicyClone {
    /// A copy with the same parameters and the same online state.
    fn clone_box(&self) -> Box<dyn Policy>;
}

impl<T: Policy + Clone + 'static> PolicyClone for T {
    fn clone_box(&self) -> Box<dyn Policy> {
        Box::new(self.clone())
    }
}

impl Clone for Box<dyn Policy> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}
