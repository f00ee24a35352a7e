//! KuaiRand-Pure from a directory, in the official file formats (`docs/data.md` §2).
//!
//! # Files
//!
//! Found by official name, flat in the directory or in `KuaiRand-Pure/data/` or `data/` below it:
//!
//! * required: `user_features_pure.csv` (the user id space) and `video_features_basic_pure.csv` (the video
//!   id space and the tags);
//! * logs, at least one of them: `log_standard_4_08_to_4_21_pure.csv` (training),
//!   `log_standard_4_22_to_5_08_pure.csv`, `log_random_4_22_to_5_08_pure.csv` (random exposure). When the
//!   official training log is absent, every other `log_standard_*.csv` beside the feature tables (e.g. the
//!   shipped one-day sample) is read in file-name order and concatenated as the training log, with a
//!   warning;
//! * optional: DORL's `MF_results_GT/kuairand_is_click.csv` (dense ground truth, one row per user x video
//!   cell), looked for in the directory, beside the data folder, and in the search folders.
//!
//! # Logs
//!
//! 19 integer columns in the official order. Ids must lie in the feature tables' id spaces; the feedback
//! columns (`is_*`, `long_view`) must be 0 or 1; `tab` must fit in a byte.
//!
//! # Duplicate policy
//!
//! Every log file is scanned for **exact duplicates** (rows equal to an earlier row in all 19 columns) and
//! **key repeats** (rows repeating an earlier row's `user_id`, `video_id`, `time_ms`); both counts are
//! recorded per file in the provenance (the shipped sample has 247 and 256). Then [`DuplicatePolicy`]:
//! `KeepAll` (default, parity) keeps every row, `DropExact` drops exact duplicates, `CollapseUserVideoTime`
//! keeps the first row per key. The first occurrence in file order is always the one kept. Concatenated
//! fallback files are deduplicated file by file.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::csv_table::{CsvTable, Kind, LineEnd, Row};
use crate::dense_ids::DenseIds;
use crate::duplicates::{self, cmp_at, hash_words, retain_column, LogRows};
use crate::findings::{Findings, Mode};
use crate::kuairec::{distinct, record_duplicates};
use crate::locate::SearchPath;
use crate::tags::{parse_tag_list, TAG_FORM};
use crate::user_table::read_user_count;
use crate::{DataError, DenseTable, DuplicatePolicy, KuaiRandLog, KuaiRandPure, Result};

/// File name of the user feature table.
pub const USER_FEATURES: &str = "user_features_pure.csv";
/// File name of the basic video feature table.
pub const VIDEO_FEATURES: &str = "video_features_basic_pure.csv";
/// File name of the official training log.
pub const STANDARD_TRAIN: &str = "log_standard_4_08_to_4_21_pure.csv";
/// File name of the later standard log.
pub const STANDARD_TEST: &str = "log_standard_4_22_to_5_08_pure.csv";
/// File name of the random-exposure log.
pub const RANDOM: &str = "log_random_4_22_to_5_08_pure.csv";
/// DORL's completed `is_click` ground truth, relative to the data set folder.
pub const GROUND_TRUTH: &str = "MF_results_GT/kuairand_is_click.csv";

/// Sub-folders searched after the directory itself (the official archive's layout).
pub const LAYOUTS: &[&str] = &["KuaiRand-Pure/data", "data"];

/// Official number of users.
pub const OFFICIAL_USERS: u64 = 27_285;
/// Official number of videos.
pub const OFFICIAL_VIDEOS: u64 = 7_583;
/// Official number of rows of the random log.
pub const OFFICIAL_RANDOM_ROWS: u64 = 1_186_059;

/// The header of every log file.
pub const LOG_HEADER: &[&str] = &[
    "user_id",
    "video_id",
    "date",
    "hourmin",
    "time_ms",
    "is_click",
    "is_like",
    "is_follow",
    "is_comment",
    "is_forward",
    "is_hate",
    "long_view",
    "play_time_ms",
    "duration_ms",
    "profile_stay_time",
    "comment_stay_time",
    "is_profile_enter",
    "is_rand",
    "tab",
];

/// The header of `video_features_basic_pure.csv`.
pub const VIDEO_HEADER: &[&str] = &[
    "video_id",
    "author_id",
    "video_type",
    "upload_dt",
    "upload_type",
    "visible_status",
    "video_duration",
    "server_width",
    "server_height",
    "music_id",
    "music_type",
    "tag",
];

/// Form of the video table's columns after `video_id` and before `tag`. Numbers are written as floats
/// (`87433.0`); `video_duration` and `music_type` may be empty.
const VIDEO_KINDS: &[Kind] = &[
    Kind::Integral,  // author_id
    Kind::Text,      // video_type
    Kind::Text,      // upload_dt
    Kind::Text,      // upload_type
    Kind::Number,    // visible_status
    Kind::OptNumber, // video_duration
    Kind::Number,    // server_width
    Kind::Number,    // server_height
    Kind::Integral,  // music_id
    Kind::OptNumber, // music_type
];

/// The header of DORL's dense ground-truth tables.
pub const GROUND_TRUTH_HEADER: &[&str] = &["user_id", "item_id", "value"];

/// How to load KuaiRand-Pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// What to do with repeated log rows (see the module documentation).
    pub duplicate_policy: DuplicatePolicy,
    /// Compare counts with the official release and warn on a mismatch.
    pub check_official_counts: bool,
}

impl Default for LoadOptions {
    /// Parity settings: keep every row, check official counts.
    fn default() -> Self {
        LoadOptions { duplicate_policy: DuplicatePolicy::KeepAll, check_official_counts: true }
    }
}

/// Loads KuaiRand-Pure from `dir`; the first problem found is the error.
pub fn load(dir: &Path, opts: &LoadOptions) -> Result<KuaiRandPure> {
    load_from(crate::source::disk(), dir, opts)
}

/// [`load`] from any [`Source`](crate::source::Source) (files in memory, for fuzzing).
pub fn load_from(
    source: std::sync::Arc<dyn crate::source::Source>,
    dir: &Path,
    opts: &LoadOptions,
) -> Result<KuaiRandPure> {
    let mut findings = Findings::reading(source, Mode::FailFast, "kuairand-pure", dir, opts.duplicate_policy);
    let parts = scan(dir, opts, &mut findings)?;
    match parts {
        Parts { video_tags: Some(video_tags), n_users: Some(n_users), logs, ground_truth } => Ok(KuaiRandPure {
            standard_train: logs.standard_train,
            standard_test: logs.standard_test,
            random: logs.random,
            video_tags,
            n_users,
            ground_truth,
            provenance: findings.provenance,
        }),
        _ => Err(DataError::Invalid {
            dir: dir.to_path_buf(),
            detail: "KuaiRand-Pure could not be assembled".to_string(),
        }),
    }
}

/// Reads `video_features_basic_pure.csv`: the tags of each video, indexed by `video_id` (untagged videos get
/// `[-1]`). Ids must be exactly `0..n`, each once.
pub fn read_video_tags(path: &Path) -> Result<Vec<Vec<i32>>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut findings = Findings::new(Mode::FailFast, "kuairand-pure", dir, DuplicatePolicy::KeepAll);
    read_videos(path, &mut findings)?.ok_or_else(|| DataError::Invalid {
        dir: dir.to_path_buf(),
        detail: format!("{} could not be read", path.display()),
    })
}

/// Reads one KuaiRand log file on its own (no id-range check, every row kept), e.g. the shipped one-day
/// sample for tests and preprocessing.
pub fn read_log(path: &Path) -> Result<KuaiRandLog> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut findings = Findings::new(Mode::FailFast, "kuairand-pure", dir, DuplicatePolicy::KeepAll);
    let bounds = IdBounds { n_users: None, n_videos: None };
    read_one_log(path, bounds, DuplicatePolicy::KeepAll, &mut findings)?.ok_or_else(|| DataError::Invalid {
        dir: dir.to_path_buf(),
        detail: format!("{} could not be read", path.display()),
    })
}

/// The logs that were found.
#[derive(Default)]
struct Logs {
    standard_train: Option<KuaiRandLog>,
    standard_test: Option<KuaiRandLog>,
    random: Option<KuaiRandLog>,
}

/// The pieces of KuaiRand-Pure that could be read.
pub(crate) struct Parts {
    video_tags: Option<Vec<Vec<i32>>>,
    n_users: Option<usize>,
    logs: Logs,
    ground_truth: Option<DenseTable>,
}

/// Id spaces the logs are checked against (`None` when unknown).
#[derive(Debug, Clone, Copy)]
struct IdBounds {
    n_users: Option<usize>,
    n_videos: Option<usize>,
}

/// Reads every file of the data set into `findings` (shared by [`load`] and validation).
pub(crate) fn scan(dir: &Path, opts: &LoadOptions, findings: &mut Findings) -> Result<Parts> {
    let search = SearchPath::new(findings.source.clone(), dir, LAYOUTS);
    let n_users = match search.require(USER_FEATURES) {
        Ok(path) => read_user_count(&path, findings)?,
        Err(e) => findings.problem(e).map(|()| None)?,
    };
    let video_tags = match search.require(VIDEO_FEATURES) {
        Ok(path) => read_videos(&path, findings)?,
        Err(e) => findings.problem(e).map(|()| None)?,
    };
    let n_videos = video_tags.as_ref().map(Vec::len);
    if let Some(n) = n_users {
        findings.count(format!("{USER_FEATURES} users"), n as u64);
        if opts.check_official_counts {
            findings.provenance.check_official(&format!("{USER_FEATURES} users"), n as u64, OFFICIAL_USERS);
        }
    }
    if let Some(tags) = &video_tags {
        let n = tags.len() as u64;
        findings.count(format!("{VIDEO_FEATURES} videos"), n);
        let untagged = tags.iter().filter(|t| t.as_slice() == [crate::tags::UNTAGGED]).count();
        findings.count(format!("{VIDEO_FEATURES} untagged videos (tag [-1])"), untagged as u64);
        if opts.check_official_counts {
            findings.provenance.check_official(&format!("{VIDEO_FEATURES} videos"), n, OFFICIAL_VIDEOS);
        }
    }

    let bounds = IdBounds { n_users, n_videos };
    let logs = read_logs(&search, bounds, opts, findings)?;

    let ground_truth = match (find_ground_truth(dir, &search), n_users, n_videos) {
        (Some(path), Some(users), Some(videos)) => read_ground_truth(&path, users, videos, findings)?,
        (Some(path), _, _) => {
            findings.warn(format!("{}: not checked, because the feature tables could not be read", path.display()));
            None
        }
        (None, _, _) => None,
    };
    Ok(Parts { video_tags, n_users, logs, ground_truth })
}

fn read_logs(search: &SearchPath, bounds: IdBounds, opts: &LoadOptions, findings: &mut Findings) -> Result<Logs> {
    let policy = opts.duplicate_policy;
    let mut logs = Logs::default();
    let mut any = false;
    if let Some(path) = search.find(STANDARD_TRAIN) {
        any = true;
        logs.standard_train = read_one_log(&path, bounds, policy, findings)?;
    } else {
        let fallback = search.list_beside(VIDEO_FEATURES, |name| {
            name.starts_with("log_standard_") && name.ends_with(".csv") && name != STANDARD_TEST
        });
        if !fallback.is_empty() {
            any = true;
            let names: Vec<String> =
                fallback.iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
            findings.warn(format!(
                "{STANDARD_TRAIN} not found: using {} as the standard training log (concatenated in file-name order)",
                names.join(", ")
            ));
            let mut train: Option<KuaiRandLog> = None;
            for path in &fallback {
                if let Some(log) = read_one_log(path, bounds, policy, findings)? {
                    match train.as_mut() {
                        Some(all) => append(all, log),
                        None => train = Some(log),
                    }
                }
            }
            logs.standard_train = train;
        }
    }
    if let Some(path) = search.find(STANDARD_TEST) {
        any = true;
        logs.standard_test = read_one_log(&path, bounds, policy, findings)?;
    }
    if let Some(path) = search.find(RANDOM) {
        any = true;
        logs.random = read_one_log(&path, bounds, policy, findings)?;
        if let (Some(random), true) = (&logs.random, opts.check_official_counts) {
            findings.provenance.check_official(&format!("{RANDOM} rows"), random.len() as u64, OFFICIAL_RANDOM_ROWS);
        }
    }
    if !any {
        findings.problem(DataError::MissingFile {
            name: format!("a log ({STANDARD_TRAIN}, {STANDARD_TEST}, {RANDOM} or another log_standard_*.csv)"),
            searched: search.describe(),
        })?;
    }
    Ok(logs)
}

/// Looks for DORL's ground truth in `dir`, in the folder holding `dir` when `dir` is a `data` folder (DORL's
/// layout keeps `MF_results_GT/` beside `data/`), and in the search folders.
fn find_ground_truth(dir: &Path, search: &SearchPath) -> Option<PathBuf> {
    let beside_data = dir
        .file_name()
        .filter(|name| *name == "data")
        .and_then(|_| dir.parent())
        .map(|parent| parent.join(GROUND_TRUTH))
        .filter(|p| search.is_file(p));
    beside_data
        .or_else(|| search.find(GROUND_TRUTH))
        .or_else(|| Some(dir.join("KuaiRand-Pure").join(GROUND_TRUTH)).filter(|p| search.is_file(p)))
}

/// Reads `video_features_basic_pure.csv` into tag lists indexed by video id.
fn read_videos(path: &Path, findings: &mut Findings) -> Result<Option<Vec<Vec<i32>>>> {
    let Some(mut table) = CsvTable::open_reporting(path, VIDEO_HEADER, LineEnd::NewlineOrCrlf, findings)? else {
        return Ok(None);
    };
    let tag_column = VIDEO_HEADER.len() - 1;
    let mut ids = DenseIds::new(path, "video_id");
    let mut rows: Vec<(u64, Vec<i32>)> = Vec::new();
    table.for_each_row(findings, |row| {
        let id = row.unsigned::<u64>(0, "a non-negative integer id")?;
        ids.push(id, row.line());
        for (offset, &kind) in VIDEO_KINDS.iter().enumerate() {
            row.check(offset + 1, kind)?;
        }
        let text = row.text(tag_column)?;
        let tags = parse_tag_list(text).ok_or_else(|| row.error(tag_column, TAG_FORM, text))?;
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

impl LogRows for KuaiRandLog {
    fn row_count(&self) -> usize {
        self.len()
    }
    fn key_hash(&self, i: usize) -> u64 {
        hash_words(&[
            u64::from(self.user_id.get(i).copied().unwrap_or(0)),
            u64::from(self.video_id.get(i).copied().unwrap_or(0)),
            self.time_ms.get(i).map_or(0, |&t| t as u64),
        ])
    }
    fn cmp_key(&self, i: usize, j: usize) -> Ordering {
        cmp_at(&self.user_id, i, j).then_with(|| cmp_at(&self.video_id, i, j)).then_with(|| cmp_at(&self.time_ms, i, j))
    }
    fn cmp_rest(&self, i: usize, j: usize) -> Ordering {
        let u32s = [&self.date, &self.hourmin].map(|c| cmp_at(c, i, j));
        let i64s = [&self.play_time_ms, &self.duration_ms, &self.profile_stay_time, &self.comment_stay_time]
            .map(|c| cmp_at(c, i, j));
        let u8s = [
            &self.is_click,
            &self.is_like,
            &self.is_follow,
            &self.is_comment,
            &self.is_forward,
            &self.is_hate,
            &self.long_view,
            &self.is_profile_enter,
            &self.is_rand,
            &self.tab,
        ]
        .map(|c| cmp_at(c, i, j));
        u32s.into_iter().chain(i64s).chain(u8s).fold(Ordering::Equal, Ordering::then)
    }
    fn retain_rows(&mut self, keep: &[bool]) {
        retain_column(&mut self.user_id, keep);
        retain_column(&mut self.video_id, keep);
        retain_column(&mut self.date, keep);
        retain_column(&mut self.hourmin, keep);
        retain_column(&mut self.time_ms, keep);
        retain_column(&mut self.is_click, keep);
        retain_column(&mut self.is_like, keep);
        retain_column(&mut self.is_follow, keep);
        retain_column(&mut self.is_comment, keep);
        retain_column(&mut self.is_forward, keep);
        retain_column(&mut self.is_hate, keep);
        retain_column(&mut self.long_view, keep);
        retain_column(&mut self.play_time_ms, keep);
        retain_column(&mut self.duration_ms, keep);
        retain_column(&mut self.profile_stay_time, keep);
        retain_column(&mut self.comment_stay_time, keep);
        retain_column(&mut self.is_profile_enter, keep);
        retain_column(&mut self.is_rand, keep);
        retain_column(&mut self.tab, keep);
    }
}

/// Appends `more` to `all`, column by column.
fn append(all: &mut KuaiRandLog, mut more: KuaiRandLog) {
    all.user_id.append(&mut more.user_id);
    all.video_id.append(&mut more.video_id);
    all.date.append(&mut more.date);
    all.hourmin.append(&mut more.hourmin);
    all.time_ms.append(&mut more.time_ms);
    all.is_click.append(&mut more.is_click);
    all.is_like.append(&mut more.is_like);
    all.is_follow.append(&mut more.is_follow);
    all.is_comment.append(&mut more.is_comment);
    all.is_forward.append(&mut more.is_forward);
    all.is_hate.append(&mut more.is_hate);
    all.long_view.append(&mut more.long_view);
    all.play_time_ms.append(&mut more.play_time_ms);
    all.duration_ms.append(&mut more.duration_ms);
    all.profile_stay_time.append(&mut more.profile_stay_time);
    all.comment_stay_time.append(&mut more.comment_stay_time);
    all.is_profile_enter.append(&mut more.is_profile_enter);
    all.is_rand.append(&mut more.is_rand);
    all.tab.append(&mut more.tab);
}

/// Reads one log file, applies the duplicate policy and records what it found.
fn read_one_log(
    path: &Path,
    bounds: IdBounds,
    policy: DuplicatePolicy,
    findings: &mut Findings,
) -> Result<Option<KuaiRandLog>> {
    let Some(mut table) = CsvTable::open_reporting(path, LOG_HEADER, LineEnd::NewlineOrCrlf, findings)? else {
        return Ok(None);
    };
    let mut log = KuaiRandLog::default();
    let mut zero_duration = 0u64;
    table.for_each_row(findings, |row| {
        push_log_row(&mut log, row, bounds)?;
        zero_duration += u64::from(log.duration_ms.last() == Some(&0));
        Ok(())
    })?;
    let rows = table.rows();
    table.finish_into(findings)?;
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    findings.count(format!("{name} rows"), rows);
    findings.count(format!("{name} rows with duration_ms 0"), zero_duration);
    let counts = duplicates::apply(&mut log, policy);
    record_duplicates(&name, counts, findings);
    findings.count(format!("{name} users"), distinct(&log.user_id));
    findings.count(format!("{name} videos"), distinct(&log.video_id));
    Ok(Some(log))
}

/// Parses one log row completely before pushing it, so a bad row leaves the columns aligned.
fn push_log_row(log: &mut KuaiRandLog, row: &Row<'_>, bounds: IdBounds) -> Result<()> {
    let user_id = match bounds.n_users {
        Some(n) => row.id(0, n, "users in user_features_pure.csv")?,
        None => row.unsigned(0, "a non-negative integer id")?,
    };
    let video_id = match bounds.n_videos {
        Some(n) => row.id(1, n, "videos in video_features_basic_pure.csv")?,
        None => row.unsigned(1, "a non-negative integer id")?,
    };
    let date = row.unsigned(2, "a date YYYYMMDD")?;
    let hourmin = row.unsigned(3, "hour x 100 (0, 100, ..., 2300)")?;
    let time_ms = row.int(4)?;
    let mut flags = [0u8; 7];
    for (slot, column) in flags.iter_mut().zip(5..12) {
        *slot = row.flag(column)?;
    }
    let [is_click, is_like, is_follow, is_comment, is_forward, is_hate, long_view] = flags;
    let play_time_ms = row.int(12)?;
    let duration_ms = row.int(13)?;
    let profile_stay_time = row.int(14)?;
    let comment_stay_time = row.int(15)?;
    let is_profile_enter = row.flag(16)?;
    let is_rand = row.flag(17)?;
    let tab = row.unsigned(18, "a tab code 0..=255")?;

    log.user_id.push(user_id);
    log.video_id.push(video_id);
    log.date.push(date);
    log.hourmin.push(hourmin);
    log.time_ms.push(time_ms);
    log.is_click.push(is_click);
    log.is_like.push(is_like);
    log.is_follow.push(is_follow);
    log.is_comment.push(is_comment);
    log.is_forward.push(is_forward);
    log.is_hate.push(is_hate);
    log.long_view.push(long_view);
    log.play_time_ms.push(play_time_ms);
    log.duration_ms.push(duration_ms);
    log.profile_stay_time.push(profile_stay_time);
    log.comment_stay_time.push(comment_stay_time);
    log.is_profile_enter.push(is_profile_enter);
    log.is_rand.push(is_rand);
    log.tab.push(tab);
    Ok(())
}

/// Reads DORL's dense ground truth: one `user_id,item_id,value` row per cell of `n_users x n_items`, each
/// cell once, every value finite.
fn read_ground_truth(
    path: &Path,
    n_users: usize,
    n_items: usize,
    findings: &mut Findings,
) -> Result<Option<DenseTable>> {
    let Some(cells) = n_users.checked_mul(n_items) else {
        findings.problem(DataError::format(path, 1, "user_id", "a table that fits in memory", "too many cells"))?;
        return Ok(None);
    };
    let Some(mut table) = CsvTable::open_reporting(path, GROUND_TRUTH_HEADER, LineEnd::NewlineOrCrlf, findings)? else {
        return Ok(None);
    };
    // Zero-filled allocations stay lazily mapped until written: a 1.6 GB table costs nothing up front.
    let mut values = vec![0.0f64; cells];
    let mut seen = vec![0u64; cells.div_ceil(64)];
    table.for_each_row(findings, |row| {
        let user = row.id(0, n_users, "users in user_features_pure.csv")? as usize;
        let item = row.id(1, n_items, "videos in video_features_basic_pure.csv")? as usize;
        let value = row.finite(2)?;
        let cell = user * n_items + item;
        let (word, bit) = (cell / 64, 1u64 << (cell % 64));
        match seen.get_mut(word) {
            Some(w) if *w & bit != 0 => {
                return Err(row.error(1, "each (user_id, item_id) cell once", format!("cell ({user}, {item}) again")))
            }
            Some(w) => *w |= bit,
            None => return Err(row.error(1, "a cell inside the table", format!("({user}, {item})"))),
        }
        if let Some(slot) = values.get_mut(cell) {
            *slot = value;
        }
        Ok(())
    })?;
    let rows = table.rows();
    table.finish_into(findings)?;
    findings.count(format!("{GROUND_TRUTH} rows"), rows);
    let present: u64 = seen.iter().map(|w| u64::from(w.count_ones())).sum();
    if present != cells as u64 {
        let missing = (0..cells).find(|&c| seen.get(c / 64).is_some_and(|w| w & (1u64 << (c % 64)) == 0));
        let missing = missing.unwrap_or(0);
        let (user, item) = (missing / n_items.max(1), missing % n_items.max(1));
        findings.problem(DataError::format(
            path,
            rows + 2,
            "user_id,item_id",
            format!("one row per cell of {n_users} users x {n_items} videos ({cells} rows)"),
            format!("{} cells missing, the first ({user}, {item})", cells as u64 - present),
        ))?;
        return Ok(None);
    }
    Ok(Some(DenseTable { n_users, n_items, values }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings() -> Findings {
        Findings::new(Mode::FailFast, "kuairand-pure", Path::new("."), DuplicatePolicy::KeepAll)
    }

    #[test]
    fn ground_truth_is_placed_row_major_in_any_row_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gt.csv");
        std::fs::write(&path, "user_id,item_id,value\n1,2,6.0\n0,0,1\n0,1,2\n0,2,3\n1,0,4\n1,1,5e0\n").unwrap();
        let table = read_ground_truth(&path, 2, 3, &mut findings()).unwrap().unwrap();
        assert_eq!((table.n_users, table.n_items), (2, 3));
        assert_eq!(table.values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn ground_truth_ids_outside_the_tables_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gt.csv");
        std::fs::write(&path, "user_id,item_id,value\n0,3,1\n").unwrap();
        let msg = read_ground_truth(&path, 2, 3, &mut findings()).unwrap_err().to_string();
        assert!(msg.contains("gt.csv:2: column item_id: expected an integer id in 0..=2"), "{msg}");
    }

    #[test]
    fn duplicate_comparison_sees_every_column() {
        let line = "1,2,20220425,0,5,1,0,0,0,0,0,1,10,20,0,0,0,0,1";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        let mut text = LOG_HEADER.join(",") + "\n";
        text.push_str(&format!("{line}\n{line}\n"));
        // Same key, differing only in the last column.
        text.push_str(&format!("{}2\n", line.strip_suffix('1').unwrap()));
        std::fs::write(&path, text).unwrap();
        let log = read_log(&path).unwrap();
        assert_eq!(log.len(), 3);
        assert_eq!(log.cmp_key(0, 2), Ordering::Equal);
        assert_eq!(log.cmp_rest(0, 1), Ordering::Equal);
        assert_ne!(log.cmp_rest(0, 2), Ordering::Equal);
    }
}
