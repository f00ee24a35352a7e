//! `dsrm retune --from RUN (--lambda-f X | --target-ratio ρ) [--epochs N] [--out DIR] [--resume]`: decoupled
//! retuning of a finished DSRM-HRL run's high level (`dsrm_study::retune`, whose docs describe the run
//! directory and `retune.json`).

use crate::output;
use anyhow::Result;
use clap::Args;
use dsrm_study::retune::{self, RetuneRequest};
use std::path::PathBuf;

#[derive(Args)]
pub struct RetuneArgs {
    /// A finished `dsrm train` run of `kind = "hrl"`.
    #[arg(long)]
    pub from: PathBuf,
    /// The new fairness weight λ_f of the high-level reward.
    #[arg(long, conflicts_with = "target_ratio", required_unless_present = "target_ratio")]
    pub lambda_f: Option<f64>,
    /// A fixed target long-tail ratio ρ* ∈ [0, 1] instead of a learned high level.
    #[arg(long)]
    pub target_ratio: Option<f64>,
    /// Epochs of high-level training. Default: the original run's (1 with --target-ratio).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Run directory. Default: RUN-retune-lambda_f-X (or RUN-retune-ratio-ρ) next to RUN.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue an interrupted retune in --out.
    #[arg(long)]
    pub resume: bool,
}

pub fn run(args: RetuneArgs) -> Result<()> {
    let RetuneArgs { from, lambda_f, target_ratio, epochs, out, resume } = args;
    let request = RetuneRequest { from, lambda_f, target_ratio, epochs, out, resume };
    let r = retune::run(&request, &output::progress())?;
    let mut t = output::table(&["run", "mode", "R_tra", "Gini", "LongTailShare"]);
    for (name, s) in [("original", &r.original.selected), ("retuned", &r.retuned.selected)] {
        for (mode, m) in s.get("sampled").into_iter().flatten() {
            let cells = [m.r_tra, m.gini, m.long_tail_share].map(|v| format!("{v:.4}"));
            t.add_row([name.to_string(), mode.clone()].into_iter().chain(cells).collect::<Vec<_>>());
        }
    }
    let label = if r.synthetic { " on SYNTHETIC data" } else { "" };
    println!("retune of {} ({}){label}: test users, sampled actions\n{t}", request.from.display(), r.tag);
    println!(
        "wall time: retune {:.1}s over {} epochs ({:.1}s with loading) vs original full run {:.1}s",
        r.retune_wall_s, r.epochs, r.process_wall_s, r.original_wall_s
    );
    eprintln!("wrote {}/{{retune.json, metrics.json, summary.json, provenance.json}}", r.out.display());
    Ok(())
}
