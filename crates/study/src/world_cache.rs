//! The world-model cache: training an ensemble is a pure function of (training log, settings, seed, the code that
//! trains it), so one trained ensemble is kept under `<cache>/world-models/` and every later run on the same log,
//! settings and seed, by the same world-model code (`dsrm_world::MODEL_CODE_VERSION`), loads it instead of
//! training it again; a run directory gets it as a hard link. The plain MF world model
//! (`reward = "mf"`) is cached the same way, keyed by the code version too (it is cheap to refit, so any change
//! of code refits it), and loaded rather than refitted by every run of a study on the same log.

use crate::loading;
use anyhow::{Context, Result};
use dsrm_models::{MatrixFactorization, MfConfig};
use dsrm_sim::World;
use dsrm_world::EnsembleConfig;
use std::path::{Path, PathBuf};

/// Where the MF world model fitted on `world`'s log with `cfg` by this code is cached:
/// `<cache>/world-models/mf-<sha256 of (log fingerprint, settings, code version)>.bin`. The fit is a pure
/// function of the three (seeded SGD), so the cached model is the one a fresh fit gives, bit for bit.
pub fn cached_mf(world: &World, cfg: &MfConfig) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let data = dsrm_world::ensemble::DataId::of(world).context("fingerprinting the training log")?;
    let key = serde_json::to_vec(&("mf-world-model", &data.hash, cfg, dsrm_train::CODE_VERSION))?;
    let hex: String = Sha256::digest(key).iter().take(12).map(|b| format!("{b:02x}")).collect();
    Ok(loading::cache_dir().join("world-models").join(format!("mf-{hex}.bin")))
}

/// The MF fitted on `world.train_full` with `cfg`: loaded from `path` when it holds one, else fitted and
/// written there (atomically, so concurrent runs never read half a file). The second value says whether it was
/// loaded. A file that cannot be read back is refitted and replaced, with a line saying so.
pub fn fit_or_load_mf(
    world: &World,
    cfg: &MfConfig,
    path: &Path,
    note: &mut dyn FnMut(String),
) -> Result<(MatrixFactorization, bool)> {
    if let Ok(bytes) = std::fs::read(path) {
        match MatrixFactorization::from_bytes(&bytes) {
            Ok(mf) => {
                crate::cache_usage::mark_used(path);
                return Ok((mf, true));
            }
            Err(e) => note(format!("{}: {e}; fitting the MF world model again", path.display())),
        }
    }
    let mf = MatrixFactorization::fit(&world.train_full, cfg).context("fitting the MF world model")?;
    dsrm_files::write_atomic(path, &mf.to_bytes()).with_context(|| format!("caching {}", path.display()))?;
    Ok((mf, false))
}

/// Where the ensemble trained on `world`'s log with `cfg` and `seed` is cached:
/// `<cache>/world-models/<sha256 of (log fingerprint, settings, seed, world-model code)>.bin`. `workers` is left
/// out of the key: the members are independent, so it does not change the result.
pub fn cached_ensemble(world: &World, cfg: &EnsembleConfig, seed: u64) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let data = dsrm_world::ensemble::DataId::of(world).context("fingerprinting the training log")?;
    let key_cfg = EnsembleConfig { workers: 1, ..cfg.clone() };
    let key = serde_json::to_vec(&(&data.hash, &key_cfg, seed, dsrm_world::MODEL_CODE_VERSION))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use dsrm_sim::test_support::tiny_world;

    #[test]
    fn an_mf_world_model_is_fitted_once_then_loaded_bit_for_bit() {
        let world = tiny_world();
        let cfg = MfConfig { epochs: 3, ..Default::default() };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("world-models").join("mf.bin");
        let mut notes = Vec::new();
        let (fitted, loaded) = fit_or_load_mf(world, &cfg, &path, &mut |l| notes.push(l)).unwrap();
        assert!(!loaded && path.exists());
        assert_eq!(fitted, MatrixFactorization::fit(&world.train_full, &cfg).unwrap());
        let (again, loaded) = fit_or_load_mf(world, &cfg, &path, &mut |l| notes.push(l)).unwrap();
        assert!(loaded);
        assert_eq!(again, fitted);
        assert!(notes.is_empty(), "{notes:?}");
        // A damaged file is fitted again and replaced, with a line saying so.
        std::fs::write(&path, b"half a file").unwrap();
        let (refit, loaded) = fit_or_load_mf(world, &cfg, &path, &mut |l| notes.push(l)).unwrap();
        assert!(!loaded && refit == fitted);
        assert!(notes.len() == 1 && notes[0].contains("fitting the MF world model again"), "{notes:?}");
        assert_eq!(std::fs::read(&path).unwrap(), fitted.to_bytes());
    }

    #[test]
    fn the_mf_cache_key_follows_the_settings_and_the_log() {
        let world = tiny_world();
        let cfg = MfConfig::default();
        let key = cached_mf(world, &cfg).unwrap();
        assert_eq!(key, cached_mf(world, &cfg).unwrap());
        assert_ne!(key, cached_mf(world, &MfConfig { dim: cfg.dim + 1, ..cfg.clone() }).unwrap());
        let served = world.with_logged_episodes([(0u32, &[1u32, 2][..], &[1.0, 0.5][..])]);
        assert_ne!(key, cached_mf(&served, &cfg).unwrap());
    }
}
