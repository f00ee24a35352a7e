//! One (method, seed) job of an experiment: a heuristic evaluated in-process on the seed's test users, or an RL
//! agent trained as a resumable `dsrm train` run in `RUN/<method>/seed-<s>/` (read back when it finished under
//! exactly its config); and where a shared user-model ensemble lives.

use super::{ExperimentFile, JobMetrics, MethodConfig};
use crate::eval::{build_heuristic, selection_name};
use crate::train::TrainFile;
use crate::world_model::{RewardKind, WorldModelConfig};
use anyhow::{bail, Context, Result};
use dsrm_eval::{evaluate, EvalRun, MetricInputs};
use dsrm_metrics::MetricSet;
use dsrm_policy::heuristics::HeuristicKind;
use dsrm_sim::World;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A heuristic evaluated on the seed's test users, every mode and selection.
pub fn heuristic_job(
    world: &World,
    inputs: &MetricInputs,
    kind: HeuristicKind,
    file: &ExperimentFile,
    seed: u64,
) -> Result<JobMetrics> {
    let (_, test_users) = dsrm_train::split_users(world.spec.n_users(), file.validation_fraction, seed)?;
    let built = build_heuristic(world, kind, &file.heuristics, seed)?;
    let mut metrics = JobMetrics::new();
    for &selection in &file.eval.selections {
        let mut policy = built.clone();
        for mode in file.eval.modes() {
            let run = EvalRun { mode, selection, seed, users: Some(&test_users) };
            let r = evaluate(&world.spec, inputs, policy.as_mut(), &file.eval, run);
            metrics.entry(selection_name(selection).to_string()).or_default().insert(mode.key(), r.metrics);
        }
    }
    Ok(metrics)
}

/// Where the ensemble of `wm` is trained and kept: the run directory for the experiment's own world model
/// (`RUN/world_model.bin`, as before per-method world models existed), else `RUN/world-models/<kind>-<hash>/`,
/// keyed by what the ensemble depends on (its settings, IPS weighting and seed), not by the penalty.
pub fn ensemble_dir(out: &Path, wm: &WorldModelConfig, experiment: &WorldModelConfig) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let key = |w: &WorldModelConfig| -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(&(&w.ensemble, w.reward == RewardKind::Ips, w.seed))?)
    };
    if experiment.reward.uses_ensemble() && experiment.checkpoint.is_none() && key(wm)? == key(experiment)? {
        return Ok(out.to_path_buf());
    }
    let hash: String = Sha256::digest(key(wm)?).iter().take(4).map(|b| format!("{b:02x}")).collect();
    let kind = if wm.reward == RewardKind::Ips { "ips" } else { "deepfm" };
    Ok(out.join("world-models").join(format!("{kind}-{hash}")))
}

/// One (method, seed)'s run directory and the `dsrm train` config it runs under.
pub fn training_job(
    file: &ExperimentFile,
    world_model: &WorldModelConfig,
    method: &MethodConfig,
    seed: u64,
    out: &Path,
) -> (PathBuf, TrainFile) {
    let dir = out.join(&method.name).join(format!("seed-{seed}"));
    let mut train = method.train.clone().expect("an RL method");
    train.seed = seed;
    file.stage_seeds.apply(&mut train, seed);
    train.validation_fraction = file.validation_fraction;
    train.eval = file.eval.clone();
    let job = TrainFile {
        data: file.data.clone(),
        env: file.env.clone(),
        world: file.world.clone(),
        eval: file.eval.clone(),
        world_model: world_model.clone(),
        train,
    };
    (dir, job)
}

/// Whether `dir` holds a run that finished under exactly `job` and this code: its saved config is `job`, its
/// summary reports all of `job`'s epochs, and its `code_version` is this build's. (A changed config, other code,
/// or a run killed before its end, is not finished.)
pub fn finished_run(dir: &Path, job: &TrainFile) -> bool {
    let same_config = TrainFile::load(&dir.join("config.toml")).is_ok_and(|saved| saved == *job);
    let all_epochs = std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|summary| summary["epochs"].as_u64())
        .is_some_and(|epochs| epochs == job.train.epochs as u64);
    same_config && all_epochs && dir.join("metrics.json").exists() && dsrm_train::made_by_other_code(dir).is_none()
}

/// Whether `dir` holds a finished run, judged by its own saved config (every epoch in `summary.json`, metrics
/// written), whatever config an experiment would now give it: what a partial table may read.
pub fn completed(dir: &Path) -> bool {
    let Ok(saved) = TrainFile::load(&dir.join("config.toml")) else { return false };
    let all_epochs = std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|summary| summary["epochs"].as_u64())
        .is_some_and(|epochs| epochs == saved.train.epochs as u64);
    all_epochs && dir.join("metrics.json").exists()
}

/// Whether `dir` holds a run whose saved config differs from `job` in more than the budget (`epochs`,
/// `checkpoint_every`, which a resume may change): `dsrm train --resume` would refuse it, so the experiment
/// names every such folder before it starts any training.
pub fn made_differently(dir: &Path, job: &TrainFile) -> bool {
    let Ok(mut saved) = TrainFile::load(&dir.join("config.toml")) else { return false };
    saved.train.epochs = job.train.epochs;
    saved.train.checkpoint_every = job.train.checkpoint_every;
    saved != *job
}

/// Why `dir`'s run can be neither read nor resumed for `job`: made with another configuration, or by other
/// code (`dsrm_train::made_by_other_code`); `None` when it can.
pub fn stale_reason(dir: &Path, job: &TrainFile) -> Option<String> {
    if made_differently(dir, job) {
        return Some("a different configuration (a method's settings or a default changed since it ran)".into());
    }
    dsrm_train::made_by_other_code(dir).map(|why| format!("other code ({why})"))
}

/// Starts `EXE train --resume` (`exe`: the `dsrm` executable) for one (method, seed) in `dir`, logging to
/// `train.log` there.
pub fn spawn_training(exe: &Path, dir: &Path, job: &TrainFile) -> Result<std::process::Child> {
    let config = write_job(dir, job)?;
    let log = std::fs::File::create(dir.join("train.log"))?;
    Command::new(exe)
        .args(["train", "--resume", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting dsrm train")
}

/// Writes `dir/job.toml`, the config a `dsrm train --resume` of this run reads; returns its path.
fn write_job(dir: &Path, job: &TrainFile) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let config = dir.join("job.toml");
    dsrm_files::write_atomic(&config, toml::to_string_pretty(job)?.as_bytes())?;
    Ok(config)
}

/// Runs every job in `dirs` as one Ray task each (`python -m dsrm_hrl.ray_executor`), which executes the same
/// `dsrm train --resume` a local child would: writes each `job.toml` and `out/ray-jobs.json`, follows the
/// executor's output as progress, and fails naming the runs that failed.
pub fn run_on_ray(
    out: &Path,
    dirs: &[(&Path, &TrainFile)],
    exe: &Path,
    address: Option<&str>,
    python: &Path,
    progress: crate::progress::Progress,
) -> Result<()> {
    use std::io::BufRead;
    let absolute = |p: &Path| std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()));
    let mut jobs = Vec::new();
    for (dir, job) in dirs {
        let config = write_job(dir, job)?;
        jobs.push(serde_json::json!({"dir": absolute(dir)?, "config": absolute(&config)?}));
    }
    let manifest = out.join("ray-jobs.json");
    dsrm_files::write_json(&manifest, &jobs)?;
    let mut cmd = Command::new(python);
    cmd.args(["-m", "dsrm_hrl.ray_executor", "--jobs"]).arg(absolute(&manifest)?).arg("--exe").arg(absolute(exe)?);
    if let Some(a) = address {
        cmd.args(["--address", a]);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} -m dsrm_hrl.ray_executor (--python)", python.display()))?;
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line?;
            if line.starts_with("ray: ") {
                progress(crate::progress::Event::Advance(1));
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("the Ray executor failed ({status}); its message is above, each run's log is its train.log");
    }
    Ok(())
}

/// The selected epoch's test metrics of a finished training run (`metrics.json`, `metrics_<sel>.json`).
pub fn read_train_metrics(dir: &Path) -> Result<JobMetrics> {
    let mut out = JobMetrics::new();
    for (file, sel) in [("metrics.json", "sampled"), ("metrics_argmax.json", "argmax")] {
        let path = dir.join(file);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let modes: BTreeMap<String, MetricSet> =
                serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
            out.insert(sel.to_string(), modes);
        }
    }
    if out.is_empty() {
        bail!("{} has no metrics.json", dir.display());
    }
    Ok(out)
}
