//! `dsrm loop --config FILE [--data DIR] [--out DIR] [--smoke] [--methods A,B]`: the feedback-loop study (`dsrm_study::feedback_loop`, whose docs
//! describe the loop, its file and its output).

use crate::output;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct LoopArgs {
    /// TOML loop file (see configs/loop/kuairec.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// Output directory; the per-round files go to OUT/loop/.
    #[arg(long, default_value = "runs/loop")]
    pub out: PathBuf,
    /// The data set's directory (its official files), replacing the config's `[data] dir`. Without either,
    /// KuaiRec uses the cached synthetic set and any other data set is an error naming this flag.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The file's `[smoke]` version: the tiny synthetic set, fewer seeds, rounds and episodes (minutes).
    #[arg(long)]
    pub smoke: bool,
    /// Only these methods of the file, comma-separated (their rounds are the same as in a run of all).
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<String>>,
}

pub fn run(args: LoopArgs) -> Result<()> {
    let markdown = dsrm_study::feedback_loop::run(
        &args.config,
        &dsrm_study::feedback_loop::LoopRequest {
            data: args.data.as_deref(),
            smoke: args.smoke,
            methods: args.methods.as_deref(),
        },
        &args.out,
        &output::progress(),
    )?;
    println!("{markdown}");
    eprintln!(
        "wrote {0}/<method>/rounds.jsonl and {0}/summary.{{csv,md}}",
        args.out.join(dsrm_report::LOOP_DIR).display()
    );
    Ok(())
}
