//! `dsrm study paper`: the paper's protocol as one resumable command (`dsrm_study::paper`, whose docs describe
//! the parts, the equal-compute budget, the tables and the verdicts).

use crate::output;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use dsrm_data::Dataset;
use dsrm_study::paper::{self, PaperRequest};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum StudyCommand {
    /// The DSRM-HRL paper's protocol: every method at Max Len 30 and 50 on the popularity-aware environment,
    /// equal environment steps and gradient updates, 5 seeds; writes tables/ (table2, table3, steps, table4,
    /// sensitivity), verdicts (Holm-corrected), plots/ and report.md. Resumable: rerun the same command.
    Paper(PaperArgs),
}

#[derive(Args)]
pub struct PaperArgs {
    /// The data set's directory (its official files); default: the file's (the cached synthetic KuaiRec).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which data set `--data` holds: kuairec | kuairand-pure | coat.
    #[arg(long, value_parser = crate::commands::data::parse_dataset)]
    pub dataset: Option<Dataset>,
    /// Max Lens (episode caps), comma-separated; default 30,50.
    #[arg(long, value_delimiter = ',')]
    pub max_len: Option<Vec<usize>>,
    /// Seeds, comma-separated; default 1,2,3,4,5.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Concurrent training processes (default: the number of cores). Table 4's times need --jobs 1.
    #[arg(long)]
    pub jobs: Option<usize>,
    #[arg(long, default_value = "runs/paper")]
    pub out: PathBuf,
    /// The tiny synthetic set, 2 seeds, Max Len 30 and a small budget (the study file's [smoke] table): the
    /// whole pipeline in minutes.
    #[arg(long)]
    pub smoke: bool,
    /// Only rebuild tables, verdicts, plots and report from the finished parts in --out (no training).
    #[arg(long)]
    pub tables_only: bool,
    /// Train only these parts, comma-separated (max-len-30, max-len-50, theta-p-0, theta-p-2: the folders the
    /// study writes), e.g. the θ_p sensitivity before the Max Len 30 part has finished; the tables read every part.
    #[arg(long, value_delimiter = ',')]
    pub parts: Option<Vec<String>>,
    /// A study file instead of the built-in configs/study/paper.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(command: StudyCommand) -> Result<()> {
    let StudyCommand::Paper(args) = command;
    if args.data.is_some() && args.dataset.is_none() {
        eprintln!("note: --data without --dataset reads the study file's data set (kuairec by default)");
    }
    let request = PaperRequest {
        config: args.config,
        out: args.out,
        data: args.data,
        dataset: args.dataset,
        max_len: args.max_len,
        seeds: args.seeds,
        jobs: args.jobs,
        smoke: args.smoke,
        tables_only: args.tables_only,
        parts: args.parts,
        train_exe: std::env::current_exe().context("finding the dsrm executable")?,
    };
    let outcome = paper::run(&request, &output::progress())?;
    for t in outcome.tables.iter().filter(|t| ["table2", "table3", "cost"].contains(&t.name.as_str())) {
        output::print_paper_table(t);
    }
    print_verdicts(&outcome.verdicts);
    for n in &outcome.notes {
        eprintln!("note: {n}");
    }
    eprintln!(
        "wrote {0}/report.md, {0}/tables/, {0}/verdicts.{{md,csv}}, {0}/plots/ and one experiment per part",
        outcome.out.display()
    );
    Ok(())
}

/// One line counting the verdicts.
pub fn print_verdicts(verdicts: &[dsrm_study::paper::verdicts::Verdict]) {
    let count = |w: &str| verdicts.iter().filter(|v| v.verdict == w).count();
    println!(
        "{} of the paper's claims tested: {} hold, {} not shown, {} reversed, {} untestable (Holm-corrected)",
        verdicts.len(),
        count("holds"),
        count("not shown"),
        count("reversed"),
        count("untestable")
    );
}
