#![doc = include_str!("model.md")]
//!
//! ## Use
//!
//! ```no_run
//! use dsrm_data::synth::{generate, SynthConfig, SynthSize};
//! let cfg = SynthConfig::for_size(SynthSize::Tiny);
//! let summary = generate(&cfg, 7, "data/synth-tiny".as_ref(), &mut |_stage, _done, _total| {})?;
//! println!("{} big-matrix rows", summary.stats.big_rows);
//! # Ok::<(), dsrm_data::DataError>(())
//! ```
//!
//! The same configuration and seed give byte-identical files (no parallelism, no hash-map order, one
//! ChaCha8 stream per stage and id). The data set is written into a hidden folder next to `out_dir` and
//! renamed into place at the end, so an interrupted run never leaves a half-written folder that looks
//! complete.
//!
//! Code map: `model` (sections 1–4: ids, users, videos, μ), `matrices` (sections 5–9), `features`
//! (section 10), `calendar` (time columns), `truth` (truth files and notes), `writer` (hashing sink).

mod calendar;
mod categories;
mod features;
mod matrices;
mod model;
mod truth;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use categories::ITEM_CATEGORIES_CSV;
pub use features::USER_FEATURES_HEADER;
pub use matrices::{MATRIX_HEADER, TRUTH_SMALL_HEADER};
pub use model::{KUAIREC_USERS, KUAIREC_VIDEOS};

use crate::{DataError, InputFile, Result, SyntheticInfo};
use calendar::Calendar;
use categories::Categories;
use matrices::{Matrices, RatioStats};
use model::Model;
use writer::{io_error, write_text, Sink};

/// `generator` in `synthetic.json`.
pub const GENERATOR: &str = "dsrm-synth";
/// Bumped whenever the same config and seed would give different files, so a result can be traced to
/// the generator that made its data.
pub const GENERATOR_VERSION: &str = "1.0.0";

/// Size presets. Both use real KuaiRec ids and the real categories; only the matrix shapes differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SynthSize {
    /// The official shapes: 1,411 x 3,327 small; 7,176 x 10,728 big at ≈ 16% (≈ 12.4 M rows, ≈ 1 GB).
    #[default]
    Full,
    /// For tests and CI: 60 x 200 small; 400 x 1,000 big (≈ 64 k rows). Generates in well under a second.
    Tiny,
}

impl SynthSize {
    /// The kebab-case name (`full`, `tiny`), as in `synthetic.json`.
    pub fn name(self) -> &'static str {
        match self {
            SynthSize::Full => "full",
            SynthSize::Tiny => "tiny",
        }
    }
}

/// Every setting of the generator; see the module documentation for the formula each one enters.
/// Missing fields in a serialised config take the `full` defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// The preset this config started from (recorded in `synthetic.json`).
    pub size: SynthSize,

    // Section 1: shapes.
    /// Users of the big matrix (≤ 7,176).
    pub n_big_users: usize,
    /// Videos of the big matrix (≤ 10,728).
    pub n_big_videos: usize,
    /// Users of the small matrix (a subset of the big users).
    pub n_small_users: usize,
    /// Videos of the small matrix (a subset of the big videos).
    pub n_small_videos: usize,

    // Section 2: users.
    /// Mean of the Poisson number of favourite tags beyond the first.
    pub fav_extra_mean: f64,
    /// Added to each tag's video count in the favourite-tag prior, so rare tags can be favourites.
    pub fav_tag_smoothing: f64,
    /// Spread of every tag affinity around 0.
    pub affinity_bg_sd: f64,
    /// Mean extra affinity of a favourite tag.
    pub affinity_fav_mean: f64,
    /// Spread of the extra affinity of a favourite tag.
    pub affinity_fav_sd: f64,
    /// Spread of the per-user log watch-ratio bias β_u.
    pub user_bias_sd: f64,
    /// Dimension k of the latent user/video factors.
    pub n_factors: usize,
    /// Log-spread of the activity α_u (scales the user's big-matrix row count).
    pub activity_sd: f64,

    // Section 3: videos.
    /// Spread of video quality q_v.
    pub quality_sd: f64,
    /// Log-spread of the popularity weight π_v (the heavier, the longer the tail).
    pub popularity_log_sd: f64,
    /// Correlation of log popularity with quality.
    pub popularity_quality_corr: f64,
    /// Median video length, ms.
    pub duration_median_ms: f64,
    /// Log-spread of the video length.
    pub duration_log_sd: f64,
    /// Shortest video, ms.
    pub duration_min_ms: i64,
    /// Longest video, ms.
    pub duration_max_ms: i64,
    /// Mean number of videos per author group (blocking acts on authors).
    pub videos_per_author: f64,
    /// Share of videos written with `video_duration` 0 (their ratios become `inf`, or NaN for 0/0).
    pub zero_duration_rate: f64,

    // Section 4: true expected watch ratio.
    /// Constant of ln μ; sets the median watch ratio.
    pub log_ratio_intercept: f64,
    /// Weight of the latent-factor interaction in ln μ.
    pub factor_scale: f64,
    /// How much longer videos are watched to a smaller fraction.
    pub duration_effect: f64,

    // Section 5: observations.
    /// Log-spread of the mean-one observation noise.
    pub noise_log_sd: f64,
    /// Additional log-spread of the noise in the big matrix.
    pub big_extra_noise_log_sd: f64,
    /// Popularity bias of big-matrix feedback: ratios are multiplied by exp(this · l_v).
    pub big_popularity_bias: f64,
    /// Share of rows that are re-watch loops (ratio above `rewatch_loop_min`).
    pub rewatch_loop_rate: f64,
    /// Smallest ratio of a re-watch loop.
    pub rewatch_loop_min: f64,
    /// Mean excess of a re-watch loop over `rewatch_loop_min`.
    pub rewatch_loop_excess_mean: f64,

    // Section 6: blocked small-matrix cells.
    /// Probability that a small user blocked a given author.
    pub block_author_rate: f64,
    /// Probability that a small-matrix cell is missing for no author reason.
    pub block_random_rate: f64,

    // Section 7: big-matrix exposure.
    /// Target share of (big user, big video) cells with a row (before duplicates).
    pub big_density: f64,
    /// Leave the small matrix's (user, video) cells out of the big matrix.
    pub big_excludes_small_cells: bool,
    /// Fewest big-matrix rows per user (unless fewer videos are eligible).
    pub min_big_rows_per_user: usize,
    /// Exponent of π_v in the exposure weight.
    pub exposure_popularity_power: f64,
    /// Exponent of μ_uv in the exposure weight.
    pub exposure_preference_power: f64,

    // Section 8: times.
    /// First day of the period, `YYYY-MM-DD` (Beijing time).
    pub start_date: String,
    /// Number of days in the period.
    pub n_days: u32,
    /// Relative activity per hour of the Beijing day (24 entries).
    pub hour_weights: Vec<f64>,

    // Section 9: duplicate rows.
    /// Extra (duplicate) rows as a share of the big matrix's rows.
    pub duplicate_row_rate: f64,
    /// Share of the duplicates concentrated on a few heavily repeated rows.
    pub duplicate_heavy_share: f64,
    /// Number of heavily repeated rows.
    pub duplicate_heavy_rows: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            size: SynthSize::Full,
            n_big_users: KUAIREC_USERS,
            n_big_videos: KUAIREC_VIDEOS,
            n_small_users: 1_411,
            n_small_videos: 3_327,
            fav_extra_mean: 2.0,
            fav_tag_smoothing: 10.0,
            affinity_bg_sd: 0.2,
            affinity_fav_mean: 0.6,
            affinity_fav_sd: 0.2,
            user_bias_sd: 0.15,
            n_factors: 8,
            activity_sd: 0.45,
            quality_sd: 0.2,
            popularity_log_sd: 1.5,
            popularity_quality_corr: 0.2,
            duration_median_ms: 12_000.0,
            duration_log_sd: 0.75,
            duration_min_ms: 2_000,
            duration_max_ms: 300_000,
            videos_per_author: 4.0,
            zero_duration_rate: 0.0,
            log_ratio_intercept: -0.29,
            factor_scale: 0.1,
            duration_effect: 0.15,
            noise_log_sd: 0.36,
            big_extra_noise_log_sd: 0.15,
            big_popularity_bias: 0.1,
            rewatch_loop_rate: 0.002,
            rewatch_loop_min: 5.0,
            rewatch_loop_excess_mean: 4.0,
            block_author_rate: 0.003,
            block_random_rate: 0.001,
            big_density: 0.16,
            big_excludes_small_cells: true,
            min_big_rows_per_user: 20,
            exposure_popularity_power: 0.8,
            exposure_preference_power: 0.5,
            start_date: "2020-07-05".to_string(),
            n_days: 63,
            hour_weights: vec![
                3.0, 2.0, 1.2, 0.7, 0.5, 0.5, 0.8, 1.5, 2.5, 3.0, 3.2, 3.5, 4.0, 3.6, 3.3, 3.3, 3.5, 3.8, 4.2, 5.0,
                5.6, 6.0, 5.6, 4.5,
            ],
            duplicate_row_rate: 0.003,
            duplicate_heavy_share: 0.5,
            duplicate_heavy_rows: 8,
        }
    }
}

impl SynthConfig {
    /// The preset for `size`; the model settings are the same for every size.
    pub fn for_size(size: SynthSize) -> Self {
        match size {
            SynthSize::Full => SynthConfig::default(),
            SynthSize::Tiny => SynthConfig {
                size,
                n_big_users: 400,
                n_big_videos: 1_000,
                n_small_users: 60,
                n_small_videos: 200,
                duplicate_heavy_rows: 2,
                ..SynthConfig::default()
            },
        }
    }

    /// Checks every setting; returns the parsed start date.
    pub fn validate(&self) -> Result<NaiveDate> {
        let mut problems = Vec::new();
        let mut need = |ok: bool, what: &str| {
            if !ok {
                problems.push(what.to_string());
            }
        };
        need((1..=KUAIREC_USERS).contains(&self.n_big_users), "n_big_users in 1..=7176");
        need((1..=KUAIREC_VIDEOS).contains(&self.n_big_videos), "n_big_videos in 1..=10728");
        need((1..=self.n_big_users).contains(&self.n_small_users), "n_small_users in 1..=n_big_users");
        need((1..=self.n_big_videos).contains(&self.n_small_videos), "n_small_videos in 1..=n_big_videos");
        let sds = [
            self.fav_extra_mean,
            self.fav_tag_smoothing,
            self.affinity_bg_sd,
            self.affinity_fav_sd,
            self.user_bias_sd,
            self.activity_sd,
            self.quality_sd,
            self.popularity_log_sd,
            self.duration_log_sd,
            self.factor_scale,
            self.noise_log_sd,
            self.big_extra_noise_log_sd,
            self.rewatch_loop_excess_mean,
        ];
        need(sds.iter().all(|x| x.is_finite() && *x >= 0.0), "spreads, means and smoothing finite and >= 0");
        let rates = [
            self.zero_duration_rate,
            self.rewatch_loop_rate,
            self.block_author_rate,
            self.block_random_rate,
            self.duplicate_row_rate,
            self.duplicate_heavy_share,
        ];
        need(rates.iter().all(|x| (0.0..=1.0).contains(x)), "rates and shares in [0, 1]");
        need(self.big_density > 0.0 && self.big_density <= 1.0, "big_density in (0, 1]");
        need((-1.0..=1.0).contains(&self.popularity_quality_corr), "popularity_quality_corr in [-1, 1]");
        need(self.n_factors <= 256, "n_factors <= 256");
        need(
            self.duration_median_ms >= 1.0 && self.duration_min_ms >= 1 && self.duration_min_ms <= self.duration_max_ms,
            "1 <= duration_min_ms <= duration_max_ms, duration_median_ms >= 1",
        );
        need(self.videos_per_author >= 1.0, "videos_per_author >= 1");
        let others = [
            self.log_ratio_intercept,
            self.affinity_fav_mean,
            self.duration_effect,
            self.big_popularity_bias,
            self.rewatch_loop_min,
            self.exposure_popularity_power,
            self.exposure_preference_power,
        ];
        need(others.iter().all(|x| x.is_finite()), "all settings finite");
        need(self.n_days >= 1, "n_days >= 1");
        need(
            self.hour_weights.len() == 24
                && self.hour_weights.iter().all(|w| w.is_finite() && *w >= 0.0)
                && self.hour_weights.iter().sum::<f64>() > 0.0,
            "hour_weights: 24 values >= 0 with a positive sum",
        );
        let start = NaiveDate::parse_from_str(&self.start_date, "%Y-%m-%d");
        need(start.is_ok(), "start_date as YYYY-MM-DD");
        if problems.is_empty() {
            Ok(start.expect("checked"))
        } else {
            Err(DataError::Invalid {
                dir: PathBuf::from("<synth config>"),
                detail: format!("invalid settings: need {}", problems.join("; ")),
            })
        }
    }
}

/// Counts and distribution checks of a generated data set (also written to `synthetic.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthStats {
    pub small_users: u64,
    pub small_videos: u64,
    pub small_rows: u64,
    /// Small-matrix cells without a row.
    pub small_blocked: u64,
    /// small_rows / (small_users · small_videos).
    pub small_density: f64,
    pub big_users: u64,
    pub big_videos: u64,
    /// All rows, duplicates included.
    pub big_rows: u64,
    /// Rows that repeat an earlier row exactly.
    pub big_duplicates: u64,
    /// (big_rows − big_duplicates) / (big_users · big_videos).
    pub big_density: f64,
    /// l̄: the exposure-weighted mean log popularity the big-matrix feedback bias is centred on.
    pub big_bias_center: f64,
    /// Means of the finite watch ratios.
    pub small_ratio_mean: f64,
    pub big_ratio_mean: f64,
    /// Quantile levels of the `*_ratio_quantiles` below.
    pub quantile_levels: Vec<f64>,
    /// Quantiles of the finite small-matrix watch ratios.
    pub small_ratio_quantiles: Vec<f64>,
    /// Quantiles of the finite big-matrix watch ratios.
    pub big_ratio_quantiles: Vec<f64>,
    /// Shares of rows with watch_ratio > 2 and > 5, per matrix.
    pub small_share_above_2: f64,
    pub small_share_above_5: f64,
    pub big_share_above_2: f64,
    pub big_share_above_5: f64,
    /// Rows with an `inf` or empty (NaN) watch_ratio, both matrices.
    pub non_finite_ratios: u64,
}

/// The content of `synthetic.json`. Its top-level fields include those of [`SyntheticInfo`], so a
/// reader that only wants the label can parse the file as a `SyntheticInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthManifest {
    #[serde(flatten)]
    pub synthetic: SyntheticInfo,
    /// A plain-words label for anyone who opens the file.
    pub note: String,
    /// Every other file of the data set, with its sha256 (paths relative to the data set folder).
    pub files: Vec<InputFile>,
    pub stats: SynthStats,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSummary {
    /// The data set folder.
    pub out_dir: PathBuf,
    pub synthetic: SyntheticInfo,
    /// Every file written, `synthetic.json` last (paths relative to `out_dir`).
    pub files: Vec<InputFile>,
    pub stats: SynthStats,
}

/// The file name of the manifest.
pub const MANIFEST_FILE: &str = "synthetic.json";

/// Generates a synthetic KuaiRec data set into `out_dir`, which must not exist or be an empty folder.
///
/// `progress(stage, done, total)` is called as the work advances (the CLI maps it to a progress bar).
/// The files are written into a hidden sibling folder and renamed to `out_dir` only when all are complete.
pub fn generate(
    cfg: &SynthConfig,
    seed: u64,
    out_dir: &Path,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<SynthSummary> {
    let start = cfg.validate()?;
    if out_dir.exists() && !is_empty_dir(out_dir)? {
        return Err(io_error(
            out_dir,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "output folder exists and is not empty; remove it or choose another",
            ),
        ));
    }
    let name = out_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "synth".to_string());
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| io_error(&parent, e))?;
    // Unique per process and call, so concurrent generations never share a temporary folder.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let tmp = parent.join(format!(".{name}.tmp-{}-{call}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io_error(&tmp, e))?;
    }
    let truth_dir = tmp.join("truth");
    std::fs::create_dir_all(&truth_dir).map_err(|e| io_error(&truth_dir, e))?;

    let written = write_dataset(cfg, seed, start, &tmp, progress).and_then(|done| {
        if out_dir.exists() {
            std::fs::remove_dir(out_dir).map_err(|e| io_error(out_dir, e))?;
        }
        std::fs::rename(&tmp, out_dir).map_err(|e| io_error(out_dir, e))?;
        Ok(done)
    });
    match written {
        Ok((synthetic, files, stats)) => Ok(SynthSummary { out_dir: out_dir.to_path_buf(), synthetic, files, stats }),
        Err(e) => {
            // Best effort: the hidden folder never looks like a data set, so a leftover is harmless.
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

fn is_empty_dir(dir: &Path) -> Result<bool> {
    if !dir.is_dir() {
        return Ok(false);
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    Ok(entries.next().is_none())
}

/// Writes every file into `root`; returns the label, the file records (manifest last) and the stats.
fn write_dataset(
    cfg: &SynthConfig,
    seed: u64,
    start: NaiveDate,
    root: &Path,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<(SyntheticInfo, Vec<InputFile>, SynthStats)> {
    progress("latent model", 0, 1);
    let model = Model::draw(cfg, seed, Categories::embedded()?);
    let cal = Calendar::new(start, cfg.n_days, &cfg.hour_weights);
    let matrices = Matrices::new(cfg, seed, &model, &cal);
    progress("latent model", 1, 1);

    let mut files = Vec::new();
    let mut small = Sink::create(root, "small_matrix.csv")?;
    let mut truth_small = Sink::create(root, "truth/true_watch_ratio_small.csv")?;
    let mut small_stats = matrices.write_small(&mut small, &mut truth_small, progress)?;
    // The truth file has every cell, the matrix every unblocked one.
    let small_blocked = truth_small.rows() - small.rows();
    files.push(small.finish()?);
    let truth_small = truth_small.finish()?;

    let mut big = Sink::create(root, "big_matrix.csv")?;
    let (mut big_stats, big_duplicates) = matrices.write_big(&mut big, progress)?;
    files.push(big.finish()?);

    progress("side tables", 0, 1);
    let mut categories = Sink::create(root, "item_categories.csv")?;
    let data_rows = ITEM_CATEGORIES_CSV.lines().count() as u64 - 1;
    categories.raw(ITEM_CATEGORIES_CSV.as_bytes(), data_rows)?;
    files.push(categories.finish()?);
    files.push(features::write(root, seed, &model.users)?);
    files.push(truth::write_user_preferences(root, cfg, &model)?);
    files.push(truth::write_item_truth(root, cfg, &model)?);
    files.push(truth_small);
    files.extend(truth::write_notes(root, cfg, seed)?);
    progress("side tables", 1, 1);

    let mut stats = stats(cfg, &mut small_stats, small_blocked, &mut big_stats, big_duplicates);
    stats.big_bias_center = matrices::feedback_bias(cfg, &model).0;
    let synthetic = SyntheticInfo {
        generator: GENERATOR.to_string(),
        generator_version: GENERATOR_VERSION.to_string(),
        seed,
        size: cfg.size.name().to_string(),
        settings: serde_json::to_value(cfg).expect("config serialises"),
    };
    let manifest = SynthManifest {
        synthetic: synthetic.clone(),
        note: "SYNTHETIC data in the KuaiRec 2.0 format, with the real KuaiRec item categories \
               (CC BY-SA 4.0, see LICENSE-NOTE.md). Not KuaiRec data; numbers from it are not KuaiRec \
               results."
            .to_string(),
        files: files.clone(),
        stats: stats.clone(),
    };
    let mut json = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    json.push('\n');
    files.push(write_text(root, MANIFEST_FILE, &json)?);
    Ok((synthetic, files, stats))
}

const QUANTILE_LEVELS: [f64; 7] = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99];

fn stats(
    cfg: &SynthConfig,
    small: &mut RatioStats,
    small_blocked: u64,
    big: &mut RatioStats,
    big_duplicates: u64,
) -> SynthStats {
    let share = |n: u64, of: u64| n as f64 / of.max(1) as f64;
    let small_cells = (cfg.n_small_users * cfg.n_small_videos) as u64;
    let big_cells = (cfg.n_big_users * cfg.n_big_videos) as u64;
    SynthStats {
        small_users: cfg.n_small_users as u64,
        small_videos: cfg.n_small_videos as u64,
        small_rows: small.rows,
        small_blocked,
        small_density: share(small.rows, small_cells),
        big_users: cfg.n_big_users as u64,
        big_videos: cfg.n_big_videos as u64,
        big_rows: big.rows,
        big_duplicates,
        big_density: share(big.rows - big_duplicates, big_cells),
        big_bias_center: 0.0,
        small_ratio_mean: small.mean(),
        big_ratio_mean: big.mean(),
        quantile_levels: QUANTILE_LEVELS.to_vec(),
        small_ratio_quantiles: small.quantiles(&QUANTILE_LEVELS),
        big_ratio_quantiles: big.quantiles(&QUANTILE_LEVELS),
        small_share_above_2: share(small.above_2, small.rows),
        small_share_above_5: share(small.above_5, small.rows),
        big_share_above_2: share(big.above_2, big.rows),
        big_share_above_5: share(big.above_5, big.rows),
        non_finite_ratios: small.non_finite + big.non_finite,
    }
}
