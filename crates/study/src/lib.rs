//! `dsrm-study`: the library under the `dsrm` command line. It runs the studies of dsrm-hrl (evaluations,
//! training runs, experiments with sweeps, the feedback loop, the DSRM stage and its fidelity probe, retuning,
//! the demo) from typed run files, writes their result files, and returns typed results. It prints nothing:
//! progress goes through a [`progress::Progress`] callback, and tables and bars are the CLI's (or a server's,
//! or a Python package's) business.
//!
//! Where it sits: above the simulator (`dsrm-sim`), the metrics and evaluation (`dsrm-eval`), the agents and
//! their trainer (`dsrm-agents`), the world models (`dsrm-world`), the denoisers (`dsrm-denoise`) and the
//! report (`dsrm-report`); below the `dsrm` binary, which parses arguments, calls this crate and prints.
//!
//! Modules, by purpose:
//!
//! * [`config`]: the `[data]` table every run file shares and `dsrm eval` / `dsrm demo`'s run config;
//! * [`loading`]: from a `[data]` table to a [`dsrm_sim::World`] (real files or the cached synthetic KuaiRec);
//! * [`world_model`]: the `[world_model]` table and the training reward it builds;
//! * [`world_cache`]: trained user-model ensembles, kept and reused across runs;
//! * [`train`]: `dsrm train`'s run file and run;
//! * [`eval`]: one heuristic policy, one seed, every mode (and the pieces the demo and experiments reuse);
//! * [`demo`]: the baselines over seeds, then the small study (experiment, loop, report);
//! * [`experiment`]: experiment files, sweeps and their (method, seed) runs;
//! * [`feedback_loop`]: the feedback-loop study (deploy, log, refit, repeat);
//! * [`paper`]: `dsrm study paper`, the paper's protocol: its experiments, tables, verdicts and plots;
//! * [`retune`]: retraining only the high level of a finished HRL run;
//! * [`stage`]: the DSRM stage on its own (train, purify);
//! * [`fidelity`]: raw vs purified states on synthetic data with a known truth (ridge probes);
//! * [`report`]: writing the report of an experiment directory;
//! * [`provenance`]: the one provenance record every run writes;
//! * [`progress`]: the events a running study reports.
//!
//! Errors are `anyhow` errors with context: every error about a file names the file, and errors in run files
//! name the line and column.

pub mod cache_usage;
pub mod config;
pub mod data_cache;
pub mod demo;
pub mod eval;
pub mod experiment;
pub mod feedback_loop;
pub mod fidelity;
pub mod loading;
pub mod paper;
pub mod progress;
pub mod provenance;
pub mod report;
pub mod retune;
pub mod stage;
pub mod stage_cache;
pub mod train;
pub mod world_cache;
pub mod world_model;

pub use progress::{Event, Progress};
pub use provenance::Provenance;
