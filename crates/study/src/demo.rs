//! `dsrm demo`'s work: a small version of the whole study on one data set (by default the synthetic KuaiRec).
//!
//! 1. Every heuristic baseline on the `dorl-paper` preset over several seeds: a table of mean ± 95% CI per
//!    mode (`RUN/summary.*`).
//! 2. The study (`RUN/study/`), unless `--baselines-only`: a small `dsrm study paper` (`configs/study/demo.toml`:
//!    Max Len 30, 3 seeds, a short budget; `RUN/study/paper/`), the feedback loop (`configs/loop/demo.toml`, run by
//!    `dsrm loop`, into the paper part's `loop/`), and that part's report, whose path it prints last. Both take
//!    the demo's `[data]` and `[world]` (the loop also its `[env]`), so `--data DIR --dataset D` runs the study
//!    on real data.
//!
//! Everything resumes: finished (policy, seed) jobs, training runs and loop rounds are kept, so rerunning the
//! same command after an interruption only computes what is missing.

use crate::config::RunConfig;
use crate::eval::{policy_name, provenance, run_policy, selection_name, write_policy_run};
use crate::experiment::ResultTable;
use crate::loading;
use crate::paper::{PaperOutcome, PaperRequest};
use crate::progress::{begin, note, Event, Progress};
use crate::report::Reported;
use anyhow::{Context, Result};
use dsrm_eval::summary::Summary;
use dsrm_eval::MetricInputs;
use dsrm_metrics::MetricSet;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The study's paper study and loop, as shipped in `configs/` (compiled in, so the binary runs anywhere).
pub const STUDY_CONFIG: &str = include_str!("../../../configs/study/demo.toml");
/// The study's feedback loop (`configs/loop/demo.toml`).
pub const LOOP_CONFIG: &str = include_str!("../../../configs/loop/demo.toml");

/// What a finished job leaves for the summary (and for resuming).
#[derive(Serialize, Deserialize)]
struct JobRecord {
    config_sha256: String,
    policy: String,
    seed: u64,
    /// (selection, mode, metrics)
    metrics: Vec<(String, String, MetricSet)>,
}

/// Step 1: every policy of `cfg` over its seeds on its data, evaluated in parallel (finished (policy, seed) jobs
/// are reused); writes `out/summary{,_<sel>}.{csv,json}`, `out/summary.md`, `out/provenance.json` and one
/// folder per policy and seed, and returns the headline selection's tables, one per mode.
pub fn baselines(cfg: &RunConfig, out: &Path, progress: Progress) -> Result<Vec<ResultTable>> {
    let config_sha = format!("{:x}", Sha256::digest(cfg.to_toml().as_bytes()));
    let world = loading::load_world(cfg, progress)?;
    let inputs = MetricInputs::new(&world, cfg.eval.mcd_dominant);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    provenance(cfg, &world, &inputs)?.write(&out.join("provenance.json"))?;

    let jobs: Vec<_> = cfg.policies.iter().flat_map(|&p| cfg.seeds.iter().map(move |&s| (p, s))).collect();
    let per_job = (cfg.eval.selections.len() * 3) as u64;
    begin(progress, "evaluating", Some(jobs.len() as u64 * per_job));
    let records: Result<Vec<JobRecord>> = jobs
        .par_iter()
        .map(|&(kind, seed)| -> Result<JobRecord> {
            let dir = out.join(policy_name(kind)).join(format!("seed-{seed}"));
            if let Some(done) = finished_job(&dir, &config_sha) {
                progress(Event::Advance(per_job));
                return Ok(done);
            }
            let run = run_policy(&world, &inputs, kind, cfg, seed, progress)?;
            write_policy_run(&dir, &run, &world, cfg)?;
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
            dsrm_files::write_json(&dir.join("job.json"), &record)?;
            Ok(record)
        })
        .collect();
    progress(Event::End);
    let records = records?;

    let label = if world.is_synthetic() { "SYNTHETIC KuaiRec-format data" } else { world.dataset.as_str() };
    let mut markdown = format!(
        "# dsrm demo: {label}, preset {}, seeds {:?}, {} episodes per mode\n\n",
        cfg.env.preset.name(),
        cfg.seeds,
        cfg.eval.episodes
    );
    let mut tables = Vec::new();
    for &selection in &cfg.eval.selections {
        let sel = selection_name(selection);
        let summary = Summary::from_runs(records.iter().flat_map(|r| {
            r.metrics.iter().filter(|m| m.0 == sel).map(move |m| (r.policy.as_str(), m.1.as_str(), &m.2))
        }));
        let suffix = if selection == cfg.eval.selections[0] { String::new() } else { format!("_{sel}") };
        dsrm_files::write_atomic(&out.join(format!("summary{suffix}.csv")), summary.to_csv().as_bytes())?;
        dsrm_files::write_json(&out.join(format!("summary{suffix}.json")), &summary)?;
        for mode in cfg.eval.modes() {
            let title = format!("{} — {sel} actions, mode {mode}", label);
            markdown += &format!("## {title}\n\n{}\n", summary.to_markdown(&mode.key()));
            if selection == cfg.eval.selections[0] {
                tables.push(ResultTable { title, mode: mode.key(), summary: summary.clone() });
            }
        }
    }
    dsrm_files::write_atomic(&out.join("summary.md"), markdown.as_bytes())?;
    Ok(tables)
}

/// What step 2 left: the paper study's outcome, the loop's summary (Markdown) and the report.
pub struct Study {
    pub paper: PaperOutcome,
    pub feedback_loop: String,
    pub report: Reported,
}

/// Step 2: the small paper study, the feedback loop and the report, in `dir`. Both take `cfg`'s `[data]` and
/// `[world]` (the loop also its `[env]`); `train_exe` is the `dsrm` executable that trains the agents.
pub fn study(cfg: &RunConfig, dir: &Path, jobs: Option<usize>, train_exe: &Path, progress: Progress) -> Result<Study> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let with_data = |text: &str, name: &str, env: bool| -> Result<PathBuf> {
        let mut table: toml::Table = toml::from_str(text).with_context(|| format!("the built-in {name}"))?;
        table.insert("data".into(), toml::Value::try_from(&cfg.data)?);
        if env {
            table.insert("env".into(), toml::Value::try_from(&cfg.env)?);
        }
        table.insert("world".into(), toml::Value::try_from(&cfg.world)?);
        let path = dir.join(name);
        dsrm_files::write_atomic(&path, toml::to_string_pretty(&table)?.as_bytes())?;
        Ok(path)
    };
    note(progress, "study 1/3: a small paper study (Max Len 30, 3 seeds, short budget)");
    let request = PaperRequest {
        config: Some(with_data(STUDY_CONFIG, "demo-study.toml", false)?),
        out: dir.join("paper"),
        data: None,
        dataset: None,
        max_len: None,
        seeds: None,
        jobs,
        smoke: false,
        tables_only: false,
        parts: None,
        train_exe: train_exe.to_path_buf(),
    };
    let paper = crate::paper::run(&request, progress)?;
    let part = request.out.join("max-len-30");
    note(progress, "study 2/3: feedback loop");
    let config = with_data(LOOP_CONFIG, "demo-loop.toml", true)?;
    let feedback_loop = crate::feedback_loop::run(&config, &Default::default(), &part, progress)?;
    note(progress, "study 3/3: report");
    let report = crate::report::write(&part, None, dsrm_report::Reference::Origin)?;
    Ok(Study { paper, feedback_loop, report })
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
            if name == "loop.toml" {
                table.insert("env".into(), toml::Value::try_from(&cfg.env).unwrap());
            }
            table.insert("world".into(), toml::Value::try_from(&cfg.world).unwrap());
            let path = dir.path().join(name);
            std::fs::write(&path, toml::to_string_pretty(&table).unwrap()).unwrap();
            if name == "study.toml" {
                let text = std::fs::read_to_string(&path).unwrap();
                let file = crate::paper::PaperFile::parse(&text, "demo").unwrap();
                assert_eq!((file.data, file.max_len, file.seeds.len()), (cfg.data.clone(), vec![30], 3));
            } else {
                let file = crate::feedback_loop::LoopFile::load(&path).unwrap();
                assert_eq!(file.env, cfg.env);
            }
        }
    }
}
