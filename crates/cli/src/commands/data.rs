//! `dsrm data synth` and `dsrm data validate`.

use crate::output;
use anyhow::{bail, Result};
use clap::Subcommand;
use dsrm_data::Dataset;
use dsrm_study::loading;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Write a synthetic data set in the exact KuaiRec 2.0 file format (real item categories; labelled synthetic).
    Synth {
        /// `full` (official dimensions, ~1 GB) or `tiny` (for tests).
        #[arg(long, default_value = "full")]
        size: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory (created; must not already hold a data set).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check every file of a data set directory: counts, and every problem found with file, line and column.
    Validate {
        #[arg(long, value_parser = parse_dataset)]
        dataset: Dataset,
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Parses `kuairec | kuairand-pure | coat`.
pub fn parse_dataset(s: &str) -> Result<Dataset, String> {
    match s {
        "kuairec" => Ok(Dataset::KuaiRec),
        "kuairand-pure" | "kuairand" => Ok(Dataset::KuaiRandPure),
        "coat" => Ok(Dataset::Coat),
        _ => Err(format!("unknown dataset {s:?}; expected kuairec, kuairand-pure or coat")),
    }
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Synth { size, seed, out } => {
            if out.join("synthetic.json").exists() || out.join("small_matrix.csv").exists() {
                bail!("{} already holds a data set; choose an empty or new directory", out.display());
            }
            loading::generate_synthetic(loading::synth_size(&size)?, seed, &out, &output::progress())
        }
        DataCommand::Validate { dataset, dir } => {
            let report = dsrm_data::validate(dataset, &dir);
            println!("{report}");
            if report.problems.is_empty() {
                Ok(())
            } else {
                bail!("{} problem(s) found in {}", report.problems.len(), dir.display())
            }
        }
    }
}
