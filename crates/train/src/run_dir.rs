//! The files of a training run directory, written so that a killed run can always be resumed:
//!
//! * `log.jsonl`: one JSON line per finished epoch (deterministic: same config and seed, same bytes).
//! * `timing.jsonl`: wall-clock time and throughput per epoch (kept apart so `log.jsonl` stays reproducible).
//! * `code_version`: the [`crate::CODE_VERSION`] of the build that made the run (a resume by other code is
//!   refused, and `dsrm experiment` never reuses such a run).
//! * `checkpoint.bin`: everything needed to continue after its epoch (atomic, checksummed; `dsrm_nn::checkpoint`).
//! * `metrics.json`, `metrics_<selection>.json`, `summary.json` (and `front.json` for a learner with a preference
//!   front, MoFIR): written at the end.
//!
//! * `.lock`: locked by the process training the run, so a second one is refused.
//!
//! A crash can leave log lines for epochs after the last checkpoint; resuming cuts the logs back to the
//! checkpoint's epoch, and the recomputed epochs write the same lines again.

use crate::{Result, TrainError};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub(crate) const LOG: &str = "log.jsonl";
pub(crate) const TIMING: &str = "timing.jsonl";
pub(crate) const CHECKPOINT: &str = "checkpoint.bin";
pub(crate) const CODE_VERSION_FILE: &str = "code_version";
/// Held while a process trains the run ([`RunDir::lock`]).
pub(crate) const LOCK: &str = ".lock";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.to_path_buf(), source }
}

/// Writes `bytes` to `path` atomically (`dsrm_files::write_atomic`).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    dsrm_files::write_atomic(path, bytes).map_err(TrainError::Write)
}

/// Pretty JSON with a final newline, written atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    dsrm_files::write_json(path, value).map_err(TrainError::Write)
}

/// Appends one JSON line and syncs it (a line is either fully there or cut back on resume).
pub(crate) fn append_line<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    dsrm_files::append_line(path, value).map_err(TrainError::Write)
}

/// The lines of a JSONL file (none when it does not exist).
pub(crate) fn read_lines(path: &Path) -> Result<Vec<String>> {
    dsrm_files::read_lines(path).map_err(TrainError::Write)
}

/// Paths of one run directory.
pub(crate) struct RunDir {
    pub dir: PathBuf,
}

impl RunDir {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }
    /// Holds `RUN/.lock` exclusively while the returned file lives: a second process training the same folder
    /// (a stray `dsrm train` beside `dsrm experiment`'s) is refused instead of interleaving its lines with the
    /// first's. The operating system drops the lock when the holder ends, killed or not, so a stale file is
    /// harmless. Where the file system cannot lock, the run goes on unguarded.
    pub fn lock(&self) -> Result<std::fs::File> {
        let path = self.dir.join(LOCK);
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(TrainError::Busy { path: self.dir.clone() }),
            // A file system without locks (some network mounts): train unguarded rather than not at all.
            Err(std::fs::TryLockError::Error(_)) => Ok(file),
        }
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join(LOG)
    }
    pub fn timing(&self) -> PathBuf {
        self.dir.join(TIMING)
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join(CHECKPOINT)
    }

    /// True when a previous run left a log or a checkpoint here.
    pub fn has_run(&self) -> bool {
        self.checkpoint().exists() || read_lines(&self.log()).map(|l| !l.is_empty()).unwrap_or(true)
    }

    /// Keeps the first `epochs` lines of `log.jsonl`, checking they are epochs 1..=epochs in order; drops
    /// `timing.jsonl` lines of later epochs.
    pub fn truncate_logs(&self, epochs: usize) -> Result<Vec<String>> {
        let path = self.log();
        let lines = read_lines(&path)?;
        if lines.len() < epochs {
            return Err(TrainError::Log {
                path,
                detail: format!("holds {} epochs but the checkpoint is at epoch {epochs}", lines.len()),
            });
        }
        let kept: Vec<String> = lines.into_iter().take(epochs).collect();
        for (i, line) in kept.iter().enumerate() {
            let epoch = serde_json::from_str::<serde_json::Value>(line).ok().and_then(|v| v["epoch"].as_u64());
            if epoch != Some(i as u64 + 1) {
                return Err(TrainError::Log {
                    path,
                    detail: format!("line {} is not the record of epoch {}", i + 1, i + 1),
                });
            }
        }
        write_atomic(&path, join_lines(&kept).as_bytes())?;
        let timing: Vec<String> = read_lines(&self.timing())?
            .into_iter()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["epoch"].as_u64())
                    .is_some_and(|e| e as usize <= epochs)
            })
            .collect();
        write_atomic(&self.timing(), join_lines(&timing).as_bytes())?;
        Ok(kept)
    }

    /// Removes the logs of an abandoned run (resume requested but no checkpoint was ever written).
    pub fn clear_logs(&self) -> Result<()> {
        for path in [self.log(), self.timing()] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Ok(())
    }
}

fn join_lines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}
