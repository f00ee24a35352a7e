//! From a config to a [`World`]: real files from a directory, or the cached synthetic KuaiRec.

use crate::config::{DataConfig, RunConfig};
use crate::progress::{begin, note, Event, Progress};
use anyhow::{bail, Context, Result};
use dsrm_data::synth::{SynthConfig, SynthSize};
use dsrm_data::Dataset;
use dsrm_sim::world::WorldConfig;
use dsrm_sim::{EnvConfig, World};
use std::path::{Path, PathBuf};

/// Where generated synthetic sets are cached (`DSRM_CACHE` or `./.cache/dsrm`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("DSRM_CACHE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".cache/dsrm"))
}

/// Parses a synthetic size name.
pub fn synth_size(name: &str) -> Result<SynthSize> {
    match name {
        "full" => Ok(SynthSize::Full),
        "tiny" => Ok(SynthSize::Tiny),
        other => bail!("unknown synthetic size {other:?}; expected full or tiny"),
    }
}

/// Generates a synthetic KuaiRec set into `out`, reporting each generator stage as a piece of work.
pub fn generate_synthetic(size: SynthSize, seed: u64, out: &Path, progress: Progress) -> Result<()> {
    let cfg = SynthConfig::for_size(size);
    begin(progress, "synth", Some(1));
    let mut stage = String::new();
    let summary = dsrm_data::synth::generate(&cfg, seed, out, &mut |name: &str, done: u64, total: u64| {
        if stage != name {
            stage = name.to_string();
            progress(Event::Message(stage.clone()));
            progress(Event::Position(0));
        }
        progress(Event::Length(total.max(1)));
        progress(Event::Position(done));
    })
    .with_context(|| format!("generating synthetic KuaiRec into {}", out.display()));
    progress(Event::End);
    let summary = summary?;
    note(
        progress,
        format!(
            "synthetic KuaiRec ({size:?}, seed {seed}) written to {}: small {} rows, big {} rows",
            out.display(),
            summary.stats.small_rows,
            summary.stats.big_rows
        ),
    );
    Ok(())
}

/// The directory of the cached synthetic set, generated on first use.
pub fn cached_synthetic(size_name: &str, seed: u64, progress: Progress) -> Result<PathBuf> {
    let size = synth_size(size_name)?;
    let dir = cache_dir().join(format!("synthetic-kuairec-{size_name}-seed{seed}"));
    if !dir.join("synthetic.json").exists() {
        note(
            progress,
            format!("generating synthetic KuaiRec ({size_name}) into {} (cached for later runs)", dir.display()),
        );
        generate_synthetic(size, seed, &dir, progress)?;
    }
    crate::cache_usage::mark_used(&dir);
    Ok(dir)
}

/// Loads the configured data and builds the world.
pub fn load_world(cfg: &RunConfig, progress: Progress) -> Result<World> {
    load_world_from(&cfg.data, &cfg.env, &cfg.world, progress)
}

/// Loads the data of a `[data]` table and builds the world of `[env]` / `[world]` (for configs other than
/// [`RunConfig`], such as `dsrm train`'s). Differences from the official counts are reported as notes.
pub fn load_world_from(
    data_cfg: &DataConfig,
    env_cfg: &EnvConfig,
    world_cfg: &WorldConfig,
    progress: Progress,
) -> Result<World> {
    let dir = match &data_cfg.dir {
        Some(dir) => dir.clone(),
        None if data_cfg.dataset == Dataset::KuaiRec => {
            cached_synthetic(&data_cfg.synthetic_size, data_cfg.synthetic_seed, progress)?
        }
        None => bail!(
            "no data directory for {:?}: pass --data DIR (the directory with its official files) or set [data] dir \
             in the config; only KuaiRec has a built-in synthetic set",
            data_cfg.dataset
        ),
    };
    let settings = env_cfg.resolve();
    begin(progress, format!("loading {}", dir.display()), None);
    let world = match data_cfg.dataset {
        // KuaiRec's parse is cached (`data_cache`): the same 1.5 GB of CSV in every run of a study.
        Dataset::KuaiRec => {
            let opts =
                dsrm_data::kuairec::LoadOptions { duplicate_policy: data_cfg.duplicate_policy, ..Default::default() };
            let mut notes = Vec::new();
            let loaded = crate::data_cache::load_kuairec(&cache_dir(), &dir, &opts, &mut |n| notes.push(n));
            notes.into_iter().for_each(|n| progress(Event::Message(n)));
            loaded.and_then(|(data, _)| Ok(World::kuairec(&data, settings, world_cfg)?))
        }
        dataset => World::from_dir(dataset, &dir, data_cfg.duplicate_policy, settings, world_cfg, &mut |m| {
            progress(Event::Message(m.into()))
        })
        .map_err(anyhow::Error::from),
    };
    progress(Event::End);
    let world = world?;
    if world.is_synthetic() {
        let n = world.provenance.warnings.len();
        if n > 0 {
            note(
                progress,
                format!(
                    "note: {n} differences from the official KuaiRec counts recorded in provenance (expected: synthetic data)"
                ),
            );
        }
    } else {
        world.provenance.warnings.iter().for_each(|w| note(progress, format!("warning: {w}")));
    }
    Ok(world)
}
