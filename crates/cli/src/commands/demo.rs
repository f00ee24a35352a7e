//! `dsrm demo`: a small version of the whole study on one data set (by default the synthetic KuaiRec): every
//! heuristic baseline over several seeds, then (unless `--baselines-only`) a small `dsrm study paper` (Max Len
//! 30, 3 seeds, short budget), the feedback loop and the report, whose path it prints last (`dsrm_study::demo`).
//! Everything resumes: rerunning the same command after an interruption only computes what is missing.

use crate::config::RunArgs;
use crate::output;
use anyhow::{Context, Result};
use clap::Args;
use dsrm_study::demo;
use std::path::PathBuf;

#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Number of seeds (1..=n).
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Synthetic size when no --data: full or tiny.
    #[arg(long)]
    pub size: Option<String>,
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Only the heuristic baselines (step 1).
    #[arg(long)]
    pub baselines_only: bool,
    /// Concurrent training processes of the study (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let mut cfg = args.run.resolve()?;
    if let Some(n) = args.seeds {
        cfg.seeds = (1..=n).collect();
    }
    if let Some(size) = &args.size {
        cfg.data.synthetic_size = size.clone();
    }
    let progress = output::progress();
    demo::baselines(&cfg, &args.out, &progress)?.iter().for_each(output::print_summary);
    eprintln!(
        "wrote {0}/summary.{{csv,md,json}}, {0}/provenance.json and one folder per policy and seed",
        args.out.display()
    );
    if args.baselines_only {
        return Ok(());
    }
    let dir = args.out.join("study");
    let exe = std::env::current_exe().context("finding the dsrm executable")?;
    let study = demo::study(&cfg, &dir, args.jobs, &exe, &progress)?;
    for t in study.paper.tables.iter().filter(|t| t.name == "table2" || t.name == "table3") {
        output::print_paper_table(t);
    }
    super::study::print_verdicts(&study.paper.verdicts);
    println!("{}", study.feedback_loop);
    super::report::print(&study.report);
    println!("paper study: {}", study.paper.out.join("report.md").display());
    println!("report: {}", study.report.out.join("report.html").display());
    Ok(())
}
