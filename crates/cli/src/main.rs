//! `dsrm`: the command line of dsrm-hrl. It parses arguments, calls the study library (`dsrm-study`) and
//! prints what it returns: tables, progress bars, the paths it wrote.

mod commands;
mod config;
mod output;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Fair interactive recommendation: exact DORL / EasyRL4Rec simulators, baselines and fairness metrics.
#[derive(Parser)]
#[command(name = "dsrm", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Data sets: generate synthetic KuaiRec, validate real files.
    Data {
        #[command(subcommand)]
        command: commands::data::DataCommand,
    },
    /// Evaluate one policy with one seed in every mode; writes metrics.json, episodes.jsonl, provenance.json.
    Eval(commands::eval::EvalArgs),
    /// Every heuristic baseline over several seeds (mean ± 95% CI), then a small study (a short `dsrm study paper`
    /// at Max Len 30, the feedback loop, the report) unless --baselines-only; synthetic KuaiRec unless --data.
    Demo(commands::demo::DemoArgs),
    /// Train an agent (a2c, ppo, hrl, fcpo, dqn, sac, sac4ir, td3, dnair, mofir, bcq, cql, crr or sqn) in the
    /// simulated environment, evaluating on the ground truth every epoch.
    Train(commands::train::TrainArgs),
    /// Retrain only the high level of a finished HRL run with a new λ_f (or a fixed target ratio).
    Retune(commands::retune::RetuneArgs),
    /// Methods x seeds (heuristics and RL agents), one table with mean ± 95% CI per mode and metric.
    Experiment(commands::experiment::ExperimentArgs),
    /// Feedback-loop study: deploy, log the served interactions, refit, repeat; Gini / long-tail share /
    /// coverage / R_tra per round.
    Loop(commands::feedback_loop::LoopArgs),
    /// Studies: `dsrm study paper`, the paper's protocol with its tables, verdicts and plots.
    Study {
        #[command(subcommand)]
        command: commands::study::StudyCommand,
    },
    /// Report of an experiment directory: report.html (offline), tables.md, tables.tex, SVG and PNG plots.
    Report(commands::report::ReportArgs),
    /// DSRM state purification: train a stage, purify states, measure fidelity on synthetic data.
    Dsrm {
        #[command(subcommand)]
        command: commands::dsrm::DsrmCommand,
    },
    /// Serve a finished `dsrm train` run over HTTP: recommend, feedback, health, Prometheus metrics, live
    /// fairness changes (docs/serving.md).
    Serve(commands::serve::ServeArgs),
    /// A simulated A/B test of two trained runs, each served live by `dsrm serve` and driven over HTTP by the
    /// simulator's users: outcomes per arm with 95% CIs, B − A, and a sequential test valid under peeking.
    Abtest(commands::abtest::AbTestArgs),
    /// Benchmarks: environment steps/s, neural-network speed, denoiser latency, a running server's latency.
    Bench {
        #[command(subcommand)]
        command: commands::bench::BenchCommand,
    },
    /// The cache folder (`DSRM_CACHE` or `./.cache/dsrm`): what it holds per kind, and pruning what no run has
    /// used for a while (each cache is keyed by the code version, so old builds' entries stay until pruned).
    Cache {
        #[command(subcommand)]
        command: commands::cache::CacheCommand,
    },
    /// List the environment presets and their settings.
    Presets,
}

fn main() -> Result<()> {
    dsrm_nn::runtime::keep_freed_memory();
    match Cli::parse().command {
        Command::Data { command } => commands::data::run(command),
        Command::Eval(args) => commands::eval::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Experiment(args) => commands::experiment::run(args),
        Command::Loop(args) => commands::feedback_loop::run(args),
        Command::Study { command } => commands::study::run(command),
        Command::Report(args) => commands::report::run(args),
        Command::Dsrm { command } => commands::dsrm::run(command),
        Command::Retune(args) => commands::retune::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Abtest(args) => commands::abtest::run(args),
        Command::Bench { command } => commands::bench::run(command),
        Command::Cache { command } => commands::cache::run(command),
        Command::Presets => commands::presets(),
    }
}
