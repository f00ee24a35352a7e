//! Running a policy in the ground-truth environment, one mode at a time.
//!
//! Users are drawn from a stream that depends only on (seed, mode), never on the policy, so every policy
//! evaluated with one seed meets the same users in the same order (common random numbers: differences
//! between policies are not user-sampling noise). The policy gets its own stream.

use crate::context::{DominantSource, MetricInputs};
use crate::mode::{Mode, ModeName};
use dsrm_metrics::{Episode, MetricSet};
use dsrm_policy::{ItemMask, Observation, Policy, PolicyRng, Selection};
use dsrm_sim::{Ending, Env, EnvSpec, UserStream, UserStreamKind};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// Evaluation settings (the `[eval]` table of a config). Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Episodes per mode (the anchors' `test_num`, 100).
    pub episodes: usize,
    /// k of NX_k (`force_length`, 10).
    pub force_length: usize,
    /// Action selections to evaluate; the first is the headline (sampled: the anchors' published numbers).
    pub selections: Vec<Selection>,
    /// Where the MCD dominant categories come from.
    pub mcd_dominant: DominantSource,
    /// Generator of episode users: `chacha` (default) or `python` (CPython's `random.randint` stream for
    /// the seed, as the anchors draw users).
    pub user_stream: UserStreamKind,
    /// The modes evaluated: any of `FB`, `NX_0`, `NX_k`, default all three. Each mode has its own user and
    /// policy streams, so leaving modes out changes none of the others' numbers, only the time evaluation
    /// takes (a study that reads NX_0 alone evaluates a third of the episodes). Training selects its epoch on
    /// NX_0, so a training run needs it.
    #[serde(skip_serializing_if = "is_all_modes")]
    pub modes: Vec<ModeName>,
}

/// Leaves the default out of written configs, so configs written before the setting existed read the same.
fn is_all_modes(modes: &[ModeName]) -> bool {
    modes == ModeName::ALL
}

impl EvalConfig {
    /// The modes to evaluate, in the anchors' order (FB, NX_0, NX_k), whatever order the config lists them in.
    pub fn modes(&self) -> Vec<Mode> {
        ModeName::ALL.iter().filter(|m| self.modes.contains(m)).map(|m| m.mode(self.force_length)).collect()
    }

    /// Why these settings cannot run: no mode, or a mode named twice (`None` when they can).
    pub fn modes_problem(&self) -> Option<String> {
        if self.modes.is_empty() {
            return Some("[eval] modes is empty: expected one or more of \"FB\", \"NX_0\", \"NX_k\"".into());
        }
        let mut seen = self.modes.clone();
        seen.sort();
        seen.dedup();
        (seen.len() != self.modes.len()).then(|| format!("[eval] modes names a mode twice: {:?}", self.modes))
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            episodes: 100,
            force_length: 10,
            selections: vec![Selection::Sampled, Selection::Argmax],
            mcd_dominant: DominantSource::default(),
            user_stream: UserStreamKind::default(),
            modes: ModeName::ALL.to_vec(),
        }
    }
}

/// Which run of the protocol: mode, action selection, seed, and optionally the users to draw from.
#[derive(Debug, Clone, Copy)]
pub struct EvalRun<'a> {
    pub mode: Mode,
    pub selection: Selection,
    pub seed: u64,
    /// Draw episode users uniformly from these (a validation or test split) instead of from all users.
    pub users: Option<&'a [u32]>,
}

/// One finished episode, with the quit information the metrics do not need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    pub episode: Episode,
    /// What ended the episode: a quit rule (`category`, `distance`, `popularity`) or the cap (`max_len`);
    /// `None` when a forced length (NX_k) or an exhausted catalogue cut it.
    pub quit: Option<Ending>,
    /// EasyRL4Rec's random initial item, when the preset draws one.
    pub initial_item: Option<u32>,
}

/// The episodes and metrics of one mode.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeResult {
    pub mode: Mode,
    pub selection: Selection,
    pub trajectories: Vec<Trajectory>,
    pub metrics: MetricSet,
}

fn stream_seed(seed: u64, mode: Mode, selection: Selection, policy: bool) -> (u64, u64) {
    let mode_id = match mode {
        Mode::Free => 0,
        Mode::NoRepeat => 1,
        Mode::ForcedLength(k) => 2 + k as u64,
    };
    // The user stream ignores the selection so sampled and argmax runs also meet the same users.
    let sel = if policy { 1 + selection as u64 } else { 0 };
    (seed, mode_id * 16 + sel)
}

/// Runs `cfg.episodes` episodes of `policy` in `mode` and computes the metrics. With the `python` user stream
/// every mode replays the same CPython stream for `seed` (the anchors seed once per script).
pub fn evaluate(
    spec: &EnvSpec,
    inputs: &MetricInputs,
    policy: &mut dyn Policy,
    cfg: &EvalConfig,
    run: EvalRun,
) -> ModeResult {
    let EvalRun { mode, selection, seed, users: pool } = run;
    let episodes = cfg.episodes;
    let (s, stream) = stream_seed(seed, mode, selection, false);
    let mut users = UserStream::new(cfg.user_stream, s, stream);
    let (s, stream) = stream_seed(seed, mode, selection, true);
    let mut policy_rng = PolicyRng::seed_from_u64(s);
    policy_rng.set_stream(stream);

    let mut env = Env::new(spec);
    let mut mask = ItemMask::all(spec.n_items());
    let mut trajectories = Vec::with_capacity(episodes);
    for _ in 0..episodes {
        let user = match pool {
            // A user split (validation or test users): draw uniformly from the pool.
            Some(pool) => {
                let user = pool[users.below(pool.len() as u32) as usize];
                let initial = spec.random_initial_item.then(|| users.below(spec.n_items() as u32));
                env.reset_to(user, initial);
                user
            }
            None => env.reset(&mut users),
        };
        mask.clear();
        let quit = loop {
            let obs =
                Observation { user, items: env.items(), rewards: env.rewards(), initial_item: env.initial_item() };
            let item = policy.act(&obs, &mask, selection, &mut policy_rng);
            let step = env.step(item);
            policy.observe(user, item, step.reward);
            if mode.masks_repeats() {
                mask.block(item);
            }
            let finished = match mode {
                Mode::ForcedLength(k) => env.items().len() >= k,
                _ => step.done,
            };
            if finished || mask.n_allowed() == 0 {
                break match mode {
                    Mode::ForcedLength(_) => None,
                    _ => step.ending,
                };
            }
        };
        trajectories.push(Trajectory {
            episode: Episode { user, items: env.items().to_vec(), rewards: env.rewards().to_vec() },
            quit,
            initial_item: env.initial_item(),
        });
    }
    let episodes: Vec<Episode> = trajectories.iter().map(|t| t.episode.clone()).collect();
    let metrics = dsrm_metrics::compute(&episodes, &inputs.context());
    ModeResult { mode, selection, trajectories, metrics }
}

#[cfg(test)]
mod mode_setting_tests {
    use super::*;

    #[test]
    fn modes_keep_the_anchors_order_and_bad_lists_are_named() {
        let cfg: EvalConfig = serde_json::from_str(r#"{"force_length": 7, "modes": ["NX_k", "NX_0"]}"#).unwrap();
        assert_eq!(cfg.modes(), [Mode::NoRepeat, Mode::ForcedLength(7)]);
        assert_eq!(cfg.modes_problem(), None);
        assert_eq!(EvalConfig::default().modes(), Mode::standard(10), "all three by default");
        let twice = EvalConfig { modes: vec![ModeName::Free, ModeName::Free], ..Default::default() };
        assert!(twice.modes_problem().unwrap().contains("twice"));
        let none = EvalConfig { modes: vec![], ..Default::default() };
        assert!(none.modes_problem().unwrap().contains("expected one or more"));
        let err = serde_json::from_str::<EvalConfig>(r#"{"modes": ["NX_10"]}"#).unwrap_err().to_string();
        assert!(err.contains("NX_10") && err.contains("NX_k"), "{err}");
        // The default is left out of written configs (they read as before the setting existed).
        assert!(!serde_json::to_string(&EvalConfig::default()).unwrap().contains("modes"));
    }
}
