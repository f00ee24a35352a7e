// The source hash of the build scripts that name code versions (`crates/train/build.rs`: a run's code version;
// `crates/world/build.rs`: the world-model code), written once and `include!`d by both. Under `crates/`, so it is
// part of the run's code version itself.

/// Every file under `dir` except Markdown, hidden entries and `target/`, appended to `out`.
fn source_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            source_files(&path, out);
        } else if !name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The first 16 hex digits of a sha256 over `files` (sorted): each file's path relative to `root`, then its bytes.
fn source_hash(root: &std::path::Path, mut files: Vec<std::path::PathBuf>) -> String {
    use sha2::{Digest, Sha256};
    files.sort();
    let mut hash = Sha256::new();
    for path in &files {
        let rel = path.strip_prefix(root).unwrap_or(path);
        hash.update(rel.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update(std::fs::read(path).unwrap_or_default());
        hash.update([0]);
    }
    hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}
