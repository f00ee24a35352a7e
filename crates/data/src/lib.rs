//! Loaders for the three data sets this project evaluates on, in their *official, untouched* file formats,
//! plus a generator of synthetic KuaiRec in the same byte format.
//!
//! Every loader validates headers, column order and every value; a problem is a [`DataError`] naming the
//! file, the line, the column and the expected form. Every input file's sha256 is recorded in the
//! [`Provenance`] that travels with the loaded data, together with count mismatches and duplicate handling.
//!
//! Pipeline position: **data** -> sim -> state/denoiser -> agents -> evaluation -> report/serve -> CLI.

pub mod coat;
pub mod error;
pub mod kuairand;
pub mod kuairec;
pub mod provenance;
pub mod synth;
pub mod tags;

pub use error::DataError;
pub use provenance::{InputFile, Provenance, SyntheticInfo};

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

/// A KuaiRec interaction log (`small_matrix.csv` or `big_matrix.csv`), stored by column.
///
/// The `time` string column is validated on load against `timestamp` but not kept: it is derived data
/// and would cost ~300 MB on the big matrix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KuaiRecLog {
    pub user_id: Vec<u32>,
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
    /// video duration is 0 (the simulator caps and mean-fills those, simulators.md §1.1).
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
    pub user_id: Vec<u32>,
    pub video_id: Vec<u32>,
    pub date: Vec<u32>,
    pub hourmin: Vec<u32>,
    pub time_ms: Vec<i64>,
    pub is_click: Vec<u8>,
    pub is_like: Vec<u8>,
    pub is_follow: Vec<u8>,
    pub is_comment: Vec<u8>,
    pub is_forward: Vec<u8>,
    pub is_hate: Vec<u8>,
    pub long_view: Vec<u8>,
    pub play_time_ms: Vec<i64>,
    pub duration_ms: Vec<i64>,
    pub profile_stay_time: Vec<i64>,
    pub comment_stay_time: Vec<i64>,
    pub is_profile_enter: Vec<u8>,
    pub is_rand: Vec<u8>,
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
    pub n_users: usize,
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
    /// Tags per video id (0..7582); untagged videos get the pseudo-tag `[-1]` (simulators.md §1.2).
    pub video_tags: Vec<Vec<i32>>,
    /// Number of users in `user_features_pure.csv` (27,285 in the release).
    pub n_users: usize,
    /// DORL's completed ground truth, when the user has `MF_results_GT/kuairand_is_click.csv`.
    pub ground_truth: Option<DenseTable>,
    pub provenance: Provenance,
}

/// Coat (Schnabel et al. 2016), as loaded from a directory.
#[derive(Debug, Clone)]
pub struct Coat {
    pub n_users: usize,
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
    pub item_feature_groups: Vec<(String, Vec<String>)>,
    pub provenance: Provenance,
}
