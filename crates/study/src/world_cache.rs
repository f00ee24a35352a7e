//! The world-model cache: training an ensemble is a pure function of (training log, settings, seed), so one
//! trained ensemble is kept under `<cache>/world-models/` and every later run on the same log, settings and
//! seed loads it instead of training it again; a run directory gets it as a hard link.

use crate::loading;
use anyhow::{Context, Result};
use dsrm_sim::World;
use dsrm_world::EnsembleConfig;
use std::path::{Path, PathBuf};

/// Where the ensemble trained on `world`'s log with `cfg` and `seed` is cached:
/// `<cache>/world-models/<sha256 of (log fingerprint, settings, seed)>.bin`. `workers` is left out of the key:
/// the members are independent, so it does not change the result.
pub fn cached_ensemble(world: &World, cfg: &EnsembleConfig, seed: u64) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let data = dsrm_world::ensemble::DataId::of(world).context("fingerprinting the training log")?;
    let key_cfg = EnsembleConfig { workers: 1, ..cfg.clone() };
    let key = serde_json::to_vec(&(&data.hash, &key_cfg, seed))?;
    let hex: String = Sha256::digest(key).iter().take(12).map(|b| format!("{b:02x}")).collect();
    Ok(loading::cache_dir().join("world-models").join(format!("{hex}.bin")))
}

/// `to` becomes the same file as `from` (a hard link; a copy across file systems), replacing what was there.
pub fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
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
