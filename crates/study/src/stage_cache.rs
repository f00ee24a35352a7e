//! The DSRM stage cache. A trained stage (`dsrm.bin`) is a pure function of what it reads: its `[train.dsrm]`
//! settings (seed included), the tracker's, the world's training logs, catalogue, item tags and reward range,
//! the data files and (synthetic data) the generator's truth, the pretrained item table, libtorch's threads and
//! the code. The rows of a study that share all of these at one seed (DSRM-HRL, FLAT, DSRM on DNaIR, the λ_f
//! sweep, the own-schedule row, ...) differ only after the stage, so the first run to train it keeps a copy under
//! `<cache>/dsrm-stages/` and the others load it, bit for bit the stage they would have trained:
//!
//! ```text
//! key   <- sha256(code version, stage and tracker settings, libtorch threads, the world's logs, ids, tags,
//!               reward range, data provenance, truth files, pretrained item table)
//! reuse <- RUN/dsrm.bin absent and <cache>/dsrm-stages/<key>.bin present:
//!              link it to RUN/dsrm.bin; RUN/dsrm_timing.json <- the training's record + "reused_from"
//! keep  <- the stage trained in this run: RUN/dsrm.bin and its record -> <cache>/dsrm-stages/<key>.{bin,json}
//! ```
//!
//! A stage given as a `checkpoint` is never cached (it is loaded already). The feedback loop trains each round's
//! stage on that round's log and does not use the cache.

use crate::world_cache::link_or_copy;
use anyhow::{Context, Result};
use dsrm_nn::tch::{Kind, Tensor};
use dsrm_sim::World;
use dsrm_train::TrainConfig;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where the stage of `cfg` on `world` with `pretrained` item embeddings is cached (`None` without a stage, or
/// with a stage loaded from a checkpoint).
pub fn cached_stage(cfg: &TrainConfig, world: &World, pretrained: Option<&Tensor>) -> Result<Option<PathBuf>> {
    let Some(stage) = &cfg.dsrm else { return Ok(None) };
    if stage.checkpoint.is_some() {
        return Ok(None);
    }
    let mut h = Key(Sha256::new());
    h.part("code", dsrm_train::CODE_VERSION.as_bytes());
    h.part("stage", &serde_json::to_vec(stage)?);
    h.part("tracker", &serde_json::to_vec(&cfg.tracker)?);
    h.part("torch_threads", &cfg.torch_threads.to_le_bytes());
    h.part("dataset", world.dataset.as_bytes());
    h.words("n_items", [world.spec.n_items() as u64]);
    for (name, log) in [("train", &world.train), ("train_full", &world.train_full)] {
        h.words(name, [log.n_users as u64, log.n_items as u64]);
        h.words(name, log.user.iter().map(|&u| u64::from(u)));
        h.words(name, log.item.iter().map(|&i| u64::from(i)));
        h.words(name, log.target.iter().map(|t| t.to_bits()));
    }
    h.words("user_ids", world.user_ids.iter().map(|&u| u64::from(u)));
    h.words("item_ids", world.item_ids.iter().map(|&i| u64::from(i)));
    h.part("item_tags", &serde_json::to_vec(&world.item_tags)?);
    let (lo, hi) = world.spec.rewards.range();
    h.words("reward_range", [lo.to_bits(), hi.to_bits()]);
    h.part("provenance", &serde_json::to_vec(&world.provenance)?);
    if world.is_synthetic() {
        let truth = Path::new(&world.provenance.dir).join("truth");
        for name in ["user_preferences.csv", "item_truth.csv"] {
            // A missing file is the stage's error to report (if its target reads it); here it is only absent.
            h.part(name, &std::fs::read(truth.join(name)).unwrap_or_default());
        }
    }
    match pretrained {
        Some(t) => {
            let t = t.to_kind(Kind::Float).contiguous();
            h.words("pretrained", t.size().iter().map(|&s| s as u64));
            let values = Vec::<f32>::try_from(&t.flatten(0, -1)).context("reading the pretrained item table")?;
            h.words("pretrained", values.iter().map(|v| u64::from(v.to_bits())));
        }
        None => h.part("pretrained", b"none"),
    }
    let hex: String = h.0.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
    Ok(Some(crate::loading::cache_dir().join("dsrm-stages").join(format!("{hex}.bin"))))
}

/// The key's hash, fed in named parts so that no two inputs can run into each other.
struct Key(Sha256);

impl Key {
    fn part(&mut self, name: &str, bytes: &[u8]) {
        self.0.update(name.as_bytes());
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    /// A sequence of numbers, streamed (the logs hold millions of rows).
    fn words(&mut self, name: &str, values: impl IntoIterator<Item = u64>) {
        self.0.update(name.as_bytes());
        let mut n = 0u64;
        for v in values {
            self.0.update(v.to_le_bytes());
            n += 1;
        }
        self.0.update(n.to_le_bytes());
    }
}

/// The training record kept beside a cached stage (`dsrm_timing.json` of the run that trained it).
fn record_path(cached: &Path) -> PathBuf {
    cached.with_extension("json")
}

/// Gives the run in `out` the cached stage when it has none yet: `out/dsrm.bin` linked to the cache, and
/// `out/dsrm_timing.json` the training's record with `reused_from` added (its seconds and updates are the
/// stage's, spent once where it was trained). Returns whether it did.
pub fn reuse(cached: &Path, out: &Path) -> Result<bool> {
    let saved = out.join(dsrm_denoise::stage::RUN_FILE);
    let Ok(record) = std::fs::read_to_string(record_path(cached)) else { return Ok(false) };
    if saved.exists() || !cached.is_file() {
        return Ok(false);
    }
    let mut record: serde_json::Value =
        serde_json::from_str(&record).with_context(|| format!("reading {}", record_path(cached).display()))?;
    record["reused_from"] = serde_json::json!(cached.display().to_string());
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    crate::cache_usage::mark_used(cached);
    crate::cache_usage::mark_used(&record_path(cached));
    link_or_copy(cached, &saved)?;
    dsrm_files::write_json(&out.join(dsrm_train::DSRM_TIMING_FILE), &record)?;
    Ok(true)
}

/// Keeps the stage the run in `out` trained (its `dsrm.bin` and `dsrm_timing.json`) as `cached`, unless the
/// cache has it already. The record is written last, so a stage without its record is never reused.
pub fn keep(cached: &Path, out: &Path) -> Result<()> {
    if record_path(cached).exists() {
        return Ok(());
    }
    let dir = cached.parent().context("a cache path has a folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let saved = out.join(dsrm_denoise::stage::RUN_FILE);
    let tmp = cached.with_extension(format!("bin.{}.tmp", std::process::id()));
    std::fs::copy(&saved, &tmp).with_context(|| format!("copying {} to {}", saved.display(), tmp.display()))?;
    std::fs::rename(&tmp, cached).with_context(|| format!("renaming {}", tmp.display()))?;
    let record = std::fs::read(out.join(dsrm_train::DSRM_TIMING_FILE))
        .with_context(|| format!("reading {}", out.join(dsrm_train::DSRM_TIMING_FILE).display()))?;
    dsrm_files::write_atomic(&record_path(cached), &record)?;
    Ok(())
}
