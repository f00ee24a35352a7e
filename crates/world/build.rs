//! The world-model code version: a sha256 over the sources that train and predict a user model — this crate,
//! `crates/nn` (networks, optimiser, checkpoints) and `Cargo.lock` (libtorch's binding) — so that a cached
//! ensemble is reused only by the code that trained it. Narrower than the run's code version (`crates/train`):
//! a change elsewhere does not retrain an hour-long ensemble. Exposed as `DSRM_WORLD_MODEL_CODE` (16 hex digits).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            files(&path, out);
        } else if !name.ends_with(".md") {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let sources = [manifest.join("src"), manifest.join("Cargo.toml"), root.join("crates/nn")];
    let mut list = Vec::new();
    for source in &sources {
        match source.is_dir() {
            true => files(source, &mut list),
            false => list.push(source.clone()),
        }
    }
    list.push(root.join("Cargo.lock"));
    list.sort();
    let mut hash = Sha256::new();
    for path in &list {
        let rel = path.strip_prefix(&root).unwrap_or(path);
        hash.update(rel.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update(std::fs::read(path).unwrap_or_default());
        hash.update([0]);
    }
    let hex: String = hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=DSRM_WORLD_MODEL_CODE={hex}");
    for source in &sources {
        println!("cargo:rerun-if-changed={}", source.display());
    }
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
}
