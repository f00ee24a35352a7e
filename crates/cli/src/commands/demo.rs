//! `dsrm demo`: every heuristic baseline on the `dorl-paper` preset over several seeds, as a table of
//! mean ± 95% CI, plus the run directory. Finished (policy, seed) jobs are kept: rerunning the same command
//! after an interruption only computes what is missing.

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
}

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
    Ok(())
}

fn finished_job(dir: &Path, config_sha: &str) -> Option<JobRecord> {
    let text = std::fs::read_to_string(dir.join("job.json")).ok()?;
    let record: JobRecord = serde_json::from_str(&text).ok()?;
    (record.config_sha256 == config_sha).then_some(record)
}
