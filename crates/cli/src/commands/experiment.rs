//! `dsrm experiment --config FILE`: methods x seeds, one results table with mean ± 95% CI per mode and metric
//! (`dsrm_study::experiment`, whose docs describe the file, sweeps, resuming and the shared world models).

use crate::output;
use anyhow::{Context, Result};
use clap::Args;
use dsrm_study::experiment::{self, Executor, ExperimentRequest};
use std::path::PathBuf;

#[derive(Args)]
pub struct ExperimentArgs {
    /// TOML experiment file (see configs/experiments/default.toml).
    #[arg(long)]
    pub config: PathBuf,
    #[arg(long, default_value = "runs/experiment")]
    pub out: PathBuf,
    /// Concurrent training processes (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Run these seeds instead of the file's (comma-separated, e.g. `1,2,3`).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Train only these methods (names or sweep families, comma-separated); the tables keep the rows earlier
    /// invocations made for the others (their finished runs under this config and code).
    /// A later run of the whole file reuses what they finished.
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<String>>,
    /// The data set's directory (its official files), replacing the config's `[data] dir`. Without either,
    /// KuaiRec uses the cached synthetic set and any other data set is an error naming this flag.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where the training runs execute: `local` (child processes here, --jobs at a time) or `ray` (one Ray task
    /// per run; the results are the same bytes).
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
    pub executor: ExecutorKind,
    /// With --executor ray: an existing Ray cluster (`ray://HEAD:10001` or `auto`); default: a local Ray instance
    /// started for the experiment. Every node needs this `dsrm` and the run directory at the same paths.
    #[arg(long)]
    pub address: Option<String>,
    /// With --executor ray: the Python with Ray and the `dsrm_hrl` package (default: .venv-py/bin/python).
    #[arg(long, default_value = ".venv-py/bin/python")]
    pub python: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorKind {
    Local,
    Ray,
}

pub fn run(args: ExperimentArgs) -> Result<()> {
    if args.address.is_some() && args.executor != ExecutorKind::Ray {
        anyhow::bail!("--address names a Ray cluster: it needs --executor ray");
    }
    let request = ExperimentRequest {
        config: args.config,
        out: args.out,
        jobs: args.jobs,
        seeds: args.seeds,
        methods: args.methods,
        train_exe: std::env::current_exe().context("finding the dsrm executable")?,
        data: args.data,
        executor: match args.executor {
            ExecutorKind::Local => Executor::Local,
            ExecutorKind::Ray => Executor::Ray { address: args.address, python: args.python },
        },
    };
    experiment::run(&request, &output::progress())?.iter().for_each(output::print_summary);
    eprintln!("wrote {0}/results.{{csv,md,json}} and one folder per method and seed", request.out.display());
    Ok(())
}
