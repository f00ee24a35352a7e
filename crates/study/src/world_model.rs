//! The `[world_model]` table and the training reward it builds: a DeepFM user-model ensemble (MBPO, MOPO, DORL,
//! IPS penalties), a plain MF, or the ground truth itself. Trained ensembles are kept in the world-model cache
//! ([`crate::world_cache`]) and reused by every run on the same log, settings and seed.

use crate::progress::{begin, note, Event, Progress};
use crate::world_cache::{cached_ensemble, cached_mf, fit_or_load_mf, link_or_copy};
use anyhow::{bail, Context, Result};
use dsrm_models::MfConfig;
use dsrm_nn::tch::Tensor;
use dsrm_sim::{GroundTruthReward, RewardModel, World};
use dsrm_world::{EnsembleConfig, EntropyMap, MfReward, SimulatedReward, UserModelEnsemble, WorldPenalty};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The training reward: what the agent is trained on instead of the ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RewardKind {
    /// DeepFM ensemble, r = max(0, ŷ − min ŷ) (MBPO; the project's default, `dsrm-hrl.md` §6 row 18).
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
    /// MOPO and DORL published penalty coefficients for KuaiRec and KuaiRand only. On a data set without them
    /// (Coat) a run takes those of this data set instead (`"kuairec"`: its rewards share Coat's 0–5 scale) and
    /// says so; unset, such a run stops with an error. Ignored where coefficients are published or set above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coefficients_fallback: Option<String>,
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
            coefficients_fallback: None,
            entropy_windows: dsrm_world::entropy::DORL_WINDOWS.to_vec(),
            ensemble: EnsembleConfig::default(),
            seed: 0,
            checkpoint: None,
            pretrained_embeddings: true,
            mf: MfConfig::default(),
        }
    }
}

/// The penalty of `preset` on `dataset` under the table's explicit coefficients and fallback, and, when the
/// fallback was taken, the line that says so.
fn resolve_penalty(
    wm: &WorldModelConfig,
    preset: WorldPenalty,
    dataset: &str,
) -> Result<(WorldPenalty, Option<String>)> {
    Ok(match (wm.lambda_var, wm.lambda_ent, &wm.coefficients_fallback) {
        (None, None, Some(from)) if preset.lambdas(dataset).is_err() => {
            let l = preset.lambdas(from).with_context(|| format!("world_model.coefficients_fallback = {from:?}"))?;
            let line = format!(
                "no published {} coefficients for {dataset:?}: using {from:?}'s (λ_var {}, λ_ent {}; \
                 world_model.coefficients_fallback)",
                preset.name(),
                l.var,
                l.ent
            );
            (WorldPenalty::Custom { lambda_var: l.var, lambda_ent: l.ent }, Some(line))
        }
        (None, None, _) => (preset, None),
        (var, ent, _) => {
            let base = preset.lambdas(dataset).unwrap_or(dsrm_world::Lambdas { var: 0.0, ent: 0.0 });
            (WorldPenalty::Custom { lambda_var: var.unwrap_or(base.var), lambda_ent: ent.unwrap_or(base.ent) }, None)
        }
    })
}

/// Whether `reward = "mf"` may use the cache of fitted MF world models ([`cached_mf`]): yes for a data set's
/// own log, which every run of a study shares; no for a log only one run will see (a feedback loop's later
/// rounds), which would only fill the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfCache {
    /// Load the cached fit of this log, settings and code, or fit and cache it.
    Use,
    /// Fit here and keep nothing.
    Skip,
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
    mf_cache: MfCache,
    progress: Progress,
) -> Result<(Box<dyn RewardModel + 'w>, Option<Tensor>)> {
    let penalty = |preset: WorldPenalty| -> Result<WorldPenalty> {
        let (penalty, fallback) = resolve_penalty(wm, preset, &world.dataset)?;
        if let Some(line) = fallback {
            note(progress, line);
        }
        Ok(penalty)
    };
    let penalty = match wm.reward {
        RewardKind::GroundTruth => {
            note(
                progress,
                "DIAGNOSTIC run: the agent trains on the ground truth it is evaluated on (reward = \"ground-truth\")",
            );
            return Ok((Box::new(GroundTruthReward::new(&world.spec.rewards)), None));
        }
        RewardKind::Mf => {
            let mf = match mf_cache {
                MfCache::Skip => {
                    begin(progress, "fitting the MF world model", None);
                    let mf = MfReward::fit(world, &wm.mf).context("fitting the MF world model");
                    progress(Event::End);
                    mf?
                }
                MfCache::Use => {
                    let path = cached_mf(world, &wm.mf)?;
                    let fitting = !path.exists();
                    if fitting {
                        begin(progress, "fitting the MF world model", None);
                    }
                    let fitted = fit_or_load_mf(world, &wm.mf, &path, &mut |line| note(progress, line));
                    if fitting {
                        progress(Event::End);
                    }
                    let (mf, loaded) = fitted?;
                    if loaded {
                        note(
                            progress,
                            format!(
                                "reusing the MF world model fitted on the same log and settings by this code: {}",
                                path.display()
                            ),
                        );
                    }
                    MfReward::from_model(mf, world.spec.n_users(), world.spec.n_items())
                        .context("the MF world model")?
                }
            };
            let embeddings = match mf_embeddings && wm.pretrained_embeddings {
                true => Some(mf.item_embeddings().context("the MF's item embeddings")?),
                false => None,
            };
            return Ok((Box::new(mf), embeddings));
        }
        RewardKind::Mbpo => penalty(WorldPenalty::Mbpo)?,
        RewardKind::Mopo => penalty(WorldPenalty::Mopo)?,
        RewardKind::Dorl => penalty(WorldPenalty::Dorl)?,
        RewardKind::Ips => penalty(WorldPenalty::Ips)?,
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
                note(
                    progress,
                    format!(
                        "reusing the user-model ensemble trained on the same log, settings and seed: {}",
                        cached.display()
                    ),
                );
                crate::cache_usage::mark_used(&cached);
                UserModelEnsemble::load(&cached, world).with_context(|| format!("loading {}", cached.display()))?
            } else {
                let epochs = wm.ensemble.n_models * wm.ensemble.model.epochs;
                begin(progress, "world model", Some(epochs as u64));
                // Finished members are kept next to the cache entry until the whole ensemble is saved, so a
                // killed training resumes with the members that were in flight.
                let members = cached.with_extension("members");
                let ensemble =
                    UserModelEnsemble::train_resumable(world, &ensemble_cfg, wm.seed, &members, &mut |m, e, loss| {
                        progress(Event::Message(format!("model {} epoch {} loss {loss:.4}", m + 1, e + 1)));
                        progress(Event::Advance(1));
                    })
                    .context("training the user-model ensemble");
                progress(Event::End);
                let ensemble = ensemble?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use dsrm_world::Lambdas;

    #[test]
    fn unpublished_coefficients_fall_back_only_where_asked_and_needed() {
        let plain = WorldModelConfig::default();
        let fallback = WorldModelConfig { coefficients_fallback: Some("kuairec".into()), ..plain.clone() };
        // Published data sets keep their own coefficients, with or without a fallback.
        for wm in [&plain, &fallback] {
            assert_eq!(resolve_penalty(wm, WorldPenalty::Dorl, "kuairand-pure").unwrap(), (WorldPenalty::Dorl, None));
        }
        // Coat has none: an error naming the remedy without a fallback, KuaiRec's with one (and a line saying so).
        let (penalty, line) = resolve_penalty(&fallback, WorldPenalty::Dorl, "coat").unwrap();
        assert_eq!(penalty.lambdas("coat").unwrap(), Lambdas { var: 0.05, ent: 5.0 });
        assert!(line.unwrap().contains("\"kuairec\"'s"));
        let (penalty, _) = resolve_penalty(&plain, WorldPenalty::Dorl, "coat").unwrap();
        assert!(penalty.lambdas("coat").is_err());
        // A fallback that has no coefficients itself is an error naming the setting.
        let bad = WorldModelConfig { coefficients_fallback: Some("movielens".into()), ..plain };
        let err = format!("{:#}", resolve_penalty(&bad, WorldPenalty::Dorl, "coat").unwrap_err());
        assert!(err.contains("coefficients_fallback"), "{err}");
    }
}
