//! `dsrm demo`: a small version of the whole study on one data set (by default the synthetic KuaiRec).
//!
//! 1. Every heuristic baseline on the `dorl-paper` preset over several seeds: a table of mean ± 95% CI per
//!    mode (`RUN/summary.*`).
//! 2. The study (`RUN/study/`), unless `--baselines-only`: the ablation experiment with a fairness sweep
//!    (`configs/demo-study.toml`, run by `dsrm experiment`), the feedback loop (`configs/demo-loop.toml`, run by
//!    `dsrm loop`), and the report (`dsrm report`), whose path it prints last. Both configs take the demo's
//!    `[data]`, `[env]` and `[world]`, so `--data DIR --dataset D` runs the study on real data.
//!
//! Everything resumes: finished (policy, seed) jobs, training runs and loop rounds are kept, so rerunning the
//! same command after an interruption only computes what is missing.

use super::eval::{policy_name, provenance, run_policy, selection_name, write_policy_run};
use crate::config::{RunArgs, RunConfig};
use crate::{loading, output};
use anyhow::{Context, Result};
use clap::Args;
use dsrm_eval::summary::Summary;
use dsrm_eval::MetricInputs;
use dsrm_metrics::MetricSet;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

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

/// The study's experiment and loop, as shipped in `configs/` (compiled in, so the binary runs anywhere).
const STUDY_CONFIG: &str = include_str!("../../../../configs/demo-study.toml");
const LOOP_CONFIG: &str = include_str!("../../../../configs/demo-loop.toml");

/// What a finished job leaves for the summary (and for resuming).
#[derive(Serialize, Deserialize)]
struct JobRecord {
    config_sha256: String,
    policy: String,
    seed: u64,
    /// (selection, mode, metrics)
    metrics: Vec<(String, String, MetricSet)>,
}

fn resolve_config(args: &DemoArgs) -> Result<RunConfig> {
    let mut cfg = args.run.resolve()?;
    if let Some(n) = args.seeds {
        cfg.seeds = (1..=n).collect();
    }
    if let Some(size) = &args.size {
        cfg.data.synthetic_size = size.clone();
    }
    Ok(cfg)
}

pub fn run(args: DemoArgs) -> Result<()> {
    let cfg = resolve_config(&args)?;
    let config_sha = format!("{:x}", Sha256::digest(cfg.to_toml().as_bytes()));
    let world = loading::load_world(&cfg)?;
    let inputs = MetricInputs::new(&world, cfg.eval.mcd_dominant);
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    output::write_json(&out.join("provenance.json"), &provenance(&cfg, &world, &inputs, &cfg.seeds))?;

    let jobs: Vec<_> = cfg.policies.iter().flat_map(|&p| cfg.seeds.iter().map(move |&s| (p, s))).collect();
    let per_job = (cfg.eval.selections.len() * 3) as u64;
    let pb = output::bar(jobs.len() as u64 * per_job, "evaluating");
    let records: Vec<JobRecord> = jobs
        .par_iter()
        .map(|&(kind, seed)| -> Result<JobRecord> {
            let dir = out.join(policy_name(kind)).join(format!("seed-{seed}"));
            if let Some(done) = finished_job(&dir, &config_sha) {
                pb.inc(per_job);
                return Ok(done);
            }
            let run = run_policy(&world, &inputs, kind, &cfg, seed, &|| pb.inc(1))?;
            write_policy_run(&dir, &run, &world, &cfg)?;
            let record = JobRecord {
                config_sha256: config_sha.clone(),
                policy: run.policy.clone(),
                seed,
                metrics: run
                    .results
                    .iter()
                    .map(|r| (selection_name(r.selection).to_string(), r.mode.key(), r.metrics.clone()))
                    .collect(),
            };
            output::write_json(&dir.join("job.json"), &record)?;
            Ok(record)
        })
        .collect::<Result<_>>()?;
    pb.finish_and_clear();

    let label = if world.is_synthetic() { "SYNTHETIC KuaiRec-format data" } else { world.dataset.as_str() };
    let mut markdown = format!(
        "# dsrm demo: {label}, preset {}, seeds {:?}, {} episodes per mode\n\n",
        cfg.env.preset.name(),
        cfg.seeds,
        cfg.eval.episodes
    );
    for &selection in &cfg.eval.selections {
        let sel = selection_name(selection);
        let summary = Summary::from_runs(records.iter().flat_map(|r| {
            r.metrics.iter().filter(|m| m.0 == sel).map(move |m| (r.policy.as_str(), m.1.as_str(), &m.2))
        }));
        let suffix = if selection == cfg.eval.selections[0] { String::new() } else { format!("_{sel}") };
        output::write_atomic(&out.join(format!("summary{suffix}.csv")), summary.to_csv().as_bytes())?;
        output::write_json(&out.join(format!("summary{suffix}.json")), &summary)?;
        for mode in dsrm_eval::Mode::standard(cfg.eval.force_length) {
            let title = format!("{} — {sel} actions, mode {mode}", label);
            markdown += &format!("## {title}\n\n{}\n", summary.to_markdown(&mode.key()));
            if selection == cfg.eval.selections[0] {
                output::print_summary(&summary, &mode.key(), &title);
            }
        }
    }
    output::write_atomic(&out.join("summary.md"), markdown.as_bytes())?;
    eprintln!(
        "wrote {0}/summary.{{csv,md,json}}, {0}/provenance.json and one folder per policy and seed",
        out.display()
    );
    if args.baselines_only {
        return Ok(());
    }
    study(&cfg, &out.join("study"), args.jobs)
}

/// Step 2: the ablation experiment with its sweep, the feedback loop and the report, in `dir`.
fn study(cfg: &RunConfig, dir: &Path, jobs: Option<usize>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let with_data = |text: &str, name: &str| -> Result<PathBuf> {
        let mut table: toml::Table = toml::from_str(text).with_context(|| format!("configs/{name} (built in)"))?;
        table.insert("data".into(), toml::Value::try_from(&cfg.data)?);
        table.insert("env".into(), toml::Value::try_from(&cfg.env)?);
        table.insert("world".into(), toml::Value::try_from(&cfg.world)?);
        let path = dir.join(name);
        output::write_atomic(&path, toml::to_string_pretty(&table)?.as_bytes())?;
        Ok(path)
    };
    eprintln!("study 1/3: ablation experiment and fairness sweep");
    let config = with_data(STUDY_CONFIG, "demo-study.toml")?;
    super::experiment::run(super::experiment::ExperimentArgs {
        config,
        out: dir.to_path_buf(),
        jobs,
        seeds: None,
        methods: None,
    })?;
    eprintln!("study 2/3: feedback loop");
    let config = with_data(LOOP_CONFIG, "demo-loop.toml")?;
    super::feedback_loop::run(super::feedback_loop::LoopArgs { config, out: dir.to_path_buf() })?;
    eprintln!("study 3/3: report");
    super::report::run(super::report::ReportArgs {
        run_dir: dir.to_path_buf(),
        out: None,
        reference: dsrm_report::Reference::Origin,
    })?;
    println!("report: {}", dir.join("report").join("report.html").display());
    Ok(())
}

fn finished_job(dir: &Path, config_sha: &str) -> Option<JobRecord> {
    let text = std::fs::read_to_string(dir.join("job.json")).ok()?;
    let record: JobRecord = serde_json::from_str(&text).ok()?;
    (record.config_sha256 == config_sha).then_some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_study_configs_parse_with_the_demo_data() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RunConfig::default();
        for (text, name) in [(STUDY_CONFIG, "study.toml"), (LOOP_CONFIG, "loop.toml")] {
            let mut table: toml::Table = toml::from_str(text).unwrap();
            table.insert("data".into(), toml::Value::try_from(&cfg.data).unwrap());
            table.insert("env".into(), toml::Value::try_from(&cfg.env).unwrap());
            table.insert("world".into(), toml::Value::try_from(&cfg.world).unwrap());
            let path = dir.path().join(name);
            std::fs::write(&path, toml::to_string_pretty(&table).unwrap()).unwrap();
            if name == "study.toml" {
                let file = super::super::experiment::ExperimentFile::load(&path).unwrap();
                assert_eq!(file.data, cfg.data);
            } else {
                let file = super::super::feedback_loop::LoopFile::load(&path).unwrap();
                assert_eq!(file.env, cfg.env);
            }
        }
    }
}
