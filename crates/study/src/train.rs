//! `dsrm train`'s run file and run: train an agent (a2c, ppo, hrl, fcpo, dqn, sac, sac4ir, td3, dnair, mofir, bcq,
//! cql, crr or sqn) in the simulated environment (world-model reward, the real quit rule), evaluating on the ground
//! truth after every epoch.
//!
//! ```toml
//! [data]                       # as for eval/demo; default: the cached synthetic KuaiRec
//! [env]                        # preset = "dorl-paper"
//! [world]                      # how the environment is built
//! [eval]                       # episodes per mode, force_length, selections (first = headline)
//!
//! [world_model]
//! reward = "mbpo"              # mbpo | mopo | dorl | ips (DeepFM ensemble + penalties / weights) | mf | ground-truth
//!
//! [train]
//! epochs = 10
//! steps_per_epoch = 20000
//! seed = 0
//! [train.algorithm]
//! kind = "a2c"                 # a2c | ppo | hrl | fcpo | dqn | sac | sac4ir | td3 | dnair | mofir | bcq | cql | crr | sqn; the other keys are that algorithm's hyper-parameters
//! [train.tracker]
//! kind = "avg"                 # avg | gru | sasrec
//! ```
//!
//! The run directory holds `log.jsonl` (one line per epoch), `timing.jsonl`, `checkpoint.bin`,
//! `world_model.bin` (the trained ensemble, reused on resume), `metrics.json` (test metrics of the epoch
//! selected on validation users), `summary.json`, `config.toml` and `provenance.json`; a MoFIR run also
//! `front.json` (the selected epoch's test metrics at each preference ω of `eval_omegas`).

use crate::config::DataConfig;
use crate::loading;
use crate::progress::{begin, note, Event, Progress};
use crate::provenance::{data_label, MetricsSummary, Provenance, WorldSummary};
use crate::stage_cache;
use crate::world_model::{reward_model, MfCache, WorldModelConfig};
use anyhow::{bail, Context, Result};
use dsrm_eval::{EvalConfig, MetricInputs};
use dsrm_sim::world::WorldConfig;
use dsrm_sim::{EnvConfig, RewardModel, World};
use dsrm_train::{ProgressEvent, TrainConfig, TrainSummary};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A `dsrm train` config file. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainFile {
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub env: EnvConfig,
    #[serde(default)]
    pub world: WorldConfig,
    /// Evaluation after every epoch (the `[eval]` table, as for `dsrm eval`).
    #[serde(default)]
    pub eval: EvalConfig,
    #[serde(default)]
    pub world_model: WorldModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
}

impl TrainFile {
    /// Reads and checks a config; errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config {}", path.display()))
    }

    /// Parses TOML text. `[eval]` is the one place for evaluation settings: the trainer's copy
    /// (`[train.eval]`, written back in a run's `config.toml`) may only repeat it.
    pub fn parse(text: &str) -> Result<Self> {
        let mut file: TrainFile = toml::from_str(text)?;
        if file.train.eval != EvalConfig::default() && file.train.eval != file.eval {
            bail!("evaluation settings belong in [eval], not [train.eval]");
        }
        file.train.eval = file.eval.clone();
        Ok(file)
    }
}

/// A finished `dsrm train` run: the trainer's summary and the world it trained in (for labels).
pub struct Trained {
    pub summary: TrainSummary,
    pub world: World,
}

/// The default run directory: `runs/train-<algorithm>-seed<seed>`.
pub fn default_out(file: &TrainFile) -> PathBuf {
    PathBuf::from(format!("runs/train-{}-seed{}", file.train.algorithm.name(), file.train.seed))
}

/// Trains `file`'s agent in `out` (continuing it with `resume`), writing `config.toml` and `provenance.json`
/// next to the trainer's files. Refuses, before loading anything, to overwrite another run or to resume one
/// made under other data, environment, evaluation or world-model settings.
pub fn run(file: &TrainFile, out: &Path, resume: bool, progress: Progress) -> Result<Trained> {
    let cfg = &file.train;
    // Refuse before the expensive part (loading data, training a world model), and never overwrite the
    // files of another run.
    let saved_config = out.join("config.toml");
    if !resume && dsrm_train::run_exists(out) {
        bail!("{} already holds a training run; pass --resume to continue it, or choose another --out", out.display());
    }
    if resume && saved_config.exists() {
        let previous = TrainFile::load(&saved_config)?;
        let sections = [
            ("data", previous.data == file.data),
            ("env", previous.env == file.env),
            ("world", previous.world == file.world),
            ("eval", previous.eval == file.eval),
            ("world_model", previous.world_model == file.world_model),
        ];
        if let Some((name, _)) = sections.iter().find(|(_, same)| !same) {
            bail!("[{name}] differs from the run's {}; resume with the original config", saved_config.display());
        }
    }
    // Inter-op threads (fixed once per process); the trainer sets intra-op threads and seeds itself.
    dsrm_nn::runtime::init(cfg.torch_threads, cfg.seed);
    let world = loading::load_world_from(&file.data, &file.env, &file.world, progress)?;
    let inputs = MetricInputs::new(&world, file.eval.mcd_dominant);
    let (reward, embeddings) =
        reward_model(&file.world_model, &world, out, resume, cfg.dsrm.is_some(), MfCache::Use, progress)?;
    let provenance = provenance(file, &world, &inputs, reward.as_ref())?.to_value()?;
    let write_config = || -> Result<()> {
        dsrm_files::write_atomic(&saved_config, toml::to_string_pretty(file)?.as_bytes())?;
        dsrm_files::write_atomic(&out.join(crate::eval::ITEM_GROUPS), world.item_groups_csv().as_bytes())?;
        Ok(dsrm_files::write_json(&out.join("provenance.json"), &provenance)?)
    };
    if !saved_config.exists() {
        write_config()?;
    }

    let label = if world.is_synthetic() { " on SYNTHETIC data" } else { "" };
    note(
        progress,
        format!(
            "training {} + {} tracker{label}; reward: {}; {}",
            cfg.algorithm.name(),
            cfg.tracker.name(),
            reward.describe(),
            match cfg.episodes {
                Some(episodes) => format!("{episodes} training episodes over {} epochs", cfg.epochs),
                None => format!("{} epochs x {} steps", cfg.epochs, cfg.steps_per_epoch),
            }
        ),
    );
    // The bar counts the budget's unit (steps, or episodes with an `episodes` budget); `before(e)` is what the
    // epochs before e train.
    let before = |epoch: usize| (1..epoch).map(|e| cfg.epoch_budget(e).size()).sum::<u64>();
    begin(progress, "training", Some(before(cfg.epochs + 1)));
    let on_event = |event: ProgressEvent| match event {
        ProgressEvent::Started { first_epoch, .. } => {
            progress(Event::Position(before(first_epoch)));
            if first_epoch > 1 {
                note(progress, format!("resumed after epoch {}", first_epoch - 1));
            }
        }
        ProgressEvent::Collected { epoch, steps, episodes, budget, update, train_return } => {
            progress(Event::Position(before(epoch) + budget.used(steps, episodes).min(budget.size())));
            let played = train_return.map_or("offline".to_string(), |r| format!("return {r:.2}"));
            progress(Event::Message(format!("epoch {epoch} {played} loss {:.3}", update.loss)));
        }
        ProgressEvent::Evaluating { epoch } => progress(Event::Message(format!("epoch {epoch} evaluating"))),
        ProgressEvent::Dsrm(event) => progress(Event::Message(crate::stage::describe(&event))),
        ProgressEvent::EpochDone { epoch, validation_nx0_r_tra, test_nx0_r_tra, wall_s, .. } => {
            progress(Event::Position(before(epoch + 1)));
            note(
                progress,
                format!(
                    "epoch {epoch}: NX_0 R_tra validation {validation_nx0_r_tra:.3}, test {test_nx0_r_tra:.3} ({wall_s:.1}s)"
                ),
            );
        }
    };
    // The DSRM stage: loaded from the cache when a run on the same inputs trained it (the run then resumes from
    // it, so it loads rather than trains it), kept there once this run has trained it. A run that has its stage
    // already (resumed) neither reuses nor trains one, so it skips the key (a pass over the logs and the truth).
    let has_stage = resume && out.join(dsrm_denoise::stage::RUN_FILE).exists();
    let cached = if has_stage { None } else { stage_cache::cached_stage(cfg, &world, embeddings.as_ref())? };
    let reused = match &cached {
        Some(path) => stage_cache::reuse(path, out)?,
        None => false,
    };
    if let (true, Some(path)) = (reused, &cached) {
        note(progress, format!("reusing the DSRM stage trained on the same inputs by this code: {}", path.display()));
    }
    let mut trained_stage = false;
    let mut kept: Option<anyhow::Error> = None;
    let mut on_event = |event: ProgressEvent| {
        match &event {
            ProgressEvent::Dsrm(_) => trained_stage = true,
            ProgressEvent::Started { .. } if trained_stage => {
                if let Some(path) = &cached {
                    if let Err(e) = stage_cache::keep(path, out) {
                        kept.get_or_insert(e);
                    }
                }
            }
            _ => {}
        }
        on_event(event)
    };
    let summary =
        dsrm_train::train(cfg, &world, &inputs, reward.as_ref(), embeddings, out, resume || reused, &mut on_event)
            .with_context(|| format!("training in {}", out.display()));
    progress(Event::End);
    let summary = summary?;
    if let Some(e) = kept {
        note(progress, format!("the trained DSRM stage was not cached (later runs train it again): {e:#}"));
    }
    write_config()?; // a resumed run may have raised `epochs`
    drop(reward);
    Ok(Trained { summary, world })
}

/// What produced the run: config, versions, data and how the world and its reward were built.
fn provenance<'a>(
    file: &TrainFile,
    world: &'a World,
    inputs: &'a MetricInputs,
    reward: &dyn RewardModel,
) -> Result<Provenance<'a>> {
    Provenance {
        synthetic: Some(world.is_synthetic()),
        label: Some(data_label(world)),
        training_reward: Some(reward.describe()),
        env_settings: Some(&world.settings),
        world: Some(WorldSummary::built(world)),
        metrics: Some(MetricsSummary::dominant(inputs)),
        data: Some(&world.provenance),
        ..Provenance::new()
    }
    .with_config(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trains_resumes_and_refuses_to_overwrite() {
        let _torch = dsrm_nn::runtime::exclusive();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("tiny");
        let cfg = dsrm_data::synth::SynthConfig::for_size(dsrm_data::synth::SynthSize::Tiny);
        dsrm_data::synth::generate(&cfg, 0, &data, &mut |_, _, _| {}).unwrap();
        let write = |epochs: usize| {
            let text = format!(
                "[data]\ndataset = \"kuairec\"\ndir = {data:?}\n[eval]\nepisodes = 10\n[world_model]\nreward = \"mf\"\n\
                 [train]\nepochs = {epochs}\nsteps_per_epoch = 200\nparallel_envs = 10\n"
            );
            let path = dir.path().join(format!("train{epochs}.toml"));
            std::fs::write(&path, text).unwrap();
            path
        };
        let out = dir.path().join("run");
        let train = |config: PathBuf, resume| run(&TrainFile::load(&config)?, &out, resume, &crate::progress::quiet);
        train(write(1), false).unwrap();
        let err = format!("{:#}", train(write(1), false).err().unwrap());
        assert!(err.contains("already holds a training run"), "{err}");
        train(write(2), true).unwrap();
        let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
        assert_eq!(log.lines().count(), 2);
        for name in ["metrics.json", "metrics_argmax.json", "summary.json", "checkpoint.bin", "provenance.json"] {
            assert!(out.join(name).exists(), "{name}");
        }
        let saved = TrainFile::load(&out.join("config.toml")).unwrap();
        assert_eq!((saved.train.epochs, saved.world_model.reward), (2, crate::world_model::RewardKind::Mf));
    }

    #[test]
    fn off_policy_and_offline_example_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for (file, kind) in [
            ("train/dqn.toml", "dqn"),
            ("train/sac.toml", "sac"),
            ("train/sac4ir.toml", "sac4ir"),
            ("train/td3.toml", "td3"),
            ("train/dnair.toml", "dnair"),
            ("train/mofir.toml", "mofir"),
            ("train/offline.toml", "cql"),
        ] {
            let parsed = TrainFile::load(&dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e:#}"));
            assert_eq!(parsed.train.algorithm.name(), kind, "{file}");
            let back = TrainFile::parse(&toml::to_string_pretty(&parsed).unwrap()).unwrap();
            assert_eq!(back, parsed, "{file}");
        }
        let ips = TrainFile::parse("[world_model]\nreward = \"ips\"").unwrap();
        assert!(ips.world_model.reward.uses_ensemble());
    }

    #[test]
    fn example_config_parses_and_unknown_keys_fail() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/train/a2c.toml");
        let file = TrainFile::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(file.train.algorithm.name(), "a2c");
        assert_eq!(file.train.eval, file.eval);
        let back = TrainFile::parse(&toml::to_string_pretty(&file).unwrap()).unwrap();
        assert_eq!(back, file);
        for bad in [
            "[train]\nepoch = 3",
            "[train.algorithm]\nkind = \"a2c\"\nclip = 0.2",
            "[world_model]\nreward = \"mbpo\"\nlamda_var = 1.0",
            "[trian]\nepochs = 3",
        ] {
            let err = format!("{:#}", TrainFile::parse(bad).unwrap_err());
            assert!(err.contains("unknown"), "{bad}: {err}");
        }
        assert!(TrainFile::parse("[train.eval]\nepisodes = 5").is_err(), "eval settings live in [eval]");
    }
}
