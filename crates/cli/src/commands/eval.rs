//! `dsrm eval`: one policy, one seed, every mode (`dsrm_study::eval`).

use crate::config::RunArgs;
use crate::output;
use anyhow::Result;
use clap::Args;
use dsrm_sim::World;
use dsrm_study::eval::{self, describe_env, selection_name, PolicyRun};
use std::path::PathBuf;

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

pub fn run(args: EvalArgs) -> Result<()> {
    let mut cfg = args.run.resolve()?;
    cfg.policies = vec![eval::parse_policy(&args.policy)?];
    cfg.seeds = vec![args.seed];
    let done = eval::run(&cfg, &args.out, &output::progress())?;
    print_run_table(&done.run, &done.world);
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
    let mut t = output::table(&header);
    for r in &run.results {
        let mut row = vec![selection_name(r.selection).to_string(), r.mode.key()];
        row.extend(output::metric_cells(&r.metrics, &header[2..]));
        t.add_row(row);
    }
    let label = if world.is_synthetic() { " (SYNTHETIC data)" } else { "" };
    println!("{} on {}{label}; {}; seed {}\n{t}", run.policy, world.dataset, describe_env(world), run.seed);
}
