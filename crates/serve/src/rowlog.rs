//! `--log-dir`: the served and consumed rows, appended as they happen, so a later `dsrm train` or
//! `dsrm loop` round can read them.
//!
//! * `served.csv`: one row per recommended item: `timestamp_ms,session_id,user_id,video_id,rank,score,policy`.
//! * `consumed.csv`: one row per feedback, in the data set's own log layout: for KuaiRec its interaction
//!   matrices' columns (`user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio`, the
//!   reward as `watch_ratio`; the server knows no durations and writes them as 0; `time`, `date` and
//!   `timestamp` are UTC); for KuaiRand-Pure and Coat the `user_id,item_id,value` table of their ground-truth
//!   files (the reward as `value`).
//!
//! Each row is flushed when written: a killed server loses no answered request's row.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The two open logs.
pub struct RowLog {
    served: BufWriter<File>,
    consumed: BufWriter<File>,
    kuairec: bool,
    dir: PathBuf,
}

fn open(path: &Path, header: &str) -> std::io::Result<BufWriter<File>> {
    let fresh = std::fs::metadata(path).map(|m| m.len() == 0).unwrap_or(true);
    let mut w = BufWriter::new(OpenOptions::new().create(true).append(true).open(path)?);
    if fresh {
        writeln!(w, "{header}")?;
        w.flush()?;
    }
    Ok(w)
}

/// CSV quoting of a free-text field (the session id).
fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl RowLog {
    /// Opens (appending) or creates the logs of data set `dataset` in `dir`.
    pub fn open(dir: &Path, dataset: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let kuairec = dataset == "kuairec";
        let consumed_header = if kuairec {
            dsrm_data::kuairec::LOG_HEADER.join(",")
        } else {
            dsrm_data::kuairand::GROUND_TRUTH_HEADER.join(",")
        };
        Ok(Self {
            served: open(&dir.join("served.csv"), "timestamp_ms,session_id,user_id,video_id,rank,score,policy")?,
            consumed: open(&dir.join("consumed.csv"), &consumed_header)?,
            kuairec,
            dir: dir.to_path_buf(),
        })
    }

    /// The folder written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends the rows of one recommendation (`items` and `scores` in rank order).
    pub fn served(
        &mut self,
        session_id: &str,
        user_id: u64,
        items: &[u64],
        scores: &[f64],
        policy: &str,
    ) -> std::io::Result<()> {
        let now = now_ms();
        let session = quote(session_id);
        for (rank, (item, score)) in items.iter().zip(scores).enumerate() {
            writeln!(self.served, "{now},{session},{user_id},{item},{},{score},{policy}", rank + 1)?;
        }
        self.served.flush()
    }

    /// Appends one consumed row.
    pub fn consumed(&mut self, user_id: u64, video_id: u64, reward: f64) -> std::io::Result<()> {
        if self.kuairec {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let (date, time) = utc_date_time(now.as_secs() as i64, now.subsec_millis());
            let timestamp = now.as_secs_f64();
            writeln!(self.consumed, "{user_id},{video_id},0,0,{time},{date},{timestamp:.3},{reward}")?;
        } else {
            writeln!(self.consumed, "{user_id},{video_id},{reward}")?;
        }
        self.consumed.flush()
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// (`YYYYMMDD`, `YYYY-MM-DD HH:MM:SS.mmm`) of a Unix time in UTC (civil-from-days, proleptic Gregorian).
fn utc_date_time(secs: i64, millis: u32) -> (String, String) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    (format!("{y:04}{m:02}{d:02}"), format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{millis:03}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(utc_date_time(0, 0), ("19700101".into(), "1970-01-01 00:00:00.000".into()));
        // 2020-07-05 12:34:56 UTC (KuaiRec's period).
        assert_eq!(utc_date_time(1_593_952_496, 7).1, "2020-07-05 12:34:56.007");
        assert_eq!(utc_date_time(951_782_400, 0).0, "20000229");
    }

    #[test]
    fn writes_headers_once_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..2 {
            let mut log = RowLog::open(dir.path(), "kuairec").unwrap();
            log.served("s,1", 7, &[3, 4], &[-1.0, -2.0], "hrl").unwrap();
            log.consumed(7, 3, 0.5).unwrap();
        }
        let served = std::fs::read_to_string(dir.path().join("served.csv")).unwrap();
        assert_eq!(served.lines().count(), 5);
        assert!(served.lines().nth(1).unwrap().contains(",\"s,1\",7,3,1,-1,hrl"));
        let consumed = std::fs::read_to_string(dir.path().join("consumed.csv")).unwrap();
        assert_eq!(consumed.lines().next().unwrap(), dsrm_data::kuairec::LOG_HEADER.join(","));
        assert_eq!(consumed.lines().count(), 3);
    }
}
