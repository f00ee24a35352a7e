//! The code version: a sha256 over the sources that decide results — every file under `crates/` except
//! Markdown, plus `Cargo.lock`, `rust-toolchain.toml` and the files outside `crates/` compiled into the binary
//! (`compiled_in.txt`: the study presets, the synthetic generator's categories, the text it writes beside its data)
//! — computed at build time, so it needs no git checkout. Other docs and configs are not part of it (a run
//! records its own config). Exposed as `DSRM_CODE_VERSION` (the first 16 hex digits).

use std::path::Path;

include!("../files/build_support/source_hash.rs");

/// The files outside `crates/` (or Markdown inside it) compiled into the binary, from `compiled_in.txt`.
fn compiled_in(manifest: &Path) -> Vec<String> {
    std::fs::read_to_string(manifest.join("compiled_in.txt"))
        .expect("crates/train/compiled_in.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let compiled = compiled_in(manifest);
    let crates = root.join("crates");
    let mut list = Vec::new();
    source_files(&crates, &mut list);
    list.push(root.join("Cargo.lock"));
    list.push(root.join("rust-toolchain.toml"));
    list.extend(compiled.iter().map(|rel| root.join(rel)));
    let hex = source_hash(&root, list);
    println!("cargo:rustc-env=DSRM_CODE_VERSION={hex}");
    println!("cargo:rerun-if-changed={}", crates.display());
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
    println!("cargo:rerun-if-changed={}", root.join("rust-toolchain.toml").display());
    for rel in &compiled {
        println!("cargo:rerun-if-changed={}", root.join(rel).display());
    }
}
