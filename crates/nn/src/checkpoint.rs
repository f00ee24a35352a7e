//! Atomic, checksummed checkpoints: named tensors plus JSON metadata in one file.
//!
//! Layout: `DSRMCKPT1\n`, u64 LE metadata length, metadata (JSON), u64 LE tensor-blob length, the tensors
//! (libtorch's multi-tensor format), and a sha256 of everything before it. The file is written to a
//! temporary name in the same directory, synced, then renamed over the target: a run killed mid-write
//! leaves the previous checkpoint intact, and a damaged file is refused on load.

use crate::{NnError, Result};
use sha2::{Digest, Sha256};
use std::io::Cursor;
use std::path::Path;
use tch::Tensor;

const MAGIC: &[u8] = b"DSRMCKPT1\n";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NnError + '_ {
    move |source| NnError::Io { path: path.to_path_buf(), source }
}

/// Writes `tensors` and `meta` to `path` atomically.
pub fn save(path: &Path, tensors: &[(String, Tensor)], meta: &serde_json::Value) -> Result<()> {
    let mut blob = Vec::new();
    Tensor::save_multi_to_stream(tensors, &mut blob)?;
    let meta = serde_json::to_vec(meta).map_err(|e| NnError::Corrupt { path: path.into(), detail: e.to_string() })?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + 16 + meta.len() + blob.len() + 32);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&meta);
    bytes.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&blob);
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);

    dsrm_files::write_atomic(path, &bytes).map_err(NnError::Write)
}

/// Reads a checkpoint written by [`save`], verifying its checksum.
pub fn load(path: &Path) -> Result<(Vec<(String, Tensor)>, serde_json::Value)> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let corrupt = |detail: &str| NnError::Corrupt { path: path.into(), detail: detail.into() };
    if bytes.len() < MAGIC.len() + 16 + 32 || !bytes.starts_with(MAGIC) {
        return Err(corrupt("not a dsrm checkpoint (bad header)"));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(corrupt("checksum mismatch"));
    }
    let read_len = |at: usize| -> Result<usize> {
        let raw: [u8; 8] = body.get(at..at + 8).and_then(|s| s.try_into().ok()).ok_or_else(|| corrupt("truncated"))?;
        Ok(u64::from_le_bytes(raw) as usize)
    };
    let mut at = MAGIC.len();
    let meta_len = read_len(at)?;
    at += 8;
    let meta = body.get(at..at + meta_len).ok_or_else(|| corrupt("truncated metadata"))?;
    let meta: serde_json::Value = serde_json::from_slice(meta).map_err(|e| corrupt(&e.to_string()))?;
    at += meta_len;
    let blob_len = read_len(at)?;
    at += 8;
    let blob = body.get(at..at + blob_len).ok_or_else(|| corrupt("truncated tensors"))?;
    let tensors = Tensor::load_multi_from_stream(Cursor::new(blob))?;
    Ok((tensors, meta))
}

/// The named variables of a var store, prefixed (`prefix/name`), for [`save`].
pub fn named(prefix: &str, vs: &tch::nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> =
        vs.variables().into_iter().map(|(k, v)| (format!("{prefix}/{k}"), v)).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Copies the tensors saved under `prefix/` back into `vs` (names and shapes must match).
pub fn restore(prefix: &str, vs: &mut tch::nn::VarStore, tensors: &[(String, Tensor)]) -> Result<()> {
    let wanted = format!("{prefix}/");
    let vars = vs.variables();
    let mut found = 0;
    tch::no_grad(|| -> Result<()> {
        for (name, saved) in tensors.iter().filter(|(n, _)| n.starts_with(&wanted)) {
            let key = &name[wanted.len()..];
            let mut target = vars.get(key).map(|t| t.shallow_clone()).ok_or_else(|| NnError::Corrupt {
                path: "<checkpoint>".into(),
                detail: format!("unknown variable {name}"),
            })?;
            target.f_copy_(saved)?;
            found += 1;
        }
        Ok(())
    })?;
    if found != vars.len() {
        return Err(NnError::Corrupt {
            path: "<checkpoint>".into(),
            detail: format!("{found} of {} variables under {prefix}/", vars.len()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    #[test]
    fn round_trip_and_corruption_is_refused() {
        let _torch = crate::runtime::exclusive();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.bin");
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let _l = nn::linear(vs.root() / "a", 3, 2, Default::default());
        save(&path, &named("policy", &vs), &serde_json::json!({"epoch": 7})).unwrap();

        let mut other = nn::VarStore::new(Device::Cpu);
        let _l2 = nn::linear(other.root() / "a", 3, 2, Default::default());
        let (tensors, meta) = load(&path).unwrap();
        assert_eq!(meta["epoch"], 7);
        restore("policy", &mut other, &tensors).unwrap();
        for (k, v) in vs.variables() {
            assert!(v.equal(&other.variables()[&k]), "{k}");
        }
        let x = Tensor::ones([1, 3], (Kind::Float, Device::Cpu));
        assert!(x.matmul(&vs.variables()["a.weight"].tr()).equal(&x.matmul(&other.variables()["a.weight"].tr())));

        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("checksum"));
    }
}
