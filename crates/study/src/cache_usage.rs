//! What the cache folder (`DSRM_CACHE` or `./.cache/dsrm`) holds, and pruning what no run has used for a while.
//!
//! Every cache here is keyed by a hash of its inputs and of the code version, so a new build never reads an old
//! build's entries — and never removes them either: the parsed data alone is about 750 MB per code version of
//! full-size KuaiRec. Each cache marks an entry as used when it reads it ([`mark_used`]: the entry's modification
//! time becomes now), so "last used" is the entry's modification time and
//!
//! ```text
//! list  -> per kind: entries, bytes, the newest and the oldest last use
//! prune -> remove every entry last used more than `unused_for` ago (a stage's .bin and its record together)
//! ```
//!
//! Removing an entry is always safe: it is computed again when next needed, to the same bytes. A run folder that
//! holds an entry as a hard link keeps its own copy.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The kinds of cached things, each in its own place under the cache folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `data/kuairec-<key>.bin`: a parsed KuaiRec-format directory (`data_cache`).
    ParsedData,
    /// `world-models/*.bin`: fitted MF world models and trained DeepFM ensembles (`world_cache`).
    WorldModel,
    /// `dsrm-stages/<key>.{bin,json}`: trained DSRM stages with their training records (`stage_cache`).
    DsrmStage,
    /// `synthetic-kuairec-<size>-seed<s>/`: generated synthetic KuaiRec sets.
    SyntheticSet,
    /// `fidelity-synthetic-<key>/`: the fidelity study's generated sets.
    FidelitySet,
    /// Anything else found in the folder (listed, never pruned).
    Other,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::ParsedData => "parsed data",
            Kind::WorldModel => "world models",
            Kind::DsrmStage => "DSRM stages",
            Kind::SyntheticSet => "synthetic sets",
            Kind::FidelitySet => "fidelity sets",
            Kind::Other => "other",
        }
    }
}

/// One cached thing: a file, a stage's pair of files, or a generated data set's folder.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    /// What is removed: one path, or a stage's `.bin` and `.json`.
    pub paths: Vec<PathBuf>,
    pub bytes: u64,
    pub last_used: SystemTime,
}

/// Marks `path` (a cached file or a generated set's folder) as used now. Best effort: a cache that cannot set
/// the time still works, its entry only looks older to `prune`.
pub fn mark_used(path: &Path) {
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Every entry under `root` (none when the folder does not exist), sorted by kind then path.
pub fn inventory(root: &Path) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let Ok(top) = std::fs::read_dir(root) else { return Ok(entries) };
    for item in top {
        let path = item.with_context(|| format!("listing {}", root.display()))?.path();
        let name = file_name(&path);
        let kind = match name.as_str() {
            "data" => Some(Kind::ParsedData),
            "world-models" => Some(Kind::WorldModel),
            "dsrm-stages" => Some(Kind::DsrmStage),
            _ => None,
        };
        match kind {
            Some(kind) if path.is_dir() => files_of(kind, &path, &mut entries)?,
            _ => {
                let kind = if name.starts_with("synthetic-kuairec-") && path.is_dir() {
                    Kind::SyntheticSet
                } else if name.starts_with("fidelity-synthetic-") && path.is_dir() {
                    Kind::FidelitySet
                } else {
                    Kind::Other
                };
                entries.push(Entry { kind, bytes: size_of(&path)?, last_used: modified(&path)?, paths: vec![path] });
            }
        }
    }
    entries.sort_by(|a, b| (a.kind, &a.paths).cmp(&(b.kind, &b.paths)));
    Ok(entries)
}

/// The files of one kind's folder; a stage's `<key>.bin` and `<key>.json` are one entry (used when either was).
fn files_of(kind: Kind, dir: &Path, out: &mut Vec<Entry>) -> Result<()> {
    let mut by_stem: std::collections::BTreeMap<String, Entry> = Default::default();
    for item in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = item.with_context(|| format!("listing {}", dir.display()))?.path();
        let name = file_name(&path);
        let stem = match kind {
            Kind::DsrmStage => name.split('.').next().unwrap_or(&name).to_string(),
            _ => name.clone(),
        };
        let (bytes, last_used) = (size_of(&path)?, modified(&path)?);
        let entry = by_stem.entry(stem).or_insert(Entry { kind, paths: Vec::new(), bytes: 0, last_used });
        entry.paths.push(path);
        entry.bytes += bytes;
        entry.last_used = entry.last_used.max(last_used);
    }
    for mut entry in by_stem.into_values() {
        // The record first: a stage without its record is never reused, so a reader racing the removal trains.
        entry.paths.sort_by_key(|p| p.extension().is_some_and(|e| e == "bin"));
        out.push(entry);
    }
    Ok(())
}

/// Removes (or with `dry_run` only returns) every prunable entry last used more than `unused_for` before `now`.
pub fn prune(root: &Path, unused_for: Duration, now: SystemTime, dry_run: bool) -> Result<Vec<Entry>> {
    let stale: Vec<Entry> = inventory(root)?
        .into_iter()
        .filter(|e| e.kind != Kind::Other)
        .filter(|e| now.duration_since(e.last_used).unwrap_or_default() > unused_for)
        .collect();
    if !dry_run {
        for entry in &stale {
            for path in &entry.paths {
                let removed = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
                match removed {
                    Ok(()) => {}
                    // Another prune (or a by-hand clean) got there first.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
                }
            }
        }
    }
    Ok(stale)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn modified(path: &Path) -> Result<SystemTime> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("reading the time of {}", path.display()))
}

/// Bytes of a file, or of everything under a folder.
fn size_of(path: &Path) -> Result<u64> {
    let meta = std::fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for item in std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))? {
        total += size_of(&item.with_context(|| format!("listing {}", path.display()))?.path())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn write(path: &Path, bytes: usize, age: Duration) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![7u8; bytes]).unwrap();
        age_of(path, age);
    }

    fn age_of(path: &Path, age: Duration) {
        std::fs::File::open(path).unwrap().set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn prune_removes_what_was_not_used_within_the_window_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join("data/kuairec-old.bin"), 100, 30 * DAY);
        write(&root.join("data/kuairec-new.bin"), 50, DAY);
        write(&root.join("world-models/mf-old.bin"), 10, 20 * DAY);
        // A stage's pair: the record was touched recently, so the pair is recent.
        write(&root.join("dsrm-stages/abc.bin"), 40, 30 * DAY);
        write(&root.join("dsrm-stages/abc.json"), 2, 2 * DAY);
        write(&root.join("dsrm-stages/old.bin"), 40, 30 * DAY);
        write(&root.join("dsrm-stages/old.json"), 2, 30 * DAY);
        write(&root.join("synthetic-kuairec-tiny-seed0/small_matrix.csv"), 30, 30 * DAY);
        age_of(&root.join("synthetic-kuairec-tiny-seed0"), 30 * DAY);
        write(&root.join("notes.txt"), 1, 90 * DAY);

        let listed = inventory(root).unwrap();
        assert_eq!(listed.len(), 7, "{listed:?}");
        let stage = listed.iter().find(|e| e.paths.iter().any(|p| p.ends_with("abc.bin"))).unwrap();
        assert_eq!((stage.kind, stage.bytes, stage.paths.len()), (Kind::DsrmStage, 42, 2));
        let set = listed.iter().find(|e| e.kind == Kind::SyntheticSet).unwrap();
        assert_eq!(set.bytes, 30);

        let before: Vec<PathBuf> = listed.iter().flat_map(|e| e.paths.clone()).collect();
        let would = prune(root, 7 * DAY, SystemTime::now(), true).unwrap();
        assert_eq!(would.len(), 4);
        assert!(before.iter().all(|p| p.exists()), "a dry run removes nothing");

        let removed = prune(root, 7 * DAY, SystemTime::now(), false).unwrap();
        let gone: Vec<String> = removed.iter().flat_map(|e| e.paths.iter().map(|p| file_name(p))).collect();
        assert_eq!(gone.len(), 5, "{gone:?}");
        for kept in ["data/kuairec-new.bin", "dsrm-stages/abc.bin", "dsrm-stages/abc.json", "notes.txt"] {
            assert!(root.join(kept).exists(), "{kept} was kept");
        }
        for pruned in ["data/kuairec-old.bin", "world-models/mf-old.bin", "dsrm-stages/old.bin", "dsrm-stages/old.json"]
        {
            assert!(!root.join(pruned).exists(), "{pruned} was removed");
        }
        assert!(!root.join("synthetic-kuairec-tiny-seed0").exists());
        assert_eq!(inventory(root).unwrap().len(), 3);
    }

    #[test]
    fn marking_an_entry_used_keeps_it_from_prune() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("world-models/mf-x.bin");
        write(&entry, 10, 30 * DAY);
        mark_used(&entry);
        assert!(prune(dir.path(), 7 * DAY, SystemTime::now(), false).unwrap().is_empty());
        assert!(entry.exists());
        // A folder that does not exist holds nothing.
        assert!(inventory(&dir.path().join("absent")).unwrap().is_empty());
    }
}
