//! Loaders for the three data sets this project evaluates on, in their *official, untouched* file formats,
//! plus a generator of synthetic KuaiRec in the same byte format.
//!
//! Every loader validates headers, column order and every value; a problem is a [`DataError`] naming the
//! file, the line, the column and the expected form. Every input file's sha256 is recorded in the
//! [`Provenance`] that travels with the loaded data, together with count mismatches and duplicate handling.
//!
//! * [`kuairec::load`], [`kuairand::load`], [`coat::load`]: read a directory (flat, or the official archive
//!   layout), failing on the first problem.
//! * [`validate()`]: the same readers in collect mode, for `dsrm data validate`: every problem (up to 50 per
//!   file), warning and count in one [`ValidationReport`].
//! * [`tags`]: the two tag-list notations; [`provenance`]: hashes and what a result must record.
//! * [`synth`]: synthetic KuaiRec in the official format.
//!
//! Private plumbing, one job per module: `csv_table` (streaming CSV with checked fields), `ascii_matrix`
//! (Coat's whitespace matrices), `locate` (finding files), `findings` (fail-fast vs collect), `duplicates`
//! (duplicate policy), `dense_ids` (id columns that must be exactly `0..n`), `user_table` (the user feature
//! tables).
//!
//! Pipeline position: **data** -> sim -> state/denoiser -> agents -> evaluation -> report/serve -> CLI.

mod ascii_matrix;
pub mod coat;
mod csv_table;
mod dense_ids;
mod duplicates;
pub mod error;
mod findings;
pub mod kuairand;
pub mod kuairec;
mod locate;
pub mod provenance;
pub mod source;
pub mod synth;
pub mod tags;
mod user_table;
pub mod validate;

pub use error::DataError;
pub use provenance::{sha256_file, InputFile, Provenance, SyntheticInfo};
pub use user_table::USER_FEATURES_HEADER;
pub use validate::{validate, validate_from, ValidationReport};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_set_names_round_trip() {
        for (dataset, name) in
            [(Dataset::KuaiRec, "kuairec"), (Dataset::KuaiRandPure, "kuairand-pure"), (Dataset::Coat, "coat")]
        {
            assert_eq!(serde_json::to_string(&dataset).unwrap(), format!("\"{name}\""));
            assert_eq!(name.parse::<Dataset>().unwrap(), dataset);
            assert_eq!(dataset.to_string(), name);
        }
        assert!("kuairand".parse::<Dataset>().is_err());
        assert_eq!(
            serde_json::to_string(&DuplicatePolicy::CollapseUserVideoTime).unwrap(),
            "\"collapse-user-video-time\""
        );
        assert_eq!(DuplicatePolicy::CollapseUserVideoTime.name(), "collapse-user-video-time");
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, DataError>;

/// What to do with repeated rows in an interaction log (the KuaiRec big matrix repeats some
/// `<user, video, time>` records up to 2,224 times; the anchors keep them as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DuplicatePolicy {
    /// Keep every row, as the anchors do (parity default). Duplicates are counted and reported.
    #[default]
    KeepAll,
    /// Drop rows identical in every column to an earlier row.
    DropExact,
    /// Keep the first row of each (user, video, time) triple.
    CollapseUserVideoTime,
}

impl DuplicatePolicy {
    /// The kebab-case name used in configuration files and provenance records.
    pub fn name(self) -> &'static str {
        match self {
            DuplicatePolicy::KeepAll => "keep-all",
            DuplicatePolicy::DropExact => "drop-exact",
            DuplicatePolicy::CollapseUserVideoTime => "collapse-user-video-time",
        }
    }
}

/// The data sets this crate reads, as named on the command line (`dsrm data validate kuairec DIR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dataset {
    /// KuaiRec 2.0 (`kuairec`).
    #[serde(rename = "kuairec")]
    KuaiRec,
    /// KuaiRand-Pure (`kuairand-pure`).
    #[serde(rename = "kuairand-pure")]
    KuaiRandPure,
    /// Coat (`coat`).
    Coat,
}

impl Dataset {
    /// The kebab-case name, as in serde and provenance records.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::KuaiRec => "kuairec",
            Dataset::KuaiRandPure => "kuairand-pure",
            Dataset::Coat => "coat",
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dataset {
    type Err = String;

    /// Parses the kebab-case name, so a CLI can take the data set as an argument.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "kuairec" => Ok(Dataset::KuaiRec),
            "kuairand-pure" => Ok(Dataset::KuaiRandPure),
            "coat" => Ok(Dataset::Coat),
            other => Err(format!("unknown data set {other:?}: expected kuairec, kuairand-pure or coat")),
        }
    }
}

/// A KuaiRec interaction log (`small_matrix.csv` or `big_matrix.csv`), stored by column.
///
/// The `time` string column is validated on load against `timestamp` but not kept: it is derived data
/// and would cost ~300 MB on the big matrix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KuaiRecLog {
    /// User id, inside the id space of `user_features.csv`.
    pub user_id: Vec<u32>,
    /// Video id, inside the id space of `item_categories.csv`.
    pub video_id: Vec<u32>,
    /// Watch time, ms.
    pub play_duration: Vec<i64>,
    /// Video length, ms.
    pub video_duration: Vec<i64>,
    /// YYYYMMDD; 0 where the official file has an empty cell.
    pub date: Vec<u32>,
    /// Unix seconds with a millisecond fraction; NaN where the official file has an empty cell.
    pub timestamp: Vec<f64>,
    /// play_duration / video_duration as written in the file; may be +inf or NaN where the
    /// video duration is 0 (the simulator caps and mean-fills those, `docs/protocol.md` §1.1).
    pub watch_ratio: Vec<f64>,
}

impl KuaiRecLog {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.user_id.len()
    }
    /// True when the log has no rows.
    pub fn is_empty(&self) -> bool {
        self.user_id.is_empty()
    }
}

/// KuaiRec 2.0, as loaded from a directory.
#[derive(Debug, Clone)]
pub struct KuaiRec {
    /// The fully observed 1,411 x 3,327 matrix: the simulator's ground truth.
    pub small: KuaiRecLog,
    /// The exposure-biased 7,176 x 10,728 log: the training log.
    pub big: KuaiRecLog,
    /// Raw tag list (`feat`) per video id, indexed by `video_id` (ids are dense 0..n).
    pub item_tags: Vec<Vec<i32>>,
    /// Number of users in `user_features.csv` (the user id space).
    pub n_feature_users: usize,
    /// Hashes, warnings and policies of this load.
    pub provenance: Provenance,
}

/// One KuaiRand-Pure log file (19 integer columns, official order), stored by column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KuaiRandLog {
    /// User id (0..27284 in the release).
    pub user_id: Vec<u32>,
    /// Video id (0..7582 in the release).
    pub video_id: Vec<u32>,
    /// YYYYMMDD as written (agrees with the UTC+8 date of `time_ms` on ~99% of rows; never derive one
    /// from the other, `docs/data.md` §2.4).
    pub date: Vec<u32>,
    /// Hour of day x 100, as written (hour resolution only).
    pub hourmin: Vec<u32>,
    /// Unix time, ms: the field to order by.
    pub time_ms: Vec<i64>,
    /// Valid play in the single-column feed (0/1): the default reward target.
    pub is_click: Vec<u8>,
    /// Like (0/1).
    pub is_like: Vec<u8>,
    /// Followed the author (0/1).
    pub is_follow: Vec<u8>,
    /// Commented (0/1).
    pub is_comment: Vec<u8>,
    /// Forwarded (0/1).
    pub is_forward: Vec<u8>,
    /// Hate / dislike (0/1).
    pub is_hate: Vec<u8>,
    /// Watched >= 18 s or the whole video (0/1), as given.
    pub long_view: Vec<u8>,
    /// Watch time, ms.
    pub play_time_ms: Vec<i64>,
    /// Video length, ms; 0 on some rows (then watch ratio is inf or NaN, `docs/protocol.md` §1.3).
    pub duration_ms: Vec<i64>,
    /// Time on the author's profile page, ms.
    pub profile_stay_time: Vec<i64>,
    /// Time in the comment section, ms.
    pub comment_stay_time: Vec<i64>,
    /// Entered the author's profile (0/1).
    pub is_profile_enter: Vec<u8>,
    /// 1 for a random exposure, 0 for the standard feed.
    pub is_rand: Vec<u8>,
    /// App tab (scenario) code, 0..14 in the release.
    pub tab: Vec<u8>,
}

impl KuaiRandLog {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.user_id.len()
    }
    /// True when the log has no rows.
    pub fn is_empty(&self) -> bool {
        self.user_id.is_empty()
    }
}

/// A dense user x item ground-truth table in DORL's `MF_results_GT/kuairand_<target>.csv` format.
#[derive(Debug, Clone)]
pub struct DenseTable {
    /// Rows (users).
    pub n_users: usize,
    /// Columns (videos).
    pub n_items: usize,
    /// Row-major `n_users * n_items` values.
    pub values: Vec<f64>,
}

/// KuaiRand-Pure, as loaded from a directory.
#[derive(Debug, Clone)]
pub struct KuaiRandPure {
    /// `log_standard_4_08_to_4_21_pure.csv`: the training log. When the official file is absent but other
    /// `log_standard_*.csv` files are present (e.g. the shipped one-day sample), they are used instead and a
    /// warning is recorded.
    pub standard_train: Option<KuaiRandLog>,
    /// `log_standard_4_22_to_5_08_pure.csv`.
    pub standard_test: Option<KuaiRandLog>,
    /// `log_random_4_22_to_5_08_pure.csv`: random exposures, the unbiased log.
    pub random: Option<KuaiRandLog>,
    /// Tags per video id (0..7582); untagged videos get the pseudo-tag `[-1]` (`docs/protocol.md` §1.2).
    pub video_tags: Vec<Vec<i32>>,
    /// Number of users in `user_features_pure.csv` (27,285 in the release).
    pub n_users: usize,
    /// DORL's completed ground truth, when the user has `MF_results_GT/kuairand_is_click.csv`.
    pub ground_truth: Option<DenseTable>,
    /// Hashes, warnings and policies of this load.
    pub provenance: Provenance,
}

/// Coat (Schnabel et al. 2016), as loaded from a directory.
#[derive(Debug, Clone)]
pub struct Coat {
    /// Users (rows of every matrix): 290 in the release.
    pub n_users: usize,
    /// Items (columns): 300 in the release.
    pub n_items: usize,
    /// Self-selected (MNAR) ratings, row-major `n_users * n_items`, 0 = unobserved, else 1..5.
    pub train: Vec<u8>,
    /// Uniformly sampled (MCAR) ratings, same layout.
    pub test: Vec<u8>,
    /// Learned propensities, same layout.
    pub propensities: Vec<f64>,
    /// Decoded one-hot user features: per user, one category index per group (gender, age, location, fashion).
    pub user_features: Vec<Vec<u8>>,
    /// Decoded one-hot item features: per item, one category index per group (gender, jackettype, color, onfrontpage).
    pub item_features: Vec<Vec<u8>>,
    /// Group names and value names, in file order, e.g. `("jackettype", ["parkas", ...])`.
    pub user_feature_groups: Vec<(String, Vec<String>)>,
    /// Item feature groups and value names, in file order.
    pub item_feature_groups: Vec<(String, Vec<String>)>,
    /// Hashes and warnings of this load.
    pub provenance: Provenance,
}
