//! `dsrm dsrm …`: the DSRM stage on its own (`dsrm-hrl.md` §4.3; `dsrm_study::stage`, `dsrm_study::fidelity`).
//!
//! * `dsrm dsrm train --config F --out DIR`: replay the training log through the frozen tracker, train the
//!   denoiser of `[train.dsrm]` (a `dsrm train` config), save `DIR/dsrm.bin` with the config, seeds and data
//!   hashes in its metadata. `[train.dsrm] checkpoint = "DIR/dsrm.bin"` then reuses it in training runs.
//! * `dsrm dsrm purify --model M --input states.csv --out purified.csv`: purify CSV rows of floats with a
//!   stage (`dsrm.bin`) or a bare denoiser checkpoint.
//! * `dsrm dsrm fidelity --config F [--out DIR]`: on synthetic KuaiRec with a known truth, raw vs purified
//!   states across generator noise levels, scored on users the denoiser never saw (see
//!   `dsrm_study::fidelity::FidelityFile` for the split and the measures).

use crate::output;
use anyhow::Result;
use clap::{Args, Subcommand};
use dsrm_study::fidelity::{self, FidelityFile, FidelityRow};
use dsrm_study::stage;
use dsrm_study::train::TrainFile;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DsrmCommand {
    /// Train the DSRM stage of a `dsrm train` config (its [train.dsrm], [train.tracker], [world_model]).
    Train {
        #[arg(long)]
        config: PathBuf,
        /// Output directory: dsrm.bin, fit.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// Purify a CSV of states (one row of floats per state, optional header) with a trained model.
    Purify {
        /// A stage (dsrm.bin) or a denoiser checkpoint.
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Raw vs purified states on synthetic data across generator noise levels (probe of the true preference,
    /// popularity probe).
    Fidelity(FidelityArgs),
}

#[derive(Args)]
pub struct FidelityArgs {
    /// Fidelity config (configs/fidelity/default.toml).
    #[arg(long)]
    config: PathBuf,
    /// Measure this `[[variants]]` entry of the file instead of the file's own stage.
    #[arg(long)]
    variant: Option<String>,
    /// Output directory (fidelity.csv, fidelity.json). Default: runs/fidelity (runs/fidelity-<variant>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The denoiser's training seed instead of the file's (to repeat a setting over seeds; the user split,
    /// seeded by `[dsrm] seed`, stays the same). Recorded in fidelity.json's config.
    #[arg(long)]
    denoiser_seed: Option<u64>,
}

pub fn run(command: DsrmCommand) -> Result<()> {
    match command {
        DsrmCommand::Train { config, out } => {
            let file = TrainFile::load(&config)?;
            let trained = stage::train(&file, &config, &out, &output::progress())?;
            print_reports(&trained.model);
            eprintln!(
                "wrote {} ({}; reads {}; clean target: {})",
                trained.path.display(),
                trained.denoiser,
                trained.reads,
                trained.target
            );
        }
        DsrmCommand::Purify { model, input, out } => {
            let done = stage::purify(&model, &input, &out)?;
            eprintln!("purified {} states with {} -> {}", done.states, done.denoiser, out.display());
        }
        DsrmCommand::Fidelity(args) => {
            let mut file = FidelityFile::load_variant(&args.config, args.variant.as_deref())?;
            if let Some(seed) = args.denoiser_seed {
                file.dsrm.denoiser = file.dsrm.denoiser.with_seed(seed);
            }
            let default_out = match &args.variant {
                Some(name) => format!("runs/fidelity-{name}"),
                None => "runs/fidelity".into(),
            };
            let out = args.out.unwrap_or_else(|| PathBuf::from(default_out));
            print_fidelity(&fidelity::run(&file, &out, &output::progress())?);
            eprintln!("wrote {}/{{fidelity.csv, fidelity.json}}", out.display());
        }
    }
    Ok(())
}

/// The fit reports as a terminal table.
fn print_reports(model: &dsrm_denoise::stage::DsrmModel) {
    let header = ["model", "epochs", "best epoch", "best valid loss", "stopped early", "train rows", "valid rows"];
    let mut t = output::table(&header);
    for r in &model.reports {
        t.add_row(vec![
            r.phase.clone(),
            r.epochs.to_string(),
            r.best_epoch.to_string(),
            format!("{:.6}", r.best_valid_loss),
            r.stopped_early.to_string(),
            r.train_rows.to_string(),
            r.valid_rows.to_string(),
        ]);
    }
    if model.reports.is_empty() {
        let (train, valid) = (model.rows.0.to_string(), model.rows.1.to_string());
        t.add_row(["identity (nothing to train)", "", "", "", "", &train, &valid]);
    }
    println!("{t}");
}

fn print_fidelity(rows: &[FidelityRow]) {
    let header = [
        "noise level",
        "states",
        "pref cosine ↑",
        "pref R² ↑",
        "popularity corr ↓",
        "MSE to s^(0) ↓",
        "held-out states",
    ];
    let mut t = output::table(&header);
    for r in rows {
        t.add_row(vec![
            format!("{}", r.noise_level),
            r.representation.clone(),
            format!("{:.4}", r.pref_cosine),
            format!("{:.4}", r.pref_r2),
            format!("{:.4}", r.pop_corr),
            r.target_mse.map_or("—".into(), |m| format!("{m:.3e}")),
            r.states.to_string(),
        ]);
    }
    println!("{t}");
}
