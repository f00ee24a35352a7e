//! Every file that `include_str!` / `include_bytes!` compiles into the binary from outside `crates/` (or
//! Markdown, which the code version otherwise skips) is listed in `compiled_in.txt`, so the code version covers it.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The file each `include_str!("…")` / `include_bytes!("…")` of `text` (in `file`, of the crate in `manifest`)
/// names: a plain literal is relative to the file, `concat!(env!("CARGO_MANIFEST_DIR"), "…")` to the crate.
fn includes(text: &str, file: &Path, manifest: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for macro_name in ["include_str!(", "include_bytes!("] {
        for (at, _) in text.match_indices(macro_name) {
            let rest = &text[at + macro_name.len()..];
            let (base, rest) = match rest.strip_prefix("concat!(env!(\"CARGO_MANIFEST_DIR\"),") {
                Some(r) => (manifest.to_path_buf(), r.trim_start()),
                None => (file.parent().unwrap().to_path_buf(), rest),
            };
            let Some(lit) = rest.strip_prefix('"') else { continue };
            let Some(end) = lit.find('"') else { continue };
            out.push(base.join(lit[..end].trim_start_matches('/')));
        }
    }
    out
}

#[test]
fn every_compiled_in_file_is_part_of_the_code_version() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..").canonicalize().unwrap();
    let listed: Vec<PathBuf> = std::fs::read_to_string(manifest.join("compiled_in.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| root.join(l).canonicalize().unwrap_or_else(|e| panic!("compiled_in.txt: {l}: {e}")))
        .collect();
    let mut sources = Vec::new();
    rust_files(&root.join("crates"), &mut sources);
    let mut found = 0;
    for file in &sources {
        if file.components().any(|c| c.as_os_str() == "tests") {
            continue; // test fixtures are not in the binary
        }
        let text = std::fs::read_to_string(file).unwrap();
        let crate_dir = file.ancestors().find(|d| d.join("Cargo.toml").exists()).unwrap();
        for path in includes(&text, file, crate_dir) {
            let Ok(path) = path.canonicalize() else { continue }; // a macro named in a comment or a string
            found += 1;
            let outside = !path.starts_with(root.join("crates"));
            let markdown = path.extension().is_some_and(|e| e == "md");
            if outside || markdown {
                assert!(
                    listed.contains(&path),
                    "{} compiles in {} but crates/train/compiled_in.txt lacks it",
                    file.display(),
                    path.display()
                );
            }
        }
    }
    assert!(found >= 6, "the scan found {found} compiled-in files: it no longer sees them");
}
