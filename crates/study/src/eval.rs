//! `dsrm eval`'s work: one heuristic policy, one seed, every mode; and the pieces the demo and the experiments
//! reuse (building a heuristic on a world's log, the per-policy result files, the run's provenance).

use crate::config::RunConfig;
use crate::loading;
use crate::progress::{begin, Event, Progress};
use crate::provenance::{data_label, MetricsSummary, Provenance, Seeds, WorldSummary};
use anyhow::{Context, Result};
use dsrm_eval::{evaluate, EvalRun, MetricInputs, ModeResult};
use dsrm_policy::heuristics::{self, HeuristicKind, TrainingContext};
use dsrm_policy::Selection;
use dsrm_sim::{QuitRule, World};
use serde_json::json;
use std::path::Path;

/// Parses a policy name.
pub fn parse_policy(name: &str) -> Result<HeuristicKind> {
    serde_json::from_value(json!(name)).map_err(|_| {
        anyhow::anyhow!(
            "unknown policy {name:?}; expected one of {}",
            heuristics::ALL.iter().map(|k| policy_name(*k)).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The config name of a policy kind.
pub fn policy_name(kind: HeuristicKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| format!("{kind:?}"))
}

/// The selection's name in file names: `sampled`, `argmax`.
pub fn selection_name(s: Selection) -> &'static str {
    match s {
        Selection::Sampled => "sampled",
        Selection::Argmax => "argmax",
    }
}

/// Builds (fits) a heuristic baseline on the world's training log; `seed` seeds its user model.
pub fn build_heuristic(
    world: &World,
    kind: HeuristicKind,
    cfg: &heuristics::HeuristicConfig,
    seed: u64,
) -> Result<Box<dyn dsrm_policy::Policy>> {
    let quit_window = match world.spec.quit {
        QuitRule::Category { window, .. } => window,
        QuitRule::Distance { .. } => 0,
    };
    let ctx = TrainingContext {
        train: &world.train,
        item_tags: &world.item_tags,
        quit_window,
        full_train: Some(&world.train_full),
    };
    let mut cfg = cfg.clone();
    cfg.mf.seed = seed;
    heuristics::build(kind, &ctx, &cfg).with_context(|| format!("building policy {}", policy_name(kind)))
}

/// All results of one policy with one seed.
pub struct PolicyRun {
    pub policy: String,
    pub seed: u64,
    /// Selections in config order, each with its modes.
    pub results: Vec<ModeResult>,
}

/// Evaluates one policy with one seed in every mode and selection. The policy is built (fitted) once; each
/// selection gets a fresh copy, and within a selection the modes run in order FB, NX_0, NX_k with the same
/// copy (online bandits keep what they learned, like a deployed policy).
pub fn run_policy(
    world: &World,
    inputs: &MetricInputs,
    kind: HeuristicKind,
    cfg: &RunConfig,
    seed: u64,
    progress: Progress,
) -> Result<PolicyRun> {
    let built = build_heuristic(world, kind, &cfg.heuristics, seed)?;
    let mut results = Vec::new();
    for &selection in &cfg.eval.selections {
        let mut policy = built.clone();
        for mode in cfg.eval.modes() {
            results.push(evaluate(
                &world.spec,
                inputs,
                policy.as_mut(),
                &cfg.eval,
                EvalRun { mode, selection, seed, users: None },
            ));
            progress(Event::Advance(1));
        }
    }
    Ok(PolicyRun { policy: policy_name(kind), seed, results })
}

/// Writes `metrics.json` / `episodes.jsonl` for the headline selection and `metrics_<sel>.json` /
/// `episodes_<sel>.jsonl` for the others. Ids in episodes are the data set's own (`user_id`, `video_id`).
pub fn write_policy_run(dir: &Path, run: &PolicyRun, world: &World, cfg: &RunConfig) -> Result<()> {
    for (i, &selection) in cfg.eval.selections.iter().enumerate() {
        let suffix = if i == 0 { String::new() } else { format!("_{}", selection_name(selection)) };
        let mut metrics = serde_json::Map::new();
        let mut lines = String::new();
        for r in run.results.iter().filter(|r| r.selection == selection) {
            metrics.insert(r.mode.key(), serde_json::to_value(&r.metrics)?);
            for t in &r.trajectories {
                let e = &t.episode;
                let line = json!({
                    "mode": r.mode.key(),
                    "selection": selection_name(selection),
                    "user": world.user_ids[e.user as usize],
                    "items": e.items.iter().map(|&a| world.item_ids[a as usize]).collect::<Vec<_>>(),
                    "rewards": e.rewards,
                    "length": e.items.len(),
                    "quit": t.quit,
                    "initial_item": t.initial_item.map(|a| world.item_ids[a as usize]),
                });
                lines += &line.to_string();
                lines.push('\n');
            }
        }
        dsrm_files::write_json(&dir.join(format!("metrics{suffix}.json")), &metrics)?;
        dsrm_files::write_atomic(&dir.join(format!("episodes{suffix}.jsonl")), lines.as_bytes())?;
    }
    dsrm_files::write_atomic(&dir.join(ITEM_GROUPS), world.item_groups_csv().as_bytes())?;
    Ok(())
}

/// The popular / long-tail group of every catalogue item (`World::item_groups_csv`), written beside the results.
pub const ITEM_GROUPS: &str = "item_groups.csv";

/// What produced a result: config, seeds, versions, input hashes and how the world was built.
pub fn provenance<'a>(cfg: &RunConfig, world: &'a World, inputs: &'a MetricInputs) -> Result<Provenance<'a>> {
    Provenance {
        seeds: Some(Seeds::List(cfg.seeds.clone())),
        synthetic: Some(world.is_synthetic()),
        label: Some(data_label(world)),
        config_toml: Some(cfg.to_toml()),
        env_settings: Some(&world.settings),
        world: Some(WorldSummary::built(world)),
        metrics: Some(MetricsSummary::all(inputs)),
        data: Some(&world.provenance),
        ..Provenance::new()
    }
    .with_config(cfg)
}

/// An evaluated policy and the world it met (for labels).
pub struct Evaluated {
    pub run: PolicyRun,
    pub world: World,
}

/// `dsrm eval`: the first policy of `cfg` with its first seed, every mode and selection; writes
/// `metrics.json`, `episodes.jsonl` (and the other selections' files) and `provenance.json` to `out`.
pub fn run(cfg: &RunConfig, out: &Path, progress: Progress) -> Result<Evaluated> {
    let world = loading::load_world(cfg, progress)?;
    let inputs = MetricInputs::new(&world, cfg.eval.mcd_dominant);
    let n_jobs = (cfg.eval.selections.len() * 3) as u64;
    begin(progress, "evaluating", Some(n_jobs));
    let run = run_policy(&world, &inputs, cfg.policies[0], cfg, cfg.seeds[0], progress);
    progress(Event::End);
    let run = run?;
    write_policy_run(out, &run, &world, cfg)?;
    provenance(cfg, &world, &inputs)?.write(&out.join("provenance.json"))?;
    Ok(Evaluated { run, world })
}

/// One line describing the environment's quit rule and cap, for table titles.
pub fn describe_env(world: &World) -> String {
    let s = &world.settings;
    let rule = match &world.spec.quit {
        QuitRule::Category { window, threshold } => format!("category quit rule N {window}, θ {threshold}"),
        QuitRule::Distance { window, min_distance, .. } => {
            format!("distance quit rule N {window}, d < {min_distance}")
        }
    };
    format!("{rule}, max_turn {}, legacy window {}", s.max_turn, s.legacy_window)
}
