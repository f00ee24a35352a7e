//! KuaiRec 2.0 from a directory, in the official file formats (`docs/data.md` §1).
//!
//! # Files
//!
//! Found by official name, flat in the directory or in `KuaiRec 2.0/data/` or `data/` below it:
//!
//! * required: `small_matrix.csv`, `big_matrix.csv`, `item_categories.csv`, `user_features.csv`;
//! * optional, checked when present: `kuairec_caption_category.csv` (exactly one record per video; records
//!   end at `\n` only, a bare `\r` is part of a caption) and `item_daily_features.csv` (header and row shape);
//! * `synthetic.json` beside them marks a synthetic data set and is copied into the provenance.
//!
//! # Interaction logs
//!
//! Header exactly `user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio`.
//!
//! * Ids must lie in the id spaces of `user_features.csv` and `item_categories.csv`.
//! * `time`, `date` and `timestamp` may be empty, as in the real release: the row is kept with date 0 and
//!   timestamp NaN, and the rows are counted in a warning. When present, `time` must read
//!   `YYYY-MM-DD HH:MM:SS[.fff]`; disagreement with `timestamp` (Beijing time, UTC+8, to the second) or with
//!   `date` is counted in a warning, with the first lines as examples. `date` may be written `20200705.0`.
//! * `watch_ratio` must be finite, except where `video_duration` is 0: there `inf`, `nan` or an empty cell
//!   is the anchors' handled case (`docs/protocol.md` §1.1). Rows where it differs from
//!   `play_duration / video_duration` by more than `1e-6 * max(1, ratio)` are counted in a warning.
//!
//! # Duplicate policy
//!
//! The big matrix repeats some `<user, video, time>` records (`docs/data.md` §1.3). Every log is scanned for
//! **exact duplicates** (rows equal to an earlier row in every column, `time` included) and **key repeats**
//! (rows whose user, video, `timestamp` and `time` equal an earlier row's; rows with neither time field are
//! keyed by user and video alone). Both counts are recorded in the provenance per file. Then
//! [`DuplicatePolicy`]:
//!
//! * `KeepAll` (default, anchor parity) keeps every row;
//! * `DropExact` drops every exact duplicate, keeping the first occurrence;
//! * `CollapseUserVideoTime` keeps only the first row of each key.
//!
//! The small matrix should hold one row per (user, video) pair (the simulator would sum repeats); repeated
//! pairs are counted in a warning.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::csv_table::{CsvTable, Kind, LineEnd, Row};
use crate::dense_ids::DenseIds;
use crate::duplicates::{self, cmp_at, cmp_f64_at, hash_words, retain_column, LogRows};
use crate::findings::{Findings, Mode, Tally};
use crate::provenance::HashingReader;
use crate::tags::{parse_feat, FEAT_FORM};
use crate::user_table::read_user_count;
use crate::{DataError, DuplicatePolicy, InputFile, KuaiRec, KuaiRecLog, Result, SyntheticInfo};

/// File name of the fully observed matrix.
pub const SMALL_MATRIX: &str = "small_matrix.csv";
/// File name of the exposure-biased training log.
pub const BIG_MATRIX: &str = "big_matrix.csv";
/// File name of the tag table.
pub const ITEM_CATEGORIES: &str = "item_categories.csv";
/// File name of the user feature table.
pub const USER_FEATURES: &str = "user_features.csv";
/// File name of the caption and category table (optional).
pub const CAPTION_CATEGORY: &str = "kuairec_caption_category.csv";
/// File name of the per-day video statistics (optional).
pub const ITEM_DAILY_FEATURES: &str = "item_daily_features.csv";
/// Marker file written by the synthetic generator.
pub const SYNTHETIC_MARKER: &str = "synthetic.json";

/// Sub-folders searched after the directory itself (the official archive's layout).
pub const LAYOUTS: &[&str] = &["KuaiRec 2.0/data", "data"];

/// The header of both interaction matrices.
pub const LOG_HEADER: &[&str] =
    &["user_id", "video_id", "play_duration", "video_duration", "time", "date", "timestamp", "watch_ratio"];

/// The header of `item_categories.csv`.
pub const ITEM_CATEGORIES_HEADER: &[&str] = &["video_id", "feat"];

/// The header of `kuairec_caption_category.csv`.
pub const CAPTION_HEADER: &[&str] = &[
    "video_id",
    "manual_cover_text",
    "caption",
    "topic_tag",
    "first_level_category_id",
    "first_level_category_name",
    "second_level_category_id",
    "second_level_category_name",
    "third_level_category_id",
    "third_level_category_name",
];

/// The header of `item_daily_features.csv` (58 columns).
pub const ITEM_DAILY_HEADER: &[&str] = &[
    "video_id",
    "date",
    "author_id",
    "video_type",
    "upload_dt",
    "upload_type",
    "visible_status",
    "video_duration",
    "video_width",
    "video_height",
    "music_id",
    "video_tag_id",
    "video_tag_name",
    "show_cnt",
    "show_user_num",
    "play_cnt",
    "play_user_num",
    "play_duration",
    "complete_play_cnt",
    "complete_play_user_num",
    "valid_play_cnt",
    "valid_play_user_num",
    "long_time_play_cnt",
    "long_time_play_user_num",
    "short_time_play_cnt",
    "short_time_play_user_num",
    "play_progress",
    "comment_stay_duration",
    "like_cnt",
    "like_user_num",
    "click_like_cnt",
    "double_click_cnt",
    "cancel_like_cnt",
    "cancel_like_user_num",
    "comment_cnt",
    "comment_user_num",
    "direct_comment_cnt",
    "reply_comment_cnt",
    "delete_comment_cnt",
    "delete_comment_user_num",
    "comment_like_cnt",
    "comment_like_user_num",
    "follow_cnt",
    "follow_user_num",
    "cancel_follow_cnt",
    "cancel_follow_user_num",
    "share_cnt",
    "share_user_num",
    "download_cnt",
    "download_user_num",
    "report_cnt",
    "report_user_num",
    "reduce_similar_cnt",
    "reduce_similar_user_num",
    "collect_cnt",
    "collect_user_num",
    "cancel_collect_cnt",
    "cancel_collect_user_num",
];

/// Official sizes of the release (`docs/data.md` §1.1): `(rows, users, videos)`.
pub const OFFICIAL_SMALL: (u64, u64, u64) = (4_676_570, 1_411, 3_327);
/// Official sizes of the big matrix: `(rows, users, videos)`.
pub const OFFICIAL_BIG: (u64, u64, u64) = (12_530_806, 7_176, 10_728);
/// Official number of videos in `item_categories.csv`.
pub const OFFICIAL_VIDEOS: u64 = 10_728;
/// Official number of users in `user_features.csv`.
pub const OFFICIAL_USERS: u64 = 7_176;

/// Beijing time's offset from UTC, in seconds: `time` is the UTC+8 rendering of `timestamp`.
const BEIJING_OFFSET_S: i64 = 8 * 3600;

/// How to load KuaiRec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// What to do with repeated log rows (see the module documentation).
    pub duplicate_policy: DuplicatePolicy,
    /// Compare counts with the official release and warn on a mismatch (turn off for small synthetic data).
    pub check_official_counts: bool,
}

impl Default for LoadOptions {
    /// Parity settings: keep every row, check official counts.
    fn default() -> Self {
        LoadOptions { duplicate_policy: DuplicatePolicy::KeepAll, check_official_counts: true }
    }
}

/// Loads KuaiRec from `dir`; the first problem found is the error.
pub fn load(dir: &Path, opts: &LoadOptions) -> Result<KuaiRec> {
    load_from(crate::source::disk(), dir, opts)
}

/// [`load`] from any [`Source`](crate::source::Source) (files in memory, for fuzzing).
pub fn load_from(source: std::sync::Arc<dyn crate::source::Source>, dir: &Path, opts: &LoadOptions) -> Result<KuaiRec> {
    let mut findings = Findings::reading(source, Mode::FailFast, "kuairec", dir, opts.duplicate_policy);
    let parts = scan(dir, opts, &mut findings)?;
    match parts {
        Parts { small: Some(small), big: Some(big), item_tags: Some(item_tags), n_users: Some(n_feature_users) } => {
            Ok(KuaiRec { small, big, item_tags, n_feature_users, provenance: findings.provenance })
        }
        _ => Err(DataError::Invalid { dir: dir.to_path_buf(), detail: "KuaiRec could not be assembled".to_string() }),
    }
}

/// Reads `item_categories.csv`: the tag list of each video, indexed by `video_id`. Ids must be exactly
/// `0..n`, each once, and every `feat` a bracketed integer list.
pub fn read_item_categories(path: &Path) -> Result<Vec<Vec<i32>>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut findings = Findings::new(Mode::FailFast, "kuairec", dir, DuplicatePolicy::KeepAll);
    read_item_tags(path, &mut findings)?.ok_or_else(|| DataError::Invalid {
        dir: dir.to_path_buf(),
        detail: format!("{} could not be read", path.display()),
    })
}

/// The pieces of KuaiRec that could be read (all of them, unless in collect mode).
pub(crate) struct Parts {
    small: Option<KuaiRecLog>,
    big: Option<KuaiRecLog>,
    item_tags: Option<Vec<Vec<i32>>>,
    n_users: Option<usize>,
}

/// Reads every file of the data set into `findings` (shared by [`load`] and validation).
pub(crate) fn scan(dir: &Path, opts: &LoadOptions, findings: &mut Findings) -> Result<Parts> {
    let search = crate::locate::SearchPath::new(findings.source.clone(), dir, LAYOUTS);
    if let Some(marker) = search.find(SYNTHETIC_MARKER) {
        read_synthetic_marker(&marker, findings)?;
    }
    let required = |name: &str, findings: &mut Findings| -> Result<Option<PathBuf>> {
        match search.require(name) {
            Ok(path) => Ok(Some(path)),
            Err(e) => findings.problem(e).map(|()| None),
        }
    };

    let n_users = match required(USER_FEATURES, findings)? {
        Some(path) => read_user_count(&path, findings)?,
        None => None,
    };
    let item_tags = match required(ITEM_CATEGORIES, findings)? {
        Some(path) => read_item_tags(&path, findings)?,
        None => None,
    };
    let n_videos = item_tags.as_ref().map(Vec::len);
    if opts.check_official_counts {
        if let Some(n) = n_users {
            findings.provenance.check_official("user_features.csv users", n as u64, OFFICIAL_USERS);
        }
        if let Some(n) = n_videos {
            findings.provenance.check_official("item_categories.csv videos", n as u64, OFFICIAL_VIDEOS);
        }
    }
    if let Some(n) = n_users {
        findings.count(format!("{USER_FEATURES} users"), n as u64);
    }
    if let Some(tags) = &item_tags {
        findings.count(format!("{ITEM_CATEGORIES} videos"), tags.len() as u64);
    }

    if let Some(path) = search.find(CAPTION_CATEGORY) {
        check_captions(&path, n_videos, findings)?;
    }
    if let Some(path) = search.find(ITEM_DAILY_FEATURES) {
        check_item_daily(&path, n_videos, findings)?;
    }

    let bounds = IdBounds { n_users, n_videos };
    let small = match required(SMALL_MATRIX, findings)? {
        Some(path) => read_log(&path, SMALL_MATRIX, bounds, opts, findings)?,
        None => None,
    };
    if let Some(small) = &small {
        count_small_pair_repeats(small, findings);
        if opts.check_official_counts {
            check_log_counts(SMALL_MATRIX, small, OFFICIAL_SMALL, findings);
        }
    }
    let big = match required(BIG_MATRIX, findings)? {
        Some(path) => read_log(&path, BIG_MATRIX, bounds, opts, findings)?,
        None => None,
    };
    if let (Some(big), true) = (&big, opts.check_official_counts) {
        check_log_counts(BIG_MATRIX, big, OFFICIAL_BIG, findings);
    }
    Ok(Parts { small, big, item_tags, n_users })
}

/// Copies `synthetic.json` into the provenance, so that every result made from it says "synthetic".
fn read_synthetic_marker(path: &Path, findings: &mut Findings) -> Result<()> {
    let file = match findings.source.open(path) {
        Ok(file) => file,
        Err(e) => return findings.problem(DataError::io(path, e)),
    };
    let mut reader = HashingReader::new(std::io::BufReader::new(file));
    let parsed: std::result::Result<SyntheticInfo, _> = serde_json::from_reader(&mut reader);
    let (sha256, bytes) = match reader.finish() {
        Ok(done) => done,
        Err(e) => return findings.problem(DataError::io(path, e)),
    };
    match parsed {
        Ok(info) => {
            findings.provenance.synthetic = Some(info);
            findings.provenance.files.push(InputFile { path: path.display().to_string(), sha256, bytes, rows: 1 });
            Ok(())
        }
        Err(e) => findings.problem(DataError::format(
            path,
            e.line() as u64,
            format!("character {}", e.column()),
            "a JSON object with generator, generator_version, seed, size and settings",
            e.to_string(),
        )),
    }
}

/// Reads `item_categories.csv` into tag lists indexed by video id.
fn read_item_tags(path: &Path, findings: &mut Findings) -> Result<Option<Vec<Vec<i32>>>> {
    let Some(mut table) = CsvTable::open_reporting(path, ITEM_CATEGORIES_HEADER, LineEnd::NewlineOrCrlf, findings)?
    else {
        return Ok(None);
    };
    let mut ids = DenseIds::new(path, "video_id");
    let mut rows: Vec<(u64, Vec<i32>)> = Vec::new();
    table.for_each_row(findings, |row| {
        let id = row.unsigned::<u64>(0, "a non-negative integer id")?;
        ids.push(id, row.line());
        let feat = row.text(1)?;
        let tags = parse_feat(feat).ok_or_else(|| row.error(1, FEAT_FORM, feat))?;
        rows.push((id, tags));
        Ok(())
    })?;
    table.finish_into(findings)?;
    let n = ids.check(findings)?;
    let mut by_id = vec![Vec::new(); n];
    for (id, tags) in rows {
        if let Some(slot) = usize::try_from(id).ok().and_then(|i| by_id.get_mut(i)) {
            *slot = tags;
        }
    }
    Ok(Some(by_id))
}

/// Checks `kuairec_caption_category.csv`: ten columns, integer category ids, exactly one record per video.
/// Records end at `\n` only: four official captions contain a bare `\r`, which is data.
fn check_captions(path: &Path, n_videos: Option<usize>, findings: &mut Findings) -> Result<()> {
    let Some(mut table) = CsvTable::open_reporting(path, CAPTION_HEADER, LineEnd::NewlineOnly, findings)? else {
        return Ok(());
    };
    let mut ids = DenseIds::new(path, "video_id");
    table.for_each_row(findings, |row| {
        let id = row.unsigned::<u64>(0, "a non-negative integer id")?;
        ids.push(id, row.line());
        for column in [4, 6, 8] {
            row.check(column, Kind::Integral)?;
        }
        Ok(())
    })?;
    let records = table.rows();
    table.finish_into(findings)?;
    let n = ids.check(findings)?;
    findings.count(format!("{CAPTION_CATEGORY} records"), records);
    if let Some(videos) = n_videos {
        if n != videos {
            findings.problem(DataError::format(
                path,
                records + 2,
                "video_id",
                format!("one record per video of {ITEM_CATEGORIES} ({videos} records)"),
                format!("{n} records"),
            ))?;
        }
    }
    Ok(())
}

/// Checks `item_daily_features.csv`: header, 58 fields per row, `video_id` in range and an integer `date`.
/// Its statistics are not used by the simulators, so nothing is kept.
fn check_item_daily(path: &Path, n_videos: Option<usize>, findings: &mut Findings) -> Result<()> {
    let Some(mut table) = CsvTable::open_reporting(path, ITEM_DAILY_HEADER, LineEnd::NewlineOrCrlf, findings)? else {
        return Ok(());
    };
    table.for_each_row(findings, |row| {
        match n_videos {
            Some(n) => row.id(0, n, "videos in item_categories.csv").map(drop)?,
            None => row.unsigned::<u32>(0, "a non-negative integer id").map(drop)?,
        }
        row.check(1, Kind::Integral)
    })?;
    let rows = table.rows();
    table.finish_into(findings)?;
    findings.count(format!("{ITEM_DAILY_FEATURES} rows"), rows);
    Ok(())
}

/// Id spaces the logs are checked against (`None` when the side table could not be read).
#[derive(Debug, Clone, Copy)]
struct IdBounds {
    n_users: Option<usize>,
    n_videos: Option<usize>,
}

/// Non-fatal findings in one log file.
struct LogTallies {
    missing_time: Tally,
    time_vs_timestamp: Tally,
    date_vs_time: Tally,
    ratio_mismatch: Tally,
    negative_duration: Tally,
    non_finite_ratio: u64,
    zero_duration: u64,
}

impl LogTallies {
    fn new() -> Self {
        LogTallies {
            missing_time: Tally::new("rows with an empty time, date or timestamp (kept: date 0, timestamp NaN)"),
            time_vs_timestamp: Tally::new("rows whose time is not timestamp in Beijing time (UTC+8) to the second"),
            date_vs_time: Tally::new("rows whose date is not the date of time"),
            ratio_mismatch: Tally::new(
                "rows whose watch_ratio differs from play_duration / video_duration by more than 1e-6 relative",
            ),
            negative_duration: Tally::new("rows with a negative play_duration or video_duration"),
            non_finite_ratio: 0,
            zero_duration: 0,
        }
    }
}

/// A log being read, with its `time` column parsed to nanoseconds of Beijing wall time (`i64::MIN` when
/// empty): needed to compare rows in every column, then dropped.
struct LogWithTime {
    log: KuaiRecLog,
    time_ns: Vec<i64>,
}

impl LogRows for LogWithTime {
    fn row_count(&self) -> usize {
        self.log.len()
    }
    fn key_hash(&self, i: usize) -> u64 {
        let log = &self.log;
        hash_words(&[
            u64::from(log.user_id.get(i).copied().unwrap_or(0)),
            u64::from(log.video_id.get(i).copied().unwrap_or(0)),
            log.timestamp.get(i).map_or(0, |t| t.to_bits()),
            self.time_ns.get(i).map_or(0, |&t| t as u64),
        ])
    }
    fn cmp_key(&self, i: usize, j: usize) -> Ordering {
        let log = &self.log;
        cmp_at(&log.user_id, i, j)
            .then_with(|| cmp_at(&log.video_id, i, j))
            .then_with(|| cmp_f64_at(&log.timestamp, i, j))
            .then_with(|| cmp_at(&self.time_ns, i, j))
    }
    fn cmp_rest(&self, i: usize, j: usize) -> Ordering {
        let log = &self.log;
        cmp_at(&log.play_duration, i, j)
            .then_with(|| cmp_at(&log.video_duration, i, j))
            .then_with(|| cmp_at(&log.date, i, j))
            .then_with(|| cmp_f64_at(&log.watch_ratio, i, j))
    }
    fn retain_rows(&mut self, keep: &[bool]) {
        let log = &mut self.log;
        retain_column(&mut log.user_id, keep);
        retain_column(&mut log.video_id, keep);
        retain_column(&mut log.play_duration, keep);
        retain_column(&mut log.video_duration, keep);
        retain_column(&mut log.date, keep);
        retain_column(&mut log.timestamp, keep);
        retain_column(&mut log.watch_ratio, keep);
        retain_column(&mut self.time_ns, keep);
    }
}

/// Reads one interaction matrix, applies the duplicate policy and records what it found.
fn read_log(
    path: &Path,
    name: &str,
    bounds: IdBounds,
    opts: &LoadOptions,
    findings: &mut Findings,
) -> Result<Option<KuaiRecLog>> {
    let Some(mut table) = CsvTable::open_reporting(path, LOG_HEADER, LineEnd::NewlineOrCrlf, findings)? else {
        return Ok(None);
    };
    let mut log = LogWithTime { log: KuaiRecLog::default(), time_ns: Vec::new() };
    let mut tallies = LogTallies::new();
    table.for_each_row(findings, |row| {
        let parsed = parse_log_row(row, bounds, &mut tallies)?;
        let l = &mut log.log;
        l.user_id.push(parsed.user_id);
        l.video_id.push(parsed.video_id);
        l.play_duration.push(parsed.play_duration);
        l.video_duration.push(parsed.video_duration);
        l.date.push(parsed.date);
        l.timestamp.push(parsed.timestamp);
        l.watch_ratio.push(parsed.watch_ratio);
        log.time_ns.push(parsed.time_ns);
        Ok(())
    })?;
    let rows = table.rows();
    table.finish_into(findings)?;

    findings.count(format!("{name} rows"), rows);
    findings.count(format!("{name} rows with video_duration 0"), tallies.zero_duration);
    findings.count(format!("{name} rows with non-finite watch_ratio"), tallies.non_finite_ratio);
    findings.count(format!("{name} rows with an empty time/date/timestamp"), tallies.missing_time.count());
    tallies.missing_time.warn_into(name, findings);
    tallies.time_vs_timestamp.warn_into(name, findings);
    tallies.date_vs_time.warn_into(name, findings);
    tallies.ratio_mismatch.warn_into(name, findings);
    tallies.negative_duration.warn_into(name, findings);

    let counts = duplicates::apply(&mut log, opts.duplicate_policy);
    record_duplicates(name, counts, findings);
    let log = log.log;
    findings.count(format!("{name} users"), distinct(&log.user_id));
    findings.count(format!("{name} videos"), distinct(&log.video_id));
    Ok(Some(log))
}

/// Writes a log's duplicate counts into the provenance and the report.
pub(crate) fn record_duplicates(name: &str, counts: duplicates::DuplicateCounts, findings: &mut Findings) {
    let entries = [
        (format!("{name} exact duplicate rows"), counts.exact),
        (format!("{name} rows repeating (user, video, time)"), counts.same_key),
        (format!("{name} rows dropped by the duplicate policy"), counts.dropped),
    ];
    for (what, n) in entries {
        findings.count(what.clone(), n);
        findings.provenance.duplicates.push((what, n));
    }
}

/// Number of distinct values in an id column.
pub(crate) fn distinct(ids: &[u32]) -> u64 {
    let Some(&max) = ids.iter().max() else {
        return 0;
    };
    let mut seen = vec![false; max as usize + 1];
    let mut n = 0;
    for &id in ids {
        if let Some(slot) = seen.get_mut(id as usize) {
            n += u64::from(!*slot);
            *slot = true;
        }
    }
    n
}

fn check_log_counts(name: &str, log: &KuaiRecLog, (rows, users, videos): (u64, u64, u64), findings: &mut Findings) {
    let p = &mut findings.provenance;
    p.check_official(&format!("{name} rows"), log.len() as u64, rows);
    p.check_official(&format!("{name} users"), distinct(&log.user_id), users);
    p.check_official(&format!("{name} videos"), distinct(&log.video_id), videos);
}

/// Counts repeated (user, video) pairs in the small matrix: the simulator's ground truth needs one value
/// per cell, and would sum repeats (`docs/protocol.md` §1.1).
fn count_small_pair_repeats(small: &KuaiRecLog, findings: &mut Findings) {
    let mut pairs: Vec<u64> =
        small.user_id.iter().zip(&small.video_id).map(|(&u, &v)| (u64::from(u) << 32) | u64::from(v)).collect();
    pairs.sort_unstable();
    let repeats = pairs.windows(2).filter(|w| w.first() == w.get(1)).count() as u64;
    findings.count(format!("{SMALL_MATRIX} repeated (user, video) pairs"), repeats);
    if repeats > 0 {
        findings.warn(format!(
            "{SMALL_MATRIX}: {repeats} rows repeat an earlier (user, video) pair; the ground truth needs one value per cell"
        ));
    }
}

/// One parsed log row.
struct LogRow {
    user_id: u32,
    video_id: u32,
    play_duration: i64,
    video_duration: i64,
    time_ns: i64,
    date: u32,
    timestamp: f64,
    watch_ratio: f64,
}

fn parse_log_row(row: &Row<'_>, bounds: IdBounds, tallies: &mut LogTallies) -> Result<LogRow> {
    let user_id = match bounds.n_users {
        Some(n) => row.id(0, n, "users in user_features.csv")?,
        None => row.unsigned(0, "a non-negative integer id")?,
    };
    let video_id = match bounds.n_videos {
        Some(n) => row.id(1, n, "videos in item_categories.csv")?,
        None => row.unsigned(1, "a non-negative integer id")?,
    };
    let play_duration = row.int(2)?;
    let video_duration = row.int(3)?;
    let line = row.line();
    if play_duration < 0 || video_duration < 0 {
        tallies.negative_duration.add(|| format!("line {line}: {play_duration}, {video_duration}"));
    }

    let time_bytes = row.bytes(4);
    let time_text = || String::from_utf8_lossy(time_bytes);
    let time = if time_bytes.is_empty() {
        None
    } else {
        let expected = "a Beijing time `YYYY-MM-DD HH:MM:SS[.fff]`, or empty";
        Some(parse_local_time(time_bytes).ok_or_else(|| row.error(4, expected, time_text()))?)
    };
    let date = match row.text(5)? {
        "" => None,
        text => Some(
            crate::csv_table::parse_integral(text.as_bytes())
                .and_then(|d| u32::try_from(d).ok())
                .filter(|&d| is_yyyymmdd(d))
                .ok_or_else(|| row.error(5, "a date YYYYMMDD (or YYYYMMDD.0), or empty", text))?,
        ),
    };
    let timestamp = row.opt_finite(6)?;
    if time.is_none() || date.is_none() || timestamp.is_none() {
        tallies.missing_time.add(|| format!("line {line}"));
    }
    if let (Some(t), Some(ts)) = (time, timestamp) {
        if ts.floor() != (t.seconds - BEIJING_OFFSET_S) as f64 {
            tallies.time_vs_timestamp.add(|| format!("line {line}: {} vs {ts}", time_text()));
        }
    }
    if let (Some(t), Some(d)) = (time, date) {
        if t.yyyymmdd != d {
            tallies.date_vs_time.add(|| format!("line {line}: {d} vs {}", time_text()));
        }
    }

    let watch_ratio = row.any_float(7)?;
    if video_duration == 0 {
        tallies.zero_duration += 1;
    }
    if !watch_ratio.is_finite() {
        if video_duration != 0 {
            return Err(row.error(
                7,
                "a finite number (inf, nan or empty only where video_duration is 0)",
                row.text(7)?,
            ));
        }
        tallies.non_finite_ratio += 1;
    } else if video_duration != 0 {
        let computed = play_duration as f64 / video_duration as f64;
        if (watch_ratio - computed).abs() > 1e-6 * watch_ratio.abs().max(1.0) {
            tallies.ratio_mismatch.add(|| format!("line {line}: {watch_ratio} vs {play_duration}/{video_duration}"));
        }
    }
    Ok(LogRow {
        user_id,
        video_id,
        play_duration,
        video_duration,
        time_ns: time.map_or(i64::MIN, |t| t.seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(t.nanos))),
        date: date.unwrap_or(0),
        timestamp: timestamp.unwrap_or(f64::NAN),
        watch_ratio,
    })
}

/// A wall-clock time as written in the `time` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LocalTime {
    /// Seconds since 1970-01-01 00:00:00 of the same wall-clock reading (no zone applied).
    seconds: i64,
    /// Fraction of the second, in nanoseconds.
    nanos: u32,
    /// The calendar date as YYYYMMDD.
    yyyymmdd: u32,
}

/// Parses `YYYY-MM-DD HH:MM:SS` with an optional fraction of 1 to 9 digits; `None` for anything else,
/// including impossible dates and times.
fn parse_local_time(text: &[u8]) -> Option<LocalTime> {
    let (main, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(point) => (text.get(..point)?, Some(text.get(point + 1..)?)),
        None => (text, None),
    };
    if main.len() != 19 {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = main.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter().try_fold(0u32, |acc, &d| acc.checked_mul(10)?.checked_add(u32::from(d - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| main.get(i) != Some(&c)) {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let nanos = match fraction {
        None => 0,
        Some(f) if (1..=9).contains(&f.len()) && f.iter().all(u8::is_ascii_digit) => {
            let value = f.iter().fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
            value * 10u32.pow(9 - f.len() as u32)
        }
        Some(_) => return None,
    };
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    Some(LocalTime {
        seconds: days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second),
        nanos,
        yyyymmdd: year * 10_000 + month * 100 + day,
    })
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A plausible calendar date written as YYYYMMDD.
fn is_yyyymmdd(d: u32) -> bool {
    let (year, month, day) = (d / 10_000, d / 100 % 100, d % 100);
    (1000..=9999).contains(&year) && (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month)
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_time_matches_the_readme_example() {
        // README: time 2020-07-05 00:08:23.438 is timestamp 1593878903.438.
        let t = parse_local_time(b"2020-07-05 00:08:23.438").unwrap();
        assert_eq!(t.seconds - BEIJING_OFFSET_S, 1_593_878_903);
        assert_eq!(t.nanos, 438_000_000);
        assert_eq!(t.yyyymmdd, 20200705);
        assert_eq!(parse_local_time(b"2020-07-05 00:08:23").unwrap().nanos, 0);
    }

    #[test]
    fn malformed_times_are_rejected() {
        for bad in [
            "2020-07-05",
            "2020-07-05T00:08:23",
            "2020-13-05 00:08:23",
            "2021-02-29 00:08:23",
            "2020-07-05 24:00:00",
            "2020-07-05 00:08:23.",
            "2020-07-05 00:08:23.12a",
            "２020-07-05 00:08:23",
            "20-07-05 00:08:23.438",
        ] {
            assert_eq!(parse_local_time(bad.as_bytes()), None, "{bad}");
        }
        assert!(parse_local_time(b"2020-02-29 00:00:00").is_some());
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert!(is_yyyymmdd(20200705));
        assert!(!is_yyyymmdd(20200732));
        assert!(!is_yyyymmdd(705));
    }

    #[test]
    fn distinct_counts() {
        assert_eq!(distinct(&[]), 0);
        assert_eq!(distinct(&[3, 1, 3, 0]), 3);
    }
}
