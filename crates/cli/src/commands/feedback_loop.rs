//! `dsrm loop --config FILE [--out DIR]`: the feedback-loop study (`dsrm_study::feedback_loop`, whose docs
//! describe the loop, its file and its output).

use crate::output;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct LoopArgs {
    /// TOML loop file (see configs/loop.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// Output directory; the per-round files go to OUT/loop/.
    #[arg(long, default_value = "runs/loop")]
    pub out: PathBuf,
}

pub fn run(args: LoopArgs) -> Result<()> {
    let markdown = dsrm_study::feedback_loop::run(&args.config, &args.out, &output::progress())?;
    println!("{markdown}");
    eprintln!(
        "wrote {0}/<method>/rounds.jsonl and {0}/summary.{{csv,md}}",
        args.out.join(dsrm_report::LOOP_DIR).display()
    );
    Ok(())
}
