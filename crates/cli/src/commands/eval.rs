//! `dsrm eval`: one policy, one seed, every mode; and the pieces `demo` reuses.

use crate::config::{RunArgs, RunConfig};
use crate::{loading, output};
use anyhow::{Context, Result};
use clap::Args;
use dsrm_eval::{evaluate, EvalRun, MetricInputs, Mode, ModeResult};
use dsrm_policy::heuristics::{self, HeuristicKind, TrainingContext};
use dsrm_policy::Selection;
use dsrm_sim::{QuitRule, World};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// random | most-popular | category-cycling | epsilon-greedy | ucb | mf-greedy
    #[arg(long, default_value = "random")]
    pub policy: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Run directory to write.
    #[arg(long)]
    pub out: PathBuf,
}

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
    tick: &(dyn Fn() + Sync),
) -> Result<PolicyRun> {
    let built = build_heuristic(world, kind, &cfg.heuristics, seed)?;
    let mut results = Vec::new();
    for &selection in &cfg.eval.selections {
        let mut policy = built.clone();
        for mode in Mode::standard(cfg.eval.force_length) {
            results.push(evaluate(
                &world.spec,
                inputs,
                policy.as_mut(),
                &cfg.eval,
                EvalRun { mode, selection, seed, users: None },
            ));
            tick();
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
        output::write_json(&dir.join(format!("metrics{suffix}.json")), &metrics)?;
        output::write_atomic(&dir.join(format!("episodes{suffix}.jsonl")), lines.as_bytes())?;
    }
    Ok(())
}

/// What produced a result: config, seeds, versions, input hashes and how the world was built.
pub fn provenance(cfg: &RunConfig, world: &World, inputs: &MetricInputs, seeds: &[u64]) -> serde_json::Value {
    json!({
        "dsrm_version": env!("CARGO_PKG_VERSION"),
        "command": std::env::args().collect::<Vec<_>>(),
        "created_at": chrono::Utc::now().to_rfc3339(),
        "seeds": seeds,
        "synthetic": world.is_synthetic(),
        "label": if world.is_synthetic() { "SYNTHETIC data in KuaiRec format, not KuaiRec results" } else { "real data" },
        "config": cfg,
        "config_toml": cfg.to_toml(),
        "env_settings": world.settings,
        "world": {
            "dataset": world.dataset,
            "n_users": world.spec.n_users(),
            "n_items": world.spec.n_items(),
            "training_rows": world.train.len(),
            "notes": world.notes,
        },
        "metrics": {
            "dominant_tags": inputs.dominant_tags,
            "dominant_source": inputs.dominant_source,
            "similarity": inputs.similarity_name,
            "popular_fraction": dsrm_eval::context::POPULAR_FRACTION,
            "popular_items": inputs.popular.iter().filter(|p| **p).count(),
        },
        "data": world.provenance,
    })
}

/// Applies the command-line flags to the config.
fn resolve_config(args: &EvalArgs) -> Result<RunConfig> {
    let mut cfg = args.run.resolve()?;
    cfg.policies = vec![parse_policy(&args.policy)?];
    cfg.seeds = vec![args.seed];
    Ok(cfg)
}

pub fn run(args: EvalArgs) -> Result<()> {
    let cfg = resolve_config(&args)?;
    let world = loading::load_world(&cfg)?;
    let inputs = MetricInputs::new(&world, cfg.eval.mcd_dominant);
    let n_jobs = (cfg.eval.selections.len() * 3) as u64;
    let pb = output::bar(n_jobs, "evaluating");
    let run = run_policy(&world, &inputs, cfg.policies[0], &cfg, args.seed, &|| pb.inc(1))?;
    pb.finish_and_clear();
    write_policy_run(&args.out, &run, &world, &cfg)?;
    output::write_json(&args.out.join("provenance.json"), &provenance(&cfg, &world, &inputs, &cfg.seeds))?;
    print_run_table(&run, &world);
    eprintln!("wrote {}/{{metrics.json, episodes.jsonl, provenance.json}}", args.out.display());
    Ok(())
}

/// One row per (selection, mode).
fn print_run_table(run: &PolicyRun, world: &World) {
    let header = [
        "selection",
        "mode",
        "R_tra",
        "R_each",
        "Length",
        "CV",
        "MCD",
        "Gini",
        "LongTailShare",
        "Diversity",
        "Novelty",
    ];
    let mut t = output::table(header.map(String::from).to_vec());
    for r in &run.results {
        let m = serde_json::to_value(&r.metrics).unwrap_or_default();
        let mut row = vec![selection_name(r.selection).to_string(), r.mode.key()];
        row.extend(
            header[2..]
                .iter()
                .map(|k| m.get(*k).and_then(|v| v.as_f64()).map(|v| format!("{v:.4}")).unwrap_or_default()),
        );
        t.add_row(row);
    }
    let label = if world.is_synthetic() { " (SYNTHETIC data)" } else { "" };
    println!("{} on {}{label}; {}; seed {}\n{t}", run.policy, world.dataset, describe_env(world), run.seed);
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
