//! `dsrm retune`'s work: decoupled retuning of a finished DSRM-HRL run (`dsrm-hrl.md` §4.4). The low level and the state tracker (with DSRM:
//! the frozen tracker + denoiser) stay as trained; only the high level (and its value head V_H) is retrained
//! against them with the new λ_f, starting from the run's high level. With `--target-ratio` the high level
//! emits the fixed ρ* (goal type (b), mapped exactly onto the low level's distribution): nothing is learned,
//! so one short epoch is collected and the policy is evaluated.
//!
//! The new run directory holds the trainer's files (`log.jsonl`, `timing.jsonl`, `checkpoint.bin`,
//! `metrics.json`, `summary.json`), `config.toml` (the retune's `dsrm train` config), `provenance.json`, and
//! `retune.json`: the new operating point (R_tra, Gini, long-tail share per mode, test users, the epoch
//! selected on validation users) next to the original's, and the retune's wall time next to the original
//! full run's (both summed from `timing.jsonl`).

use crate::loading;
use crate::progress::{begin, note, Event, Progress};
use crate::provenance::{Provenance, RetuneOf};
use crate::train::TrainFile;
use crate::world_model::{reward_model, MfCache};
use anyhow::{bail, Context, Result};
use dsrm_agents::hrl::GoalType;
use dsrm_agents::Algorithm;
use dsrm_eval::MetricInputs;
use dsrm_nn::checkpoint;
use dsrm_nn::tch::Tensor;
use dsrm_train::SplitMetrics;
use dsrm_train::{ProgressEvent, TrainSummary};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The retune's `dsrm train` config: the original one with the high level's new target, frozen low level.
fn retune_config(original: &TrainFile, args: &RetuneRequest, checkpoint: &Path) -> Result<TrainFile> {
    let mut file = original.clone();
    let Algorithm::Hrl(hrl) = &mut file.train.algorithm else {
        bail!("retune needs an HRL run (kind = \"hrl\"); this one trained {}", original.train.algorithm.name());
    };
    hrl.init_from = Some(checkpoint.to_path_buf());
    hrl.freeze_low_level = true;
    match (args.lambda_f, args.target_ratio) {
        (Some(lambda), None) => {
            if !lambda.is_finite() {
                bail!("--lambda-f must be a finite number, got {lambda}");
            }
            if hrl.fixed_ratio.is_some() {
                bail!("the run's high level emits a fixed ρ*; retune it with --target-ratio");
            }
            hrl.lambda_f = lambda;
        }
        (None, Some(rho)) => {
            if !(0.0..=1.0).contains(&rho) {
                bail!("--target-ratio must lie in [0, 1], got {rho}");
            }
            hrl.goal = GoalType::TargetRatio;
            hrl.fixed_ratio = Some(rho);
            // Nothing to learn: one collection, then the evaluation.
            file.train.steps_per_epoch = 1;
        }
        _ => bail!("give exactly one of --lambda-f and --target-ratio"),
    }
    file.train.epochs = args.epochs.unwrap_or(if args.target_ratio.is_some() { 1 } else { original.train.epochs });
    Ok(file)
}

/// Σ wall_s over the epochs of `timing.jsonl`.
fn wall_seconds(dir: &Path) -> Result<f64> {
    let path = dir.join("timing.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut total = 0.0;
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}, line {}", path.display(), n + 1))?;
        total += v["wall_s"].as_f64().with_context(|| format!("{}, line {}: no wall_s", path.display(), n + 1))?;
    }
    Ok(total)
}

/// R_tra, Gini and long-tail share per mode of the headline selection.
fn operating_point(metrics: &SplitMetrics) -> serde_json::Value {
    let Some((selection, modes)) = metrics.iter().find(|(s, _)| *s == "sampled").or(metrics.iter().next()) else {
        return json!({});
    };
    let modes: serde_json::Map<String, serde_json::Value> = modes
        .iter()
        .map(|(mode, m)| {
            (mode.clone(), json!({ "R_tra": m.r_tra, "Gini": m.gini, "LongTailShare": m.long_tail_share }))
        })
        .collect();
    json!({ "selection": selection, "modes": modes })
}

/// What to retune, and how (the flags of `dsrm retune`).
#[derive(Debug, Clone, Default)]
pub struct RetuneRequest {
    /// A finished `dsrm train` run of `kind = "hrl"`.
    pub from: PathBuf,
    /// The new fairness weight λ_f (exactly one of this and `target_ratio`).
    pub lambda_f: Option<f64>,
    /// A fixed target long-tail ratio ρ* ∈ [0, 1] instead of a learned high level.
    pub target_ratio: Option<f64>,
    /// Epochs of high-level training. Default: the original run's (1 with `target_ratio`).
    pub epochs: Option<usize>,
    /// Run directory. Default: RUN-retune-lambda_f-X (or RUN-retune-ratio-ρ) next to RUN.
    pub out: Option<PathBuf>,
    /// Continue an interrupted retune in `out`.
    pub resume: bool,
}

/// A finished retune, next to the run it came from.
pub struct Retuned {
    /// `lambda_f-X` or `ratio-ρ`.
    pub tag: String,
    /// The retune's run directory.
    pub out: PathBuf,
    pub synthetic: bool,
    /// Epochs of the retune.
    pub epochs: usize,
    pub original: TrainSummary,
    pub retuned: TrainSummary,
    /// Σ wall_s of the retune's epochs and of the original run's.
    pub retune_wall_s: f64,
    pub original_wall_s: f64,
    /// The whole retune, loading included.
    pub process_wall_s: f64,
}

/// Retunes the high level of `args.from`, writing the trainer's files, `config.toml`, `retune.json` and
/// `provenance.json` in the new run directory.
pub fn run(args: &RetuneRequest, progress: Progress) -> Result<Retuned> {
    let started = Instant::now();
    let from = &args.from;
    let summary_path = from.join("summary.json");
    let original_summary: TrainSummary = serde_json::from_str(
        &std::fs::read_to_string(&summary_path)
            .with_context(|| format!("{} is not a finished run (no summary.json)", from.display()))?,
    )
    .with_context(|| format!("reading {}", summary_path.display()))?;
    let original = TrainFile::load(&from.join("config.toml"))?;
    let ckpt = std::fs::canonicalize(from.join("checkpoint.bin"))
        .with_context(|| format!("{} has no checkpoint.bin", from.display()))?;
    let file = retune_config(&original, args, &ckpt)?;
    let tag = match (args.lambda_f, args.target_ratio) {
        (Some(l), _) => format!("lambda_f-{l}"),
        (_, Some(r)) => format!("ratio-{r}"),
        _ => unreachable!("checked by retune_config"),
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let name = from.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
        from.with_file_name(format!("{name}-retune-{tag}"))
    });
    if !args.resume && dsrm_train::run_exists(&out) {
        bail!("{} already holds a run; pass --resume to continue it, or choose another --out", out.display());
    }
    let wm = &original.world_model;
    if wm.reward.uses_ensemble() && wm.checkpoint.is_none() && !from.join("world_model.bin").exists() {
        bail!("{} has no world_model.bin; the retune must train on the original run's world model", from.display());
    }

    // Inter-op threads (fixed once per process); the trainer sets the intra-op threads and the seeds itself.
    dsrm_nn::runtime::init(file.train.torch_threads, file.train.seed);
    let world = loading::load_world_from(&file.data, &file.env, &file.world, progress)?;
    let inputs = MetricInputs::new(&world, file.eval.mcd_dominant);
    // The original run's training reward (its saved ensemble, or the deterministic MF refit).
    let (reward, embeddings) = reward_model(wm, &world, from, true, file.train.dsrm.is_some(), MfCache::Use, progress)?;
    let (saved, _) = checkpoint::load(&ckpt).with_context(|| format!("loading {}", ckpt.display()))?;
    let device = dsrm_nn::runtime::device();
    let n_items = world.spec.n_items();
    let tracker_cfg = file.train.tracker.clone();
    // The frozen tracker, built as the original was (with its DSRM stage, `RUN/dsrm.bin`, when it had one),
    // with the original's trained weights.
    let stage = match &file.train.dsrm {
        Some(stage) => Some(
            dsrm_denoise::stage::prepare(stage, &tracker_cfg, &world, embeddings.as_ref(), from, true, &mut |_| {})
                .with_context(|| format!("loading the DSRM stage of {}", from.display()))?,
        ),
        None => None,
    };
    let build_tracker = move || -> dsrm_train::Result<Box<dyn dsrm_state::StateTracker>> {
        let mut tracker: Box<dyn dsrm_state::StateTracker> = match &stage {
            Some(model) => Box::new(model.tracker()?),
            None => dsrm_state::build(&tracker_cfg, n_items, embeddings.as_ref().map(Tensor::shallow_clone), device)?,
        };
        checkpoint::restore("tracker", tracker.var_store_mut(), &saved)?;
        Ok(tracker)
    };

    // A history filter (`[train.history_filter]`) stands in front of the frozen tracker as it did in training.
    let build_tracker: Box<dsrm_train::TrackerBuilder> = match dsrm_train::history_filter(&file.train, &world)? {
        Some(filtered) => Box::new(filtered.wrap(build_tracker)),
        None => Box::new(build_tracker),
    };
    dsrm_files::write_atomic(&out.join("config.toml"), toml::to_string_pretty(&file)?.as_bytes())?;
    let stage_file = from.join(dsrm_denoise::stage::RUN_FILE);
    if stage_file.exists() {
        // The retuned run reads the same purified states; keep its stage beside it (`load_trained`).
        std::fs::copy(&stage_file, out.join(dsrm_denoise::stage::RUN_FILE))
            .with_context(|| format!("copying {}", stage_file.display()))?;
    }
    let label = if world.is_synthetic() { " on SYNTHETIC data" } else { "" };
    note(
        progress,
        format!(
            "retuning the high level of {}{label} ({tag}); low level and tracker frozen; {} epochs x {} steps",
            from.display(),
            file.train.epochs,
            file.train.steps_per_epoch
        ),
    );
    begin(progress, "retune", Some(file.train.epochs as u64));
    let mut on_event = |event: ProgressEvent| {
        if let ProgressEvent::EpochDone { epoch, validation_nx0_r_tra, wall_s, .. } = event {
            progress(Event::Position(epoch as u64));
            note(progress, format!("epoch {epoch}: validation NX_0 R_tra {validation_nx0_r_tra:.3} ({wall_s:.1}s)"));
        }
    };
    let summary = dsrm_train::train_with_tracker(
        &file.train,
        &world,
        &inputs,
        reward.as_ref(),
        &build_tracker,
        &out,
        args.resume,
        &mut on_event,
    )
    .with_context(|| format!("retuning in {}", out.display()));
    progress(Event::End);
    let summary = summary?;

    let (original_wall, retune_wall) = (wall_seconds(from)?, wall_seconds(&out)?);
    let report = json!({
        "from": from,
        "lambda_f": args.lambda_f,
        "target_ratio": args.target_ratio,
        "epochs": file.train.epochs,
        "selected_epoch": summary.selected_epoch,
        "operating_point": operating_point(&summary.selected),
        "original_operating_point": operating_point(&original_summary.selected),
        "wall_s": {
            "retune_epochs": retune_wall,
            "retune_process": started.elapsed().as_secs_f64(),
            "original_full_run_epochs": original_wall,
        },
        "synthetic": world.is_synthetic(),
    });
    dsrm_files::write_json(&out.join("retune.json"), &report)?;
    let original_provenance: serde_json::Value = std::fs::read_to_string(from.join("provenance.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    Provenance {
        synthetic: Some(world.is_synthetic()),
        retune_of: Some(RetuneOf { run: from.clone(), checkpoint: ckpt, provenance: original_provenance }),
        training_reward: Some(reward.describe()),
        data: Some(&world.provenance),
        ..Provenance::new()
    }
    .with_config(&file)?
    .write(&out.join("provenance.json"))?;
    Ok(Retuned {
        tag,
        out: out.clone(),
        synthetic: world.is_synthetic(),
        epochs: file.train.epochs,
        original: original_summary,
        retuned: summary,
        retune_wall_s: retune_wall,
        original_wall_s: original_wall,
        process_wall_s: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::ExperimentFile;
    use crate::progress::quiet;

    /// Every method of the ablation configs is a valid `[train]` section; the smoke config's HRL, FCPO and
    /// shaping methods train on tiny data, and the HRL run retunes.
    #[test]
    fn ablation_configs_parse_and_the_smoke_methods_train_and_retune() {
        let _torch = dsrm_nn::runtime::exclusive();
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let full = ExperimentFile::load(&configs.join("experiments/ablation.toml")).unwrap();
        let names: Vec<&str> = full.methods.iter().map(|m| m.name.as_str()).collect();
        for want in ["dsrm-hrl", "flat-ppo", "reward-shaping", "fcpo", "a2c", "random", "most-popular"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let coat = ExperimentFile::load(&configs.join("experiments/ablation-coat.toml")).unwrap();
        let coat_names: Vec<&str> = coat.methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(coat_names, names, "the Coat ablation runs the same methods");
        assert_eq!((coat.data.dataset, &coat.seeds), (dsrm_data::Dataset::Coat, &full.seeds));
        let smoke = ExperimentFile::load(&configs.join("experiments/ablation-smoke.toml")).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("tiny");
        let synth = dsrm_data::synth::SynthConfig::for_size(dsrm_data::synth::SynthSize::Tiny);
        dsrm_data::synth::generate(&synth, 0, &data, &mut |_, _, _| {}).unwrap();
        let mut hrl_run = None;
        for m in smoke.methods.iter().filter(|m| m.train.is_some()) {
            let mut cfg = m.train.clone().unwrap();
            cfg.eval = smoke.eval.clone();
            let file = TrainFile {
                data: crate::config::DataConfig { dir: Some(data.clone()), ..smoke.data.clone() },
                env: smoke.env.clone(),
                world: smoke.world.clone(),
                eval: smoke.eval.clone(),
                world_model: smoke.world_model.clone(),
                train: cfg,
            };
            let config = dir.path().join(format!("{}.toml", m.name));
            std::fs::write(&config, toml::to_string_pretty(&file).unwrap()).unwrap();
            let out = dir.path().join(&m.name);
            let loaded = TrainFile::load(&config).unwrap();
            crate::train::run(&loaded, &out, false, &crate::progress::quiet)
                .unwrap_or_else(|e| panic!("{}: {e:#}", m.name));
            assert!(out.join("metrics.json").exists(), "{}", m.name);
            if matches!(file.train.algorithm, Algorithm::Hrl(_)) && hrl_run.is_none() {
                hrl_run = Some(out);
            }
        }
        let from = hrl_run.expect("the smoke config trains an HRL agent");
        let retune = |lambda_f, target_ratio, out: &str| RetuneRequest {
            from: from.clone(),
            lambda_f,
            target_ratio,
            epochs: Some(1),
            out: Some(dir.path().join(out)),
            resume: false,
        };
        run(&retune(Some(2.0), None, "lf2"), &quiet).unwrap();
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("lf2/retune.json")).unwrap()).unwrap();
        assert!(report["wall_s"]["original_full_run_epochs"].as_f64().unwrap() > 0.0);
        assert!(report["operating_point"]["modes"]["NX_0"]["Gini"].as_f64().is_some());
        let cfg = TrainFile::load(&dir.path().join("lf2/config.toml")).unwrap();
        let Algorithm::Hrl(h) = cfg.train.algorithm else { panic!("not hrl") };
        assert!(h.freeze_low_level && h.lambda_f == 2.0 && h.init_from.is_some());
        // A fixed ratio: evaluation after one short epoch. Its NX_0 long-tail share follows ρ*.
        run(&retune(None, Some(0.9), "rho"), &quiet).unwrap();
        let s: TrainSummary =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("rho/summary.json")).unwrap()).unwrap();
        let lt = s.selected["sampled"]["NX_0"].long_tail_share;
        assert!(lt > 0.75, "ρ* = 0.9 but the NX_0 long-tail share is {lt}");
        assert!(run(&retune(Some(1.0), None, "lf2"), &quiet).is_err(), "refuses to overwrite");
    }
}
