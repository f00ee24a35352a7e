//! `dsrm report RUN_DIR [--out DIR]`: the report of an experiment directory (and its `loop/` folder), as
//! `report.html` (self-contained, opens offline), `tables.md`, `tables.tex`, `pareto.json` and
//! `plots/*.svg` and `plots/*.png`. The `dsrm_report` crate reads and renders; this command only writes the files.

use crate::output;
use anyhow::{Context, Result};
use clap::Args;
use dsrm_report::{Options, Reference};
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
    let out = args.out.clone().unwrap_or_else(|| args.run_dir.join("report"));
    let report = dsrm_report::build(&args.run_dir, &Options { reference: args.reference })
        .with_context(|| format!("building the report of {}", args.run_dir.display()))?;
    for (name, contents) in &report.files {
        output::write_atomic(&out.join(name), contents)?;
    }
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    let plots = report.files.iter().filter(|(n, _)| n.starts_with("plots/") && n.ends_with(".svg")).count();
    eprintln!(
        "wrote {0}/report.html, {0}/tables.md, {0}/tables.tex, {0}/pareto.json and {plots} plots (SVG and PNG) in {0}/plots",
        out.display()
    );
    println!("{}", out.join("report.html").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_run_directory_gives_a_report_with_notes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        run(ReportArgs { run_dir: dir.path().to_path_buf(), out: Some(out.clone()), reference: Reference::Nadir })
            .unwrap();
        for f in ["report.html", "tables.md", "tables.tex", "pareto.json"] {
            assert!(out.join(f).is_file(), "{f}");
        }
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(html.contains("No results.json"));
        let err = run(ReportArgs { run_dir: dir.path().join("missing"), out: None, reference: Reference::Origin })
            .unwrap_err();
        assert!(format!("{err:#}").contains("not a directory"));
    }
}
