//! Helpers shared by the integration tests: the real shipped files, and small valid KuaiRec logs written in
//! the exact official format.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `shared/data` beside the repository (the real, shipped files).
pub const SHARED_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data");

/// The real data directory `sub` (e.g. `kuairec`), or `None` with a printed note when it is not there.
pub fn real_dir(sub: &str) -> Option<PathBuf> {
    let dir = Path::new(SHARED_DATA).join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: {} not found", dir.display());
        None
    }
}

/// The KuaiRec log header.
pub const LOG_HEADER: &str = "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio";

/// One log line in the official format: the Beijing-time rendering of `ts_ms`, its date, and the ratio.
pub fn log_line(user: u32, video: u32, play: i64, duration: i64, ts_ms: i64) -> String {
    let utc = chrono::DateTime::from_timestamp_millis(ts_ms).expect("valid timestamp");
    let beijing = utc.naive_utc() + chrono::Duration::hours(8);
    let time = beijing.format("%Y-%m-%d %H:%M:%S%.3f");
    let date = beijing.format("%Y%m%d");
    let ratio = if duration == 0 { "inf".to_string() } else { format!("{:.6}", play as f64 / duration as f64) };
    format!("{user},{video},{play},{duration},{time},{date},{}.{:03},{ratio}", ts_ms / 1000, ts_ms % 1000)
}

/// A small, valid matrix over users `0..n_users` and videos `0..n_videos` (every pair once).
pub fn small_matrix(n_users: u32, n_videos: u32) -> String {
    let mut out = format!("{LOG_HEADER}\n");
    for u in 0..n_users {
        for v in 0..n_videos {
            let ts = 1_593_878_903_438 + i64::from(u * 1000 + v) * 7_919;
            out.push_str(&log_line(u, v, 1_000 + i64::from(v) * 37, 10_867 + i64::from(u), ts));
            out.push('\n');
        }
    }
    out
}

/// A temporary KuaiRec directory: the real side tables plus small valid logs.
pub fn kuairec_dir(with_caption: bool) -> Option<tempfile::TempDir> {
    let real = real_dir("kuairec")?;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut names = vec!["item_categories.csv", "user_features.csv"];
    if with_caption {
        names.push("kuairec_caption_category.csv");
    }
    for name in names {
        std::fs::copy(real.join(name), dir.path().join(name)).expect("copy");
    }
    write(dir.path(), "small_matrix.csv", &small_matrix(4, 5));
    write(dir.path(), "big_matrix.csv", &small_matrix(6, 7));
    Some(dir)
}

/// Writes `content` to `dir/name`.
pub fn write(dir: &Path, name: &str, content: &str) {
    write_bytes(dir, name, content.as_bytes());
}

/// Writes raw bytes to `dir/name`.
pub fn write_bytes(dir: &Path, name: &str, content: &[u8]) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, content).expect("write");
}

/// Replaces 1-based `line` of `dir/name` with `new`.
pub fn replace_line(dir: &Path, name: &str, line: usize, new: &str) {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).expect("read");
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines[line - 1] = new;
    std::fs::write(path, lines.join("\n")).expect("write");
}

/// Asserts that `message` contains every one of `parts`.
#[track_caller]
pub fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "expected {part:?} in:\n{message}");
    }
}
