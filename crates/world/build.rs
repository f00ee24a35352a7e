//! The world-model code version: a sha256 over the sources that train and predict a user model — this crate,
//! `crates/nn` (networks, optimiser, checkpoints) and `Cargo.lock` (libtorch's binding) — so that a cached
//! ensemble is reused only by the code that trained it. Narrower than the run's code version (`crates/train`):
//! a change elsewhere does not retrain an hour-long ensemble. Exposed as `DSRM_WORLD_MODEL_CODE` (16 hex digits).

use std::path::Path;

include!("../files/build_support/source_hash.rs");

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let sources = [manifest.join("src"), manifest.join("Cargo.toml"), root.join("crates/nn")];
    let mut list = Vec::new();
    for source in &sources {
        match source.is_dir() {
            true => source_files(source, &mut list),
            false => list.push(source.clone()),
        }
    }
    list.push(root.join("Cargo.lock"));
    let hex = source_hash(&root, list);
    println!("cargo:rustc-env=DSRM_WORLD_MODEL_CODE={hex}");
    for source in &sources {
        println!("cargo:rerun-if-changed={}", source.display());
    }
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
}
