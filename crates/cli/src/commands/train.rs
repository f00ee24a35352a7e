//! `dsrm train --config FILE [--resume] [--out DIR]`: train an agent in the simulated environment
//! (`dsrm_study::train`, whose docs describe the config file and the run directory).

use crate::output;
use anyhow::Result;
use clap::Args;
use dsrm_sim::World;
use dsrm_study::train::{self, TrainFile};
use dsrm_train::TrainSummary;
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainArgs {
    /// TOML config (sections data, env, world, eval, world_model, train; `[train.algorithm] kind` is one of
    /// a2c, ppo, hrl, fcpo, dqn, sac, sac4ir, td3, dnair, mofir, bcq, cql, crr, sqn).
    #[arg(long)]
    pub config: PathBuf,
    /// Continue the run in --out from its checkpoint (the config must match).
    #[arg(long)]
    pub resume: bool,
    /// Run directory. Default: runs/train-<algorithm>-seed<seed>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The data set's directory (its official files), replacing the config's `[data] dir`. Without either,
    /// KuaiRec uses the cached synthetic set and any other data set is an error naming this flag.
    #[arg(long)]
    pub data: Option<PathBuf>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let mut file = TrainFile::load(&args.config)?;
    if let Some(dir) = &args.data {
        file.data.dir = Some(dir.clone());
    }
    let out = args.out.clone().unwrap_or_else(|| train::default_out(&file));
    let trained = train::run(&file, &out, args.resume, &output::progress())?;
    print_summary(&trained.summary, &trained.world);
    let front = if out.join("front.json").exists() { ", front.json" } else { "" };
    eprintln!("wrote {}/{{log.jsonl, metrics.json{front}, summary.json, checkpoint.bin}}", out.display());
    Ok(())
}

/// The selected epoch's test metrics, one row per (selection, mode).
fn print_summary(s: &TrainSummary, world: &World) {
    let header = ["selection", "mode", "R_tra", "R_each", "Length", "CV", "MCD", "Gini", "LongTailShare"];
    let mut t = output::table(&header);
    for (selection, modes) in &s.selected {
        for (mode, m) in modes {
            let mut row = vec![selection.clone(), mode.clone()];
            row.extend(output::metric_cells(m, &header[2..]));
            t.add_row(row);
        }
    }
    let label = if world.is_synthetic() { " (SYNTHETIC data)" } else { "" };
    println!(
        "{} + {} on {}{label}: test users, epoch {} of {} (selected by {})\n{t}",
        s.algorithm, s.tracker, world.dataset, s.selected_epoch, s.epochs, s.selection_rule
    );
}
