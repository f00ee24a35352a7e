//! The compute each row had, measured: environment steps, gradient updates, training episodes and seconds from
//! every run's `timing.jsonl` (one line per epoch; a resumed run's lines are read by epoch, the last line of an
//! epoch winning), the DSRM stage's pretraining apart (`dsrm_timing.json`), and what a history filter dropped
//! from the states (`history_filter_usage.jsonl`, read the same way).

use super::Part;
use anyhow::{Context, Result};
use dsrm_eval::summary::Summary;
use std::collections::BTreeMap;
use std::path::Path;

/// One run's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunCompute {
    /// Environment steps (0 for an offline learner, which takes none).
    pub env_steps: f64,
    /// Logged transitions an offline learner consumed (0 online).
    pub logged_transitions: f64,
    pub grad_updates: f64,
    pub train_episodes: f64,
    /// Seconds collecting and updating (evaluation excluded).
    pub train_s: f64,
    /// Seconds of the run's epochs, evaluation included (`wall_s` of `timing.jsonl`; the DSRM stage's
    /// pretraining and the run's set-up are not in it).
    pub wall_s: f64,
    /// CPU seconds of the run's processes (every epoch's `cpu_s`: set-up and DSRM pretraining included, load
    /// not); 0 when `cpu_timed` is false.
    pub cpu_s: f64,
    /// Whether every epoch recorded its CPU seconds (runs made before `cpu_s` existed did not).
    pub cpu_timed: bool,
    /// Seconds of the DSRM stage's pretraining (0 without a stage, or when the stage was given as a
    /// checkpoint), wherever it was trained: a stage reused from the cache (`crate::stage_cache`) counts the
    /// seconds of the run that trained it.
    pub dsrm_s: f64,
    /// Of them, the seconds this run spent (0 for a stage reused from the cache): what the study's job-hours
    /// add up.
    pub dsrm_spent_s: f64,
    /// Gradient updates of the DSRM stage's pretraining (minibatches), counted apart.
    pub dsrm_updates: f64,
    /// History interactions a history filter read while states were built, and of them dropped (0 and 0
    /// without a filter, or for a run that predates the count).
    pub filter_read: f64,
    pub filter_dropped: f64,
}

/// A row's compute: the mean over its seeds' runs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RowCompute {
    pub mean: RunCompute,
    /// Runs read.
    pub runs: usize,
    /// Runs that recorded their CPU seconds (`mean.cpu_s` is their mean).
    pub cpu_runs: usize,
}

/// (part folder, method) -> compute, for every learned row of every part.
pub type Compute = BTreeMap<(String, String), RowCompute>;

/// Reads the compute of every learned row's finished runs (a run counts once it wrote `summary.json`, as the
/// rows' metrics do, so a partial study's accounting is over the same seeds as its scores; a row without
/// `timing.jsonl` files is a heuristic and left out).
pub fn collect(parts: &[(Part, Summary)]) -> Result<Compute> {
    let mut out = Compute::new();
    for (part, summary) in parts {
        let part_name = part.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for method in summary.rows.keys() {
            let mut runs = Vec::new();
            let Ok(entries) = std::fs::read_dir(part.dir.join(method)) else { continue };
            let mut dirs: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            dirs.sort();
            for dir in dirs.iter().filter(|d| d.join("timing.jsonl").is_file() && d.join("summary.json").is_file()) {
                runs.push(read_run(dir)?);
            }
            if runs.is_empty() {
                continue;
            }
            let n = runs.len() as f64;
            let sum = |f: fn(&RunCompute) -> f64| runs.iter().map(f).sum::<f64>() / n;
            let mean = RunCompute {
                env_steps: sum(|r| r.env_steps),
                logged_transitions: sum(|r| r.logged_transitions),
                grad_updates: sum(|r| r.grad_updates),
                train_episodes: sum(|r| r.train_episodes),
                train_s: sum(|r| r.train_s),
                wall_s: sum(|r| r.wall_s),
                dsrm_s: sum(|r| r.dsrm_s),
                dsrm_spent_s: sum(|r| r.dsrm_spent_s),
                dsrm_updates: sum(|r| r.dsrm_updates),
                filter_read: sum(|r| r.filter_read),
                filter_dropped: sum(|r| r.filter_dropped),
                cpu_s: 0.0,
                cpu_timed: false,
            };
            let timed: Vec<f64> = runs.iter().filter(|r| r.cpu_timed).map(|r| r.cpu_s).collect();
            let mean = RunCompute {
                cpu_s: timed.iter().sum::<f64>() / timed.len().max(1) as f64,
                cpu_timed: timed.len() == runs.len(),
                ..mean
            };
            out.insert(
                (part_name.clone(), method.clone()),
                RowCompute { mean, runs: runs.len(), cpu_runs: timed.len() },
            );
        }
    }
    Ok(out)
}

/// One run directory's totals.
pub fn read_run(dir: &Path) -> Result<RunCompute> {
    let path = dir.join("timing.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let by_epoch = lines_by_epoch(&path, &text)?;
    let total = |key: &str| by_epoch.values().map(|v| v[key].as_f64().unwrap_or(0.0)).sum::<f64>();
    let mut run = RunCompute {
        env_steps: total("env_steps"),
        grad_updates: total("grad_updates"),
        train_episodes: total("train_episodes"),
        train_s: total("train_s"),
        wall_s: total("wall_s"),
        cpu_s: total("cpu_s"),
        cpu_timed: by_epoch.values().all(|v| v["cpu_s"].is_number()),
        ..RunCompute::default()
    };
    if !run.cpu_timed {
        run.cpu_s = 0.0;
    }
    let usage = dir.join(dsrm_train::HISTORY_FILTER_USAGE_FILE);
    if let Ok(text) = std::fs::read_to_string(&usage) {
        let by_epoch = lines_by_epoch(&usage, &text)?;
        let total = |key: &str| by_epoch.values().map(|v| v[key].as_f64().unwrap_or(0.0)).sum::<f64>();
        (run.filter_read, run.filter_dropped) = (total("interactions"), total("dropped"));
    }
    // An offline learner's "steps" are the logged transitions it consumed (`summary.json` says it learns from
    // the log); it takes no environment step.
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap_or_default();
    let offline = serde_json::from_str::<serde_json::Value>(&summary)
        .ok()
        .and_then(|v| v["training_reward"].as_str().map(|t| t.starts_with("offline")))
        .unwrap_or(false);
    if offline {
        (run.env_steps, run.logged_transitions) = (0.0, run.env_steps);
    }
    let stage = dir.join(dsrm_train::DSRM_TIMING_FILE);
    if let Ok(text) = std::fs::read_to_string(&stage) {
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("reading {}", stage.display()))?;
        run.dsrm_s = v["seconds"].as_f64().unwrap_or(0.0);
        run.dsrm_spent_s = if v.get("reused_from").is_some() { 0.0 } else { run.dsrm_s };
        run.dsrm_updates = v["grad_updates"].as_f64().unwrap_or(0.0);
    }
    Ok(run)
}

/// A JSONL file's lines by their `epoch` (the last line of an epoch wins); errors name the file and line.
fn lines_by_epoch(path: &Path, text: &str) -> Result<BTreeMap<u64, serde_json::Value>> {
    let mut by_epoch = BTreeMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}, line {}", path.display(), i + 1))?;
        let epoch = v["epoch"].as_u64().with_context(|| format!("{}, line {}: no epoch", path.display(), i + 1))?;
        by_epoch.insert(epoch, v);
    }
    Ok(by_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_runs_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let line = |steps: u64| format!("{{\"epoch\":1,\"env_steps\":{steps},\"grad_updates\":4}}\n");
        for (seed, steps, finished) in [(1, 100, true), (2, 300, true), (3, 7, false)] {
            let run = dir.path().join("ppo").join(format!("seed-{seed}"));
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join("timing.jsonl"), line(steps)).unwrap();
            if finished {
                std::fs::write(run.join("summary.json"), "{}").unwrap();
            }
        }
        let mut summary = Summary::default();
        summary.rows.insert("ppo".into(), Default::default());
        let part = Part { dir: dir.path().to_path_buf(), max_len: 30, threshold: None };
        let compute = collect(&[(part, summary)]).unwrap();
        let row = &compute[&(dir.path().file_name().unwrap().to_string_lossy().into_owned(), "ppo".to_string())];
        assert_eq!((row.runs, row.mean.env_steps), (2, 200.0), "the unfinished seed 3 is left out");
        assert_eq!((row.cpu_runs, row.mean.cpu_timed), (0, false));
    }

    #[test]
    fn cpu_seconds_are_summed_by_epoch_and_a_row_says_how_many_runs_had_them() {
        let dir = tempfile::tempdir().unwrap();
        let line = |epoch: u64, cpu: Option<f64>| match cpu {
            Some(c) => format!("{{\"epoch\":{epoch},\"env_steps\":10,\"cpu_s\":{c}}}\n"),
            None => format!("{{\"epoch\":{epoch},\"env_steps\":10}}\n"),
        };
        // Seed 1: 20 s + a cut epoch 2 (5 s) rerun (30 s); seed 2: 40 s; seed 3: made before cpu_s existed.
        let runs = [
            (1, vec![line(1, Some(20.0)), line(2, Some(5.0)), line(2, Some(30.0))]),
            (2, vec![line(1, Some(15.0)), line(2, Some(25.0))]),
            (3, vec![line(1, None), line(2, None)]),
        ];
        for (seed, lines) in runs {
            let run = dir.path().join("ppo").join(format!("seed-{seed}"));
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join("timing.jsonl"), lines.concat()).unwrap();
            std::fs::write(run.join("summary.json"), "{}").unwrap();
        }
        let one = read_run(&dir.path().join("ppo/seed-1")).unwrap();
        assert_eq!((one.cpu_s, one.cpu_timed), (50.0, true), "epoch 2's last line wins");
        let mut summary = Summary::default();
        summary.rows.insert("ppo".into(), Default::default());
        let part = Part { dir: dir.path().to_path_buf(), max_len: 30, threshold: None };
        let compute = collect(&[(part, summary)]).unwrap();
        let row = compute.values().next().unwrap();
        assert_eq!((row.runs, row.cpu_runs), (3, 2));
        assert_eq!((row.mean.cpu_s, row.mean.cpu_timed), (45.0, false), "the mean over the two timed runs");
    }

    #[test]
    fn a_resumed_runs_epochs_are_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let line = |epoch: u64, steps: u64| {
            format!(
                "{{\"epoch\":{epoch},\"env_steps\":{steps},\"grad_updates\":4,\"train_episodes\":10,\"train_s\":0.5,\"wall_s\":0.75}}\n"
            )
        };
        // Epoch 2 was cut and rerun after a resume: its second line wins.
        let text = [line(1, 100), line(2, 90), line(2, 110)].concat();
        std::fs::write(dir.path().join("timing.jsonl"), text).unwrap();
        std::fs::write(dir.path().join(dsrm_train::DSRM_TIMING_FILE), "{\"seconds\": 3.5, \"grad_updates\": 20}")
            .unwrap();
        let r = read_run(dir.path()).unwrap();
        assert_eq!((r.env_steps, r.grad_updates, r.train_episodes, r.train_s), (210.0, 8.0, 20.0, 1.0));
        assert_eq!(r.wall_s, 1.5, "evaluation included, epoch 2 once");
        // An offline learner's steps are logged transitions, not environment steps.
        std::fs::write(dir.path().join("summary.json"), "{\"training_reward\": \"offline: 12 logged transitions\"}")
            .unwrap();
        let r = read_run(dir.path()).unwrap();
        assert_eq!((r.env_steps, r.logged_transitions), (0.0, 210.0));
        std::fs::remove_file(dir.path().join("summary.json")).unwrap();
        assert_eq!((r.dsrm_s, r.dsrm_spent_s, r.dsrm_updates), (3.5, 3.5, 20.0));
        // A stage reused from the cache: the stage's seconds and updates, none of them spent by this run.
        let reused = "{\"seconds\": 3.5, \"grad_updates\": 20, \"reused_from\": \".cache/dsrm/dsrm-stages/x.bin\"}";
        std::fs::write(dir.path().join(dsrm_train::DSRM_TIMING_FILE), reused).unwrap();
        let r = read_run(dir.path()).unwrap();
        assert_eq!((r.dsrm_s, r.dsrm_spent_s, r.dsrm_updates), (3.5, 0.0, 20.0));
        // A history filter's usage, by epoch as well.
        assert_eq!((r.filter_read, r.filter_dropped), (0.0, 0.0));
        let usage =
            "{\"epoch\":1,\"interactions\":50,\"dropped\":5}\n{\"epoch\":1,\"interactions\":40,\"dropped\":4}\n\
                     {\"epoch\":2,\"interactions\":60,\"dropped\":0}\n";
        std::fs::write(dir.path().join(dsrm_train::HISTORY_FILTER_USAGE_FILE), usage).unwrap();
        let r = read_run(dir.path()).unwrap();
        assert_eq!((r.filter_read, r.filter_dropped), (100.0, 4.0));
        assert!(!r.cpu_timed, "lines without cpu_s: no CPU time");
        std::fs::write(dir.path().join("timing.jsonl"), "{\"epoch\": 1}\nnot json\n").unwrap();
        assert!(format!("{:#}", read_run(dir.path()).unwrap_err()).contains("line 2"));
    }
}
