//! `dsrm report RUN_DIR [--out DIR]`: the report of an experiment directory (and its `loop/` folder), as
//! `report.html` (self-contained, opens offline), `tables.md`, `tables.tex`, `pareto.json` and
//! `plots/*.svg` and `plots/*.png`. The `dsrm_report` crate reads and renders; `dsrm_study::report` writes.

use anyhow::Result;
use clap::Args;
use dsrm_report::Reference;
use dsrm_study::report::Reported;
use std::path::PathBuf;

#[derive(Args)]
pub struct ReportArgs {
    /// An experiment directory (`dsrm experiment --out`), optionally with `loop/<method>/rounds.jsonl`.
    pub run_dir: PathBuf,
    /// Where the report goes. Default: RUN_DIR/report.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Hypervolume reference point: `origin` (0, 0), `nadir` (the worst utility and 1 − Gini of all
    /// methods in each mode) or `U,F`.
    #[arg(long, default_value = "origin", value_parser = |s: &str| s.parse::<Reference>())]
    pub reference: Reference,
}

pub fn run(args: ReportArgs) -> Result<()> {
    print(&dsrm_study::report::write(&args.run_dir, args.out, args.reference)?);
    Ok(())
}

/// The report's notes and files, and its path on stdout.
pub fn print(report: &Reported) {
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    eprintln!(
        "wrote {0}/report.html, {0}/tables.md, {0}/tables.tex, {0}/pareto.json and {1} plots (SVG and PNG) in {0}/plots",
        report.out.display(),
        report.plots
    );
    println!("{}", report.out.join("report.html").display());
}
