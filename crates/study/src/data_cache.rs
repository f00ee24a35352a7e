//! The parsed-KuaiRec cache. Every run reads its data set before it trains; on KuaiRec (and the full-size
//! synthetic set) that is 1.5 GB of CSV, about 6 of a run's 9 seconds of set-up on one core, the same parse in
//! every run of a study. What the parse gives is a pure function of the directory's bytes, the load options and
//! the code that parses them, so it is kept under `<cache>/data/kuairec-<key>.bin` and read back by later runs:
//!
//! ```text
//! key   = sha256(every file under the directory: relative path and sha256 of its bytes; the directory, resolved
//!                and as given (the provenance names files by it); the load options; the code version)
//! hit   -> the columns, tag lists and provenance as the parse gave them, bit for bit
//! miss  -> parse, then write the entry atomically (concurrent runs never read half a file)
//! ```
//!
//! Any change of any file under the directory, of the options or of the code is a miss, so an entry made from
//! other data is never used. A file that cannot be read back (truncated, another format) is parsed again and
//! replaced, with a line saying so. The folder may be deleted at any time.

use anyhow::{bail, Context, Result};
use dsrm_data::kuairec::{self, LoadOptions};
use dsrm_data::{KuaiRec, KuaiRecLog, Provenance};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The first bytes of an entry: the format (bump it when the layout changes).
const MAGIC: &[u8; 8] = b"DSRMKR01";

/// Where the parse of `dir` under `opts` by this code is (or would be) cached.
pub fn entry_path(cache: &Path, dir: &Path, opts: &LoadOptions) -> Result<PathBuf> {
    let resolved = std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let mut files = Vec::new();
    list_files(&resolved, &resolved, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    // The directory as given is in the key too: the provenance names the files by it ("data/x.csv" is not
    // "/abs/data/x.csv"), so each spelling keeps the provenance its own parse writes.
    hasher.update(serde_json::to_vec(&(
        "kuairec-parsed",
        resolved.display().to_string(),
        dir.display().to_string(),
        opts.duplicate_policy.name(),
        opts.check_official_counts,
        dsrm_train::CODE_VERSION,
    ))?);
    for (relative, path) in files {
        let sha = dsrm_data::provenance::sha256_file(&path)?;
        hasher.update(serde_json::to_vec(&(relative, sha))?);
    }
    let hex: String = hasher.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
    Ok(cache.join("data").join(format!("kuairec-{hex}.bin")))
}

/// Every regular file under `dir` (following the official layout's subfolders), as (relative path, path).
fn list_files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            list_files(root, &path, out)?;
        } else if path.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            out.push((relative, path));
        }
    }
    Ok(())
}

/// KuaiRec from `dir`: read from the cache when this data, these options and this code made an entry, else parsed
/// and cached. The second value says whether it was read from the cache.
pub fn load_kuairec(
    cache: &Path,
    dir: &Path,
    opts: &LoadOptions,
    note: &mut dyn FnMut(String),
) -> Result<(KuaiRec, bool)> {
    // Without a key (a missing directory, an unreadable file) the parse runs alone and says what is wrong.
    let Ok(path) = entry_path(cache, dir, opts) else { return Ok((kuairec::load(dir, opts)?, false)) };
    if let Ok(bytes) = std::fs::read(&path) {
        match decode(&bytes) {
            Ok(data) => {
                crate::cache_usage::mark_used(&path);
                return Ok((data, true));
            }
            Err(e) => note(format!("{}: {e:#}; parsing the data again", path.display())),
        }
    }
    let data = kuairec::load(dir, opts)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    dsrm_files::write_atomic(&path, &encode(&data)?).with_context(|| format!("caching {}", path.display()))?;
    Ok((data, false))
}

/// What an entry holds besides the two logs' columns.
#[derive(Serialize, Deserialize)]
struct Header {
    item_tags: Vec<Vec<i32>>,
    n_feature_users: usize,
    provenance: Provenance,
    small_rows: usize,
    big_rows: usize,
}

/// MAGIC, the header's length (u64) and JSON, then each log's seven columns, little-endian.
fn encode(data: &KuaiRec) -> Result<Vec<u8>> {
    let header = serde_json::to_vec(&Header {
        item_tags: data.item_tags.clone(),
        n_feature_users: data.n_feature_users,
        provenance: data.provenance.clone(),
        small_rows: data.small.len(),
        big_rows: data.big.len(),
    })?;
    let rows = data.small.len() + data.big.len();
    let mut out = Vec::with_capacity(16 + header.len() + rows * 44);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for log in [&data.small, &data.big] {
        log.user_id.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        log.video_id.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        log.play_duration.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        log.video_duration.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        log.date.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        log.timestamp.iter().for_each(|v| out.extend_from_slice(&v.to_bits().to_le_bytes()));
        log.watch_ratio.iter().for_each(|v| out.extend_from_slice(&v.to_bits().to_le_bytes()));
    }
    Ok(out)
}

/// Reads fixed-size little-endian values off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            bail!("the entry ends early (truncated)");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn column<const W: usize, T>(&mut self, rows: usize, from: fn([u8; W]) -> T) -> Result<Vec<T>> {
        let bytes = self.take(rows * W)?;
        Ok(bytes.chunks_exact(W).map(|c| from(c.try_into().expect("chunks of W bytes"))).collect())
    }

    fn log(&mut self, rows: usize) -> Result<KuaiRecLog> {
        Ok(KuaiRecLog {
            user_id: self.column(rows, u32::from_le_bytes)?,
            video_id: self.column(rows, u32::from_le_bytes)?,
            play_duration: self.column(rows, i64::from_le_bytes)?,
            video_duration: self.column(rows, i64::from_le_bytes)?,
            date: self.column(rows, u32::from_le_bytes)?,
            timestamp: self.column(rows, |b| f64::from_bits(u64::from_le_bytes(b)))?,
            watch_ratio: self.column(rows, |b| f64::from_bits(u64::from_le_bytes(b)))?,
        })
    }
}

fn decode(bytes: &[u8]) -> Result<KuaiRec> {
    let mut r = Reader(bytes);
    if r.take(MAGIC.len())? != MAGIC {
        bail!("not a parsed-KuaiRec entry of this format");
    }
    let len = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes")) as usize;
    let header: Header = serde_json::from_slice(r.take(len)?).context("the entry's header")?;
    let small = r.log(header.small_rows)?;
    let big = r.log(header.big_rows)?;
    if !r.0.is_empty() {
        bail!("{} bytes after the last column", r.0.len());
    }
    Ok(KuaiRec {
        small,
        big,
        item_tags: header.item_tags,
        n_feature_users: header.n_feature_users,
        provenance: header.provenance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_set(dir: &Path) {
        let cfg = dsrm_data::synth::SynthConfig::for_size(dsrm_data::synth::SynthSize::Tiny);
        dsrm_data::synth::generate(&cfg, 3, dir, &mut |_: &str, _: u64, _: u64| {}).unwrap();
    }

    fn same(a: &KuaiRec, b: &KuaiRec) -> bool {
        // NaN timestamps and watch ratios compare by their bits.
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let log = |x: &KuaiRecLog, y: &KuaiRecLog| {
            (&x.user_id, &x.video_id, &x.play_duration, &x.video_duration, &x.date)
                == (&y.user_id, &y.video_id, &y.play_duration, &y.video_duration, &y.date)
                && bits(&x.timestamp) == bits(&y.timestamp)
                && bits(&x.watch_ratio) == bits(&y.watch_ratio)
        };
        log(&a.small, &b.small)
            && log(&a.big, &b.big)
            && a.item_tags == b.item_tags
            && a.n_feature_users == b.n_feature_users
            && a.provenance == b.provenance
    }

    #[test]
    fn a_cached_parse_is_the_parse_and_any_change_of_the_data_misses() {
        let (data_dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        tiny_set(data_dir.path());
        let opts = LoadOptions { check_official_counts: false, ..Default::default() };
        let mut notes = Vec::new();
        let parsed = kuairec::load(data_dir.path(), &opts).unwrap();
        let (first, hit) = load_kuairec(cache.path(), data_dir.path(), &opts, &mut |n| notes.push(n)).unwrap();
        assert!(!hit && same(&first, &parsed));
        let (second, hit) = load_kuairec(cache.path(), data_dir.path(), &opts, &mut |n| notes.push(n)).unwrap();
        assert!(hit, "the second load reads the entry");
        assert!(same(&second, &parsed), "bit for bit the parse");
        // The same directory spelled another way keeps the provenance its own parse writes.
        let spelled = data_dir.path().join(".");
        let (other, hit) = load_kuairec(cache.path(), &spelled, &opts, &mut |n| notes.push(n)).unwrap();
        assert!(!hit, "another spelling, another entry");
        assert!(same(&other, &kuairec::load(&spelled, &opts).unwrap()));
        assert_ne!(other.provenance, parsed.provenance, "its files are named by the spelling");
        // Other options, or one changed byte in any file (here the truth, which the parse does not even read),
        // make another key.
        let key = entry_path(cache.path(), data_dir.path(), &opts).unwrap();
        let dedup = LoadOptions { duplicate_policy: dsrm_data::DuplicatePolicy::DropExact, ..opts };
        assert_ne!(key, entry_path(cache.path(), data_dir.path(), &dedup).unwrap());
        let truth = data_dir.path().join("truth").join("README.md");
        let mut text = std::fs::read_to_string(&truth).unwrap();
        text.push('\n');
        std::fs::write(&truth, text).unwrap();
        assert_ne!(key, entry_path(cache.path(), data_dir.path(), &opts).unwrap());
        // A damaged entry is parsed again and replaced, with a note.
        let key = entry_path(cache.path(), data_dir.path(), &opts).unwrap();
        load_kuairec(cache.path(), data_dir.path(), &opts, &mut |n| notes.push(n)).unwrap();
        let bytes = std::fs::read(&key).unwrap();
        std::fs::write(&key, &bytes[..bytes.len() - 3]).unwrap();
        let (again, hit) = load_kuairec(cache.path(), data_dir.path(), &opts, &mut |n| notes.push(n)).unwrap();
        assert!(!hit && same(&again, &parsed));
        assert!(notes.iter().any(|n| n.contains("truncated") && n.contains("parsing the data again")), "{notes:?}");
        assert_eq!(std::fs::read(&key).unwrap(), bytes, "the entry is written again whole");
    }
}
