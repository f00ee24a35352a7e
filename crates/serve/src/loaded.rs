//! Loading a finished `dsrm train` run for serving: its config, world (for the catalogue, the user ids and
//! the popular / long-tail split), tracker (with `[train.dsrm]` its DSRM stage, `dsrm.bin`) and policy, plus
//! the high levels of `dsrm retune` runs made from it (`--retuned`), each as a whole frozen policy; or a
//! heuristic baseline fitted on a data set ([`load_heuristic`]).

use anyhow::{bail, Context, Result};
use dsrm_agents::{Algorithm, EvalPolicy, HeuristicPolicy};
use dsrm_policy::heuristics::{HeuristicConfig, HeuristicKind};
use dsrm_policy::Selection;
use dsrm_sim::world::WorldConfig;
use dsrm_sim::EnvConfig;
use dsrm_sim::World;
use dsrm_study::config::DataConfig;
use dsrm_study::progress::Progress;
use dsrm_study::train::TrainFile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One loaded high level (for a flat policy, the one policy).
pub struct Level {
    /// λ_f the high level was trained with (`None`: not hierarchical).
    pub lambda_f: Option<f64>,
    /// The run directory it came from.
    pub dir: PathBuf,
    pub policy: Box<dyn EvalPolicy>,
}

/// A run, ready to serve.
pub struct LoadedRun {
    /// The run directory.
    pub dir: PathBuf,
    /// `kuairec`, `kuairand-pure` or `coat`.
    pub dataset: String,
    /// The policy's name (`hrl`, `a2c`, ...).
    pub policy_name: String,
    /// The run's own policy first, then one per `--retuned` run.
    pub levels: Vec<Level>,
    /// The run's headline selection (`[eval] selections`'s first), unless overridden.
    pub selection: Selection,
    /// The data set's user id -> dense user.
    pub users: HashMap<u64, u32>,
    /// Dense item -> the data set's video id, and back.
    pub item_ids: Vec<u32>,
    pub items: HashMap<u64, u32>,
    /// Per dense item: in the popular group (the fairness metrics' split).
    pub popular: Vec<bool>,
    /// The ground truth's reward range; feedback outside it is refused.
    pub reward_range: (f64, f64),
    /// A few of the data set's user ids (for load generators and examples).
    pub sample_user_ids: Vec<u64>,
}

impl LoadedRun {
    /// Number of known users (the cold-start state uses this dense id, one past them).
    pub fn n_users(&self) -> usize {
        self.users.len()
    }
}

/// Refuses a run directory whose format this build does not know (`dsrm_train::RUN_FORMAT`); a run made
/// before runs recorded a format counts as format 1.
pub fn check_run_format(dir: &Path) -> Result<()> {
    let format = dsrm_train::run_format(dir)?;
    if format != dsrm_train::RUN_FORMAT {
        bail!(
            "{} has run format {format}, but this build of dsrm serve reads run format {} only; serve it with the \
             version of dsrm that made it",
            dir.display(),
            dsrm_train::RUN_FORMAT
        );
    }
    Ok(())
}

/// Reads a finished run's config after checking it is one.
fn finished_run(dir: &Path) -> Result<TrainFile> {
    if !dir.join("checkpoint.bin").exists() {
        bail!("{} is not a finished dsrm train run (no checkpoint.bin)", dir.display());
    }
    check_run_format(dir)?;
    TrainFile::load(&dir.join("config.toml"))
}

fn lambda_of(file: &TrainFile) -> Option<f64> {
    match &file.train.algorithm {
        Algorithm::Hrl(h) => Some(h.lambda_f),
        _ => None,
    }
}

/// Loads the run in `dir` and the retuned high levels in `retuned`. `selection` overrides the run's headline
/// selection. Sets libtorch to one intra-op thread (`dsrm_nn::runtime::init`).
pub fn load(dir: &Path, retuned: &[PathBuf], selection: Option<Selection>, progress: Progress) -> Result<LoadedRun> {
    let file = finished_run(dir)?;
    dsrm_nn::runtime::init(1, file.train.seed);
    let world = dsrm_study::loading::load_world_from(&file.data, &file.env, &file.world, progress)?;
    let wm = &file.world_model;
    if wm.reward.uses_ensemble() && wm.checkpoint.is_none() && !dir.join("world_model.bin").exists() {
        bail!("{} has no world_model.bin, whose item embeddings its tracker reads", dir.display());
    }
    if file.train.dsrm.is_some() && !dir.join(dsrm_denoise::stage::RUN_FILE).exists() {
        bail!("{} trained with [train.dsrm] but has no {}", dir.display(), dsrm_denoise::stage::RUN_FILE);
    }
    // The tracker's pretrained item embeddings come with the training reward (as for `dsrm retune`).
    let (reward, embeddings) = dsrm_study::world_model::reward_model(
        wm,
        &world,
        dir,
        true,
        file.train.dsrm.is_some(),
        dsrm_study::world_model::MfCache::Use,
        progress,
    )?;
    drop(reward);
    let load_policy = |f: &TrainFile, d: &Path| -> Result<Box<dyn EvalPolicy>> {
        let pretrained = embeddings.as_ref().map(|t| t.shallow_clone());
        dsrm_train::load_trained(&f.train, &world, pretrained, d)
            .with_context(|| format!("loading the policy of {}", d.display()))
    };
    let policy = load_policy(&file, dir)?;
    let mut levels = vec![Level { lambda_f: lambda_of(&file), dir: dir.to_path_buf(), policy }];
    for r in retuned {
        let rfile = finished_run(r)?;
        let Algorithm::Hrl(h) = &rfile.train.algorithm else {
            bail!("--retuned {}: not an HRL run (it trained {})", r.display(), rfile.train.algorithm.name());
        };
        if levels[0].lambda_f.is_none() {
            bail!("--retuned needs a hierarchical run, but {} trained {}", dir.display(), file.train.algorithm.name());
        }
        if h.fixed_ratio.is_some() {
            bail!("--retuned {}: a fixed-ratio retune; set its ρ* live with target_ratio instead", r.display());
        }
        if (&rfile.data, &rfile.env, &rfile.world, &rfile.train.tracker)
            != (&file.data, &file.env, &file.world, &file.train.tracker)
        {
            bail!(
                "--retuned {}: made from other data, environment or tracker settings than {}",
                r.display(),
                dir.display()
            );
        }
        if levels.iter().any(|l| l.lambda_f == Some(h.lambda_f)) {
            bail!("--retuned {}: λ_f = {} is already loaded", r.display(), h.lambda_f);
        }
        let policy = load_policy(&rfile, r)?;
        levels.push(Level { lambda_f: Some(h.lambda_f), dir: r.clone(), policy });
    }
    dsrm_nn::tch::set_num_threads(1);
    Ok(loaded_run(&world, dir.to_path_buf(), levels, selection.unwrap_or(file.eval.selections[0])))
}

/// A heuristic baseline fitted on a data set's training log, to serve (`dsrm serve --heuristic`): random,
/// most-popular or mf-greedy (the others choose by their own exploration, not from a score vector, and are
/// refused). `seed` seeds mf-greedy's user model; its other settings are the defaults (`HeuristicConfig`).
pub fn load_heuristic(
    kind: HeuristicKind,
    data: &DataConfig,
    env: &EnvConfig,
    seed: u64,
    selection: Selection,
    progress: Progress,
) -> Result<LoadedRun> {
    dsrm_nn::runtime::init(1, seed);
    let world = dsrm_study::loading::load_world_from(data, env, &WorldConfig::default(), progress)?;
    let policy = dsrm_study::eval::build_heuristic(&world, kind, &HeuristicConfig::default(), seed)?;
    let policy = HeuristicPolicy::new(policy)?;
    let dir = PathBuf::from(format!("heuristic:{}", kind.name()));
    let levels = vec![Level { lambda_f: None, dir: dir.clone(), policy: Box::new(policy) }];
    Ok(loaded_run(&world, dir, levels, selection))
}

fn loaded_run(world: &World, dir: PathBuf, levels: Vec<Level>, selection: Selection) -> LoadedRun {
    let users: HashMap<u64, u32> = world.user_ids.iter().enumerate().map(|(d, &u)| (u64::from(u), d as u32)).collect();
    let items: HashMap<u64, u32> = world.item_ids.iter().enumerate().map(|(d, &i)| (u64::from(i), d as u32)).collect();
    LoadedRun {
        dir,
        dataset: world.dataset.clone(),
        policy_name: levels[0].policy.name(),
        selection,
        sample_user_ids: world.user_ids.iter().take(100).map(|&u| u64::from(u)).collect(),
        users,
        item_ids: world.item_ids.clone(),
        items,
        popular: world.popular(),
        reward_range: world.spec.rewards.range(),
        levels,
    }
}
