//! The file conventions every crate of the workspace shares, written once:
//!
//! * [`write_atomic`]: a temporary file in the same directory, fsync, then rename, so a killed run never
//!   leaves a truncated result that looks finished (checkpoints, results, run files).
//! * [`write_json`]: pretty JSON with a final newline, atomically.
//! * [`append_line`] / [`read_lines`]: JSON lines, each synced as it is appended (a line is either fully
//!   there or cut back on resume).
//!
//! Errors are `std::io::Error`s that name the file they concern, so callers can wrap them in their own
//! error type without losing the path.

use serde::Serialize;
use std::io::Write;
use std::path::Path;

fn named(path: &Path, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{}: {e}", path.display()))
}

fn with_path(path: &Path) -> impl FnOnce(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory (created if missing), fsync,
/// then rename over the target. The temporary name is unique to the process and the call, so threads writing
/// the same path at once (two runs caching the same model) each rename a whole file of their own.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(with_path(dir))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{call}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(with_path(&tmp))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(with_path(&tmp))?;
    std::fs::rename(&tmp, path).map_err(with_path(path))
}

/// Pretty JSON with a final newline, written atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| named(path, e))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Appends one JSON line to `path` (created if missing) and syncs it.
pub fn append_line<T: Serialize + ?Sized>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_string(value).map_err(|e| named(path, e))?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(with_path(path))?;
    f.write_all(line.as_bytes()).and_then(|_| f.sync_data()).map_err(with_path(path))
}

/// The non-empty lines of a JSON-lines file (none when it does not exist).
pub fn read_lines(path: &Path) -> std::io::Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(with_path(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_writing_the_same_file_at_once_each_leave_a_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        let contents: Vec<Vec<u8>> = (0..8u8).map(|t| vec![t; 1 << 16]).collect();
        std::thread::scope(|s| {
            for bytes in &contents {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(path, bytes).unwrap();
                    }
                });
            }
        });
        let written = std::fs::read(&path).unwrap();
        assert!(contents.contains(&written), "a torn file of {} bytes", written.len());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temporaries left behind");
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("a.json");
        write_json(&path, &serde_json::json!({"x": 1})).unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
    }

    #[test]
    fn json_lines_append_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        assert!(read_lines(&path).unwrap().is_empty());
        append_line(&path, &serde_json::json!({"epoch": 1})).unwrap();
        append_line(&path, &serde_json::json!({"epoch": 2})).unwrap();
        assert_eq!(read_lines(&path).unwrap(), vec![r#"{"epoch":1}"#, r#"{"epoch":2}"#]);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = write_atomic(&blocker.join("inside.json"), b"y").unwrap_err();
        assert!(err.to_string().contains("file"), "{err}");
    }
}
