//! `dsrm train --config FILE [--resume] [--out DIR]`: train an A2C or PPO agent in the simulated environment
//! (world-model reward, the real quit rule), evaluating on the ground truth after every epoch.
//!
//! ```toml
//! [data]                       # as for eval/demo; default: the cached synthetic KuaiRec
//! [env]                        # preset = "dorl-paper"
//! [world]                      # how the environment is built
//! [eval]                       # episodes per mode, force_length, selections (first = headline)
//!
//! [world_model]
//! reward = "mbpo"              # mbpo | mopo | dorl (DeepFM ensemble + DORL penalties) | mf | ground-truth
//!
//! [train]
//! epochs = 10
//! steps_per_epoch = 20000
//! seed = 0
//! [train.algorithm]
//! kind = "a2c"                 # a2c | ppo; the other keys are that algorithm's hyper-parameters
//! [train.tracker]
//! kind = "avg"                 # avg | gru | sasrec
//! ```
//!
//! The run directory holds `log.jsonl` (one line per epoch), `timing.jsonl`, `checkpoint.bin`,
//! `world_model.bin` (the trained ensemble, reused on resume), `metrics.json` (test metrics of the epoch
//! selected on validation users), `summary.json`, `config.toml` and `provenance.json`.

use crate::config::DataConfig;
use crate::{loading, output};
use anyhow::{bail, Context, Result};
use clap::Args;
use dsrm_eval::{EvalConfig, MetricInputs};
use dsrm_models::MfConfig;
use dsrm_nn::tch::Tensor;
use dsrm_sim::world::WorldConfig;
use dsrm_sim::{EnvConfig, GroundTruthReward, RewardModel, World};
use dsrm_train::{ProgressEvent, TrainConfig, TrainSummary};
use dsrm_world::{EnsembleConfig, EntropyMap, MfReward, SimulatedReward, UserModelEnsemble, WorldPenalty};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Args)]
pub struct TrainArgs {
    /// TOML config (sections data, env, world, eval, world_model, train).
    #[arg(long)]
    pub config: PathBuf,
    /// Continue the run in --out from its checkpoint (the config must match).
    #[arg(long)]
    pub resume: bool,
    /// Run directory. Default: runs/train-<algorithm>-seed<seed>.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The training reward: what the agent is trained on instead of the ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RewardKind {
    /// DeepFM ensemble, r = max(0, ŷ − min ŷ) (MBPO; the project's default, `docs/design.md` §6 row 18).
    #[default]
    Mbpo,
    /// Ensemble with MOPO's uncertainty penalty.
    Mopo,
    /// Ensemble with DORL's uncertainty penalty and entropy bonus.
    Dorl,
    /// IPS baseline: an ensemble trained with inverse item-exposure weights (`dsrm_world::ips`), r = max(0, ŷ − min ŷ).
    Ips,
    /// A plain matrix factorisation, r = max(0, ŷ − min ŷ): seconds to fit, for quick runs.
    Mf,
    /// DIAGNOSTIC: the ground truth itself (online training on the evaluation simulator).
    GroundTruth,
}

impl RewardKind {
    /// Rewards that come from the DeepFM user-model ensemble.
    pub fn uses_ensemble(self) -> bool {
        matches!(self, RewardKind::Mbpo | RewardKind::Mopo | RewardKind::Dorl | RewardKind::Ips)
    }
}

/// The `[world_model]` table. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorldModelConfig {
    pub reward: RewardKind,
    /// Explicit penalty coefficients instead of the preset's (ensemble rewards only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lambda_var: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lambda_ent: Option<f64>,
    /// DORL's entropy windows (the entropy term of the `dorl` reward).
    pub entropy_windows: Vec<usize>,
    /// The user-model ensemble (mbpo / mopo / dorl).
    pub ensemble: EnsembleConfig,
    /// Seed of the ensemble.
    pub seed: u64,
    /// A trained ensemble to load instead of training one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
    /// Give the ensemble's item embeddings to the state tracker (DORL's `avg`).
    pub pretrained_embeddings: bool,
    /// The plain MF of `reward = "mf"`.
    pub mf: MfConfig,
}

impl Default for WorldModelConfig {
    fn default() -> Self {
        Self {
            reward: RewardKind::default(),
            lambda_var: None,
            lambda_ent: None,
            entropy_windows: dsrm_world::entropy::DORL_WINDOWS.to_vec(),
            ensemble: EnsembleConfig::default(),
            seed: 0,
            checkpoint: None,
            pretrained_embeddings: true,
            mf: MfConfig::default(),
        }
    }
}

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

/// The training reward and the tracker's pretrained item embeddings. A trained ensemble is saved as
/// `out/world_model.bin` (and reloaded from there when `resume`). `mf_embeddings`: give the tracker the MF's
/// item factors when `reward = "mf"` (the DSRM stage needs a pretrained, frozen item table; runs without it
/// keep the tracker's learned table).
pub fn reward_model<'w>(
    wm: &WorldModelConfig,
    world: &'w World,
    out: &Path,
    resume: bool,
    mf_embeddings: bool,
) -> Result<(Box<dyn RewardModel + 'w>, Option<Tensor>)> {
    let penalty = |preset: WorldPenalty| match (wm.lambda_var, wm.lambda_ent) {
        (None, None) => preset,
        (var, ent) => {
            let base = preset.lambdas(&world.dataset).unwrap_or(dsrm_world::Lambdas { var: 0.0, ent: 0.0 });
            WorldPenalty::Custom { lambda_var: var.unwrap_or(base.var), lambda_ent: ent.unwrap_or(base.ent) }
        }
    };
    let penalty = match wm.reward {
        RewardKind::GroundTruth => {
            eprintln!(
                "DIAGNOSTIC run: the agent trains on the ground truth it is evaluated on (reward = \"ground-truth\")"
            );
            return Ok((Box::new(GroundTruthReward::new(&world.spec.rewards)), None));
        }
        RewardKind::Mf => {
            let pb = output::spinner("fitting the MF world model");
            let mf = MfReward::fit(world, &wm.mf).context("fitting the MF world model")?;
            pb.finish_and_clear();
            let embeddings = match mf_embeddings && wm.pretrained_embeddings {
                true => Some(mf.item_embeddings().context("the MF's item embeddings")?),
                false => None,
            };
            return Ok((Box::new(mf), embeddings));
        }
        RewardKind::Mbpo => penalty(WorldPenalty::Mbpo),
        RewardKind::Mopo => penalty(WorldPenalty::Mopo),
        RewardKind::Dorl => penalty(WorldPenalty::Dorl),
        RewardKind::Ips => penalty(WorldPenalty::Ips),
    };
    let ensemble_cfg = EnsembleConfig { ips: wm.reward == RewardKind::Ips, ..wm.ensemble.clone() };
    let saved = out.join("world_model.bin");
    let ensemble = match (&wm.checkpoint, resume && saved.exists()) {
        (Some(path), _) => {
            UserModelEnsemble::load(path, world).with_context(|| format!("loading {}", path.display()))?
        }
        (None, true) => {
            UserModelEnsemble::load(&saved, world).with_context(|| format!("loading {}", saved.display()))?
        }
        (None, false) => {
            // Training is a pure function of (training log, settings, seed): reuse an ensemble another run
            // trained on the same, kept in the cache directory, instead of training it again.
            let cached = cached_ensemble(world, &ensemble_cfg, wm.seed)?;
            let ensemble = if cached.exists() {
                eprintln!(
                    "reusing the user-model ensemble trained on the same log, settings and seed: {}",
                    cached.display()
                );
                UserModelEnsemble::load(&cached, world).with_context(|| format!("loading {}", cached.display()))?
            } else {
                let epochs = wm.ensemble.n_models * wm.ensemble.model.epochs;
                let pb = output::bar(epochs as u64, "world model");
                // Finished members are kept next to the cache entry until the whole ensemble is saved, so a
                // killed training resumes with the members that were in flight.
                let members = cached.with_extension("members");
                let ensemble =
                    UserModelEnsemble::train_resumable(world, &ensemble_cfg, wm.seed, &members, &mut |m, e, loss| {
                        pb.set_message(format!("model {} epoch {} loss {loss:.4}", m + 1, e + 1));
                        pb.inc(1);
                    })
                    .context("training the user-model ensemble")?;
                pb.finish_and_clear();
                ensemble.save(&cached).with_context(|| format!("saving {}", cached.display()))?;
                std::fs::remove_dir_all(&members).with_context(|| format!("removing {}", members.display()))?;
                ensemble
            };
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            link_or_copy(&cached, &saved)?;
            ensemble
        }
    };
    if ensemble.config().ips != ensemble_cfg.ips {
        bail!(
            "the world model {} inverse-propensity weights, but reward = {:?} needs one that {}",
            if ensemble.config().ips { "was trained with" } else { "has no" },
            wm.reward,
            if ensemble_cfg.ips { "has them (train it with reward = \"ips\")" } else { "has none" }
        );
    }
    let entropy = EntropyMap::build(&world.train_full, &wm.entropy_windows).context("building DORL's entropy map")?;
    let reward = SimulatedReward::for_world(world, ensemble.predictions(), Arc::new(entropy), penalty)
        .context("building the simulated reward")?;
    let embeddings = wm.pretrained_embeddings.then(|| ensemble.item_embeddings());
    Ok((Box::new(reward), embeddings))
}

/// Where the ensemble trained on `world`'s log with `cfg` and `seed` is cached:
/// `<cache>/world-models/<sha256 of (log fingerprint, settings, seed)>.bin`. `workers` is left out of the key:
/// the members are independent, so it does not change the result.
fn cached_ensemble(world: &World, cfg: &EnsembleConfig, seed: u64) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let data = dsrm_world::ensemble::DataId::of(world).context("fingerprinting the training log")?;
    let key_cfg = EnsembleConfig { workers: 1, ..cfg.clone() };
    let key = serde_json::to_vec(&(&data.hash, &key_cfg, seed))?;
    let hex: String = Sha256::digest(key).iter().take(12).map(|b| format!("{b:02x}")).collect();
    Ok(loading::cache_dir().join("world-models").join(format!("{hex}.bin")))
}

/// `to` becomes the same file as `from` (a hard link; a copy across file systems), replacing what was there.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        std::fs::remove_file(to).with_context(|| format!("replacing {}", to.display()))?;
    }
    if std::fs::hard_link(from, to).is_err() {
        let tmp = to.with_extension("bin.tmp");
        std::fs::copy(from, &tmp).with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
        std::fs::rename(&tmp, to).with_context(|| format!("renaming {}", tmp.display()))?;
    }
    Ok(())
}

pub fn run(args: TrainArgs) -> Result<()> {
    let file = TrainFile::load(&args.config)?;
    let cfg = &file.train;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/train-{}-seed{}", cfg.algorithm.name(), cfg.seed)));
    // Refuse before the expensive part (loading data, training a world model), and never overwrite the
    // files of another run.
    let saved_config = out.join("config.toml");
    if !args.resume && dsrm_train::run_exists(&out) {
        bail!("{} already holds a training run; pass --resume to continue it, or choose another --out", out.display());
    }
    if args.resume && saved_config.exists() {
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
    let world = loading::load_world_from(&file.data, &file.env, &file.world)?;
    let inputs = MetricInputs::new(&world, file.eval.mcd_dominant);
    let (reward, embeddings) = reward_model(&file.world_model, &world, &out, args.resume, cfg.dsrm.is_some())?;
    let provenance = provenance(&file, &world, &inputs, reward.as_ref());
    let write_config = || -> Result<()> {
        output::write_atomic(&saved_config, toml::to_string_pretty(&file)?.as_bytes())?;
        output::write_json(&out.join("provenance.json"), &provenance)
    };
    if !saved_config.exists() {
        write_config()?;
    }

    let label = if world.is_synthetic() { " on SYNTHETIC data" } else { "" };
    eprintln!(
        "training {} + {} tracker{label}; reward: {}; {} epochs x {} steps",
        cfg.algorithm.name(),
        cfg.tracker.name(),
        reward.describe(),
        cfg.epochs,
        cfg.steps_per_epoch
    );
    let per_epoch = cfg.steps_per_epoch as u64;
    let pb = output::bar(cfg.epochs as u64 * per_epoch, "training");
    let mut progress = |event: ProgressEvent| match event {
        ProgressEvent::Started { first_epoch, .. } => {
            pb.set_position((first_epoch as u64 - 1) * per_epoch);
            if first_epoch > 1 {
                pb.suspend(|| eprintln!("resumed after epoch {}", first_epoch - 1));
            }
        }
        ProgressEvent::Collected { epoch, steps, update, train_return, .. } => {
            pb.set_position((epoch as u64 - 1) * per_epoch + steps.min(per_epoch));
            let played = train_return.map_or("offline".to_string(), |r| format!("return {r:.2}"));
            pb.set_message(format!("epoch {epoch} {played} loss {:.3}", update.loss));
        }
        ProgressEvent::Evaluating { epoch } => pb.set_message(format!("epoch {epoch} evaluating")),
        ProgressEvent::Dsrm(event) => pb.set_message(super::dsrm::describe(&event)),
        ProgressEvent::EpochDone { epoch, validation_nx0_r_tra, test_nx0_r_tra, wall_s, .. } => {
            pb.set_position(epoch as u64 * per_epoch);
            // Printed through the bar so the line also reaches logs when no terminal draws the bar.
            pb.suspend(|| {
                eprintln!(
                    "epoch {epoch}: NX_0 R_tra validation {validation_nx0_r_tra:.3}, test {test_nx0_r_tra:.3} ({wall_s:.1}s)"
                )
            });
        }
    };
    let summary =
        dsrm_train::train(cfg, &world, &inputs, reward.as_ref(), embeddings, &out, args.resume, &mut progress)
            .with_context(|| format!("training in {}", out.display()))?;
    pb.finish_and_clear();
    write_config()?; // a resumed run may have raised `epochs`
    print_summary(&summary, &world);
    eprintln!("wrote {}/{{log.jsonl, metrics.json, summary.json, checkpoint.bin}}", out.display());
    Ok(())
}

/// What produced the run: config, versions, data and how the world and its reward were built.
fn provenance(file: &TrainFile, world: &World, inputs: &MetricInputs, reward: &dyn RewardModel) -> serde_json::Value {
    json!({
        "dsrm_version": env!("CARGO_PKG_VERSION"),
        "command": std::env::args().collect::<Vec<_>>(),
        "created_at": chrono::Utc::now().to_rfc3339(),
        "synthetic": world.is_synthetic(),
        "label": if world.is_synthetic() { "SYNTHETIC data in KuaiRec format, not KuaiRec results" } else { "real data" },
        "config": file,
        "training_reward": reward.describe(),
        "env_settings": world.settings,
        "world": {
            "dataset": world.dataset,
            "n_users": world.spec.n_users(),
            "n_items": world.spec.n_items(),
            "training_rows": world.train.len(),
            "notes": world.notes,
        },
        "metrics": { "dominant_tags": inputs.dominant_tags, "dominant_source": inputs.dominant_source },
        "data": world.provenance,
    })
}

/// The selected epoch's test metrics, one row per (selection, mode).
fn print_summary(s: &TrainSummary, world: &World) {
    let header = ["selection", "mode", "R_tra", "R_each", "Length", "CV", "MCD", "Gini", "LongTailShare"];
    let mut t = output::table(header.map(String::from).to_vec());
    for (selection, modes) in &s.selected {
        for (mode, m) in modes {
            let m = serde_json::to_value(m).unwrap_or_default();
            let mut row = vec![selection.clone(), mode.clone()];
            row.extend(
                header[2..]
                    .iter()
                    .map(|k| m.get(*k).and_then(|v| v.as_f64()).map(|v| format!("{v:.4}")).unwrap_or_default()),
            );
            t.add_row(row);
        }
    }
    let label = if world.is_synthetic() { " (SYNTHETIC data)" } else { "" };
    println!(
        "{} + {} on {}{label}: test users, epoch {} of {} (selected by {})\n{t}",
        s.algorithm, s.tracker, world.dataset, s.selected_epoch, s.epochs, s.selection_rule
    );
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
        let args = |config, resume| TrainArgs { config, resume, out: Some(out.clone()) };
        run(args(write(1), false)).unwrap();
        let err = format!("{:#}", run(args(write(1), false)).unwrap_err());
        assert!(err.contains("already holds a training run"), "{err}");
        run(args(write(2), true)).unwrap();
        let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
        assert_eq!(log.lines().count(), 2);
        for name in ["metrics.json", "metrics_argmax.json", "summary.json", "checkpoint.bin", "provenance.json"] {
            assert!(out.join(name).exists(), "{name}");
        }
        let saved = TrainFile::load(&out.join("config.toml")).unwrap();
        assert_eq!((saved.train.epochs, saved.world_model.reward), (2, RewardKind::Mf));
    }

    #[test]
    fn off_policy_and_offline_example_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for (file, kind) in [("train-dqn.toml", "dqn"), ("train-sac.toml", "sac"), ("train-offline.toml", "cql")] {
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
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/train.toml");
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
