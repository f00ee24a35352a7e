//! From loaded data to a ready environment: the ground-truth env plus what policies may learn from (the
//! training log in dense ids) and the per-item facts the metrics need (training popularity, tags).
//!
//! | data set | env users x items | ground truth | quit rule | training log |
//! |---|---|---|---|---|
//! | KuaiRec | small-matrix users x videos | capped, mean-filled small matrix | category window | big matrix |
//! | KuaiRand-Pure | 27,285 x 7,583 | DORL's file, or an MF completion fitted here | category window (untagged = -1) | standard log 4-08..4-21 |
//! | Coat | 290 x 300 | MF completion of train + test ratings, rounded to 1..5 | distance window | train ratings |

use crate::env::EnvSpec;
use crate::ground_truth::{kuairec_truth, LowRank, RewardTable, SmallDuplicates};
use crate::preset::EnvSettings;
use crate::quit::PopularityQuit;
use crate::quit::QuitRule;
use crate::tags::TagMasks;
use crate::{Result, SimError};
use dsrm_data::{
    coat, kuairand, kuairec, Coat, Dataset, DuplicatePolicy, KuaiRandLog, KuaiRandPure, KuaiRec, Provenance,
};
use dsrm_models::mf::MfLoss;
use dsrm_models::{Interactions, MatrixFactorization, MfConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where the KuaiRand-Pure ground truth comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TruthSource {
    /// DORL's `MF_results_GT/kuairand_is_click.csv` when present (parity), else a fit.
    #[default]
    Auto,
    /// Require DORL's file.
    File,
    /// Always fit our own completion.
    Fit,
}

/// Which KuaiRand-Pure log the completion is fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FitLog {
    /// The random-exposure log when present (unbiased), else the standard training log.
    #[default]
    Auto,
    Random,
    Standard,
}

/// How a [`World`] is built from data. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorldConfig {
    /// KuaiRec: what to do with a repeated (user, video) pair in the small matrix.
    pub small_duplicates: SmallDuplicates,
    /// KuaiRand-Pure: ground-truth source.
    pub kuairand_truth: TruthSource,
    /// KuaiRand-Pure: the log a fitted completion learns from.
    pub kuairand_fit_log: FitLog,
    /// MF settings for fitted completions (KuaiRand-Pure, Coat); the loss is chosen per data set.
    pub completion: MfConfig,
    /// Coat: window of the distance quit rule (DORL default 3).
    pub coat_window: usize,
    /// Coat: the user quits when the new item is closer than this to a window item (DORL default 10).
    pub coat_min_distance: f64,
    /// Coat: round the completed ratings to integers 1..5, like the anchors' integer pseudo ground truth.
    pub coat_round: bool,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            small_duplicates: SmallDuplicates::default(),
            kuairand_truth: TruthSource::default(),
            kuairand_fit_log: FitLog::default(),
            completion: MfConfig::default(),
            coat_window: 3,
            coat_min_distance: 10.0,
            coat_round: true,
        }
    }
}

/// An environment and everything derived from the same data.
#[derive(Debug, Clone)]
pub struct World {
    /// `kuairec`, `kuairand-pure` or `coat`.
    pub dataset: String,
    pub spec: EnvSpec,
    pub settings: EnvSettings,
    /// Dense user -> the data set's `user_id`.
    pub user_ids: Vec<u32>,
    /// Dense item -> the data set's `video_id` / item index.
    pub item_ids: Vec<u32>,
    /// Raw categories per dense item.
    pub item_tags: Vec<Vec<i32>>,
    /// The training log in dense ids (env users first), rows ordered by (user, time) so sequential models
    /// can walk it. Policies learn from this, never from the truth.
    pub train: Interactions,
    /// The whole training log: `train` plus rows on videos outside the catalogue (KuaiRec's big matrix covers
    /// 10,728 videos; the catalogue is the small matrix's 3,327). Catalogue items keep their dense ids and
    /// the others follow; users are the same as in `train`. User models fit on it.
    pub train_full: Interactions,
    /// Raw categories of every item of `train_full` (catalogue first).
    pub item_tags_full: Vec<Vec<i32>>,
    /// `duration_normed` of every item of `train_full` (catalogue first).
    pub item_duration_full: Vec<f64>,
    /// Per item: the mean of DORL's `duration_normed` (z-score of video duration over per-item means), the
    /// dense item feature of the user models (0 where unknown).
    pub item_duration_normed: Vec<f64>,
    /// Distinct (user, item) training pairs per item: the long-tail split (`docs/protocol.md` §6.2).
    pub pair_counts: Vec<u64>,
    /// Novelty popularity pop(i) per item (EasyRL4Rec definitions, §6.1).
    pub popularity: Vec<f64>,
    /// Positive training rows per raw tag, for recomputing the MCD dominant categories (§6.1).
    pub positive_tag_counts: Vec<(i32, u64)>,
    /// Human-readable facts about how this world was built (recorded in provenance).
    pub notes: Vec<String>,
    pub provenance: Provenance,
}

impl World {
    /// True when built from synthetic data (every artefact must say so).
    pub fn is_synthetic(&self) -> bool {
        self.provenance.synthetic.is_some()
    }

    /// This world with a seeded share `fraction` of its training log: each (user, item) pair is kept or dropped
    /// as a whole, in `train` and `train_full` alike, by a hash of (seed, user, item). A feedback-loop study
    /// starts from a small log so that what the recommender serves weighs in the log it learns from next.
    pub fn with_log_fraction(&self, fraction: f64, seed: u64) -> World {
        if fraction >= 1.0 {
            return self.clone();
        }
        let mut out = self.clone();
        out.train_full = keep_pairs(&self.train_full, fraction, seed);
        out.train = keep_pairs(&self.train, fraction, seed);
        out.pair_counts = distinct_pair_counts(&out.train);
        out.notes.push(format!("training log cut to a {fraction} share of its (user, item) pairs (seed {seed})"));
        out
    }

    /// This world after a deployment whose served interactions joined the training log (the feedback loop):
    /// each `(user, items, rewards)` episode adds one row per step to `train` and `train_full`, at the end of
    /// that user's rows (the log stays ordered by user, then time), with the reward as the row's target. Only
    /// the log and what policies learn from it change (`pair_counts`, hence the long-tail split of *this*
    /// world); the environment, its ground truth and the metric inputs (`popularity`, `positive_tag_counts`)
    /// stay those of the original data, so rounds of a loop are scored alike.
    pub fn with_logged_episodes<'e>(&self, episodes: impl IntoIterator<Item = (u32, &'e [u32], &'e [f64])>) -> World {
        let mut new_rows: std::collections::BTreeMap<u32, Vec<(u32, f64)>> = Default::default();
        for (user, items, rewards) in episodes {
            let rows = new_rows.entry(user).or_default();
            rows.extend(items.iter().zip(rewards).map(|(&i, &r)| (i, r)));
        }
        let mut out = self.clone();
        out.train_full = append_rows(&self.train_full, &new_rows);
        out.train = append_rows(&self.train, &new_rows);
        out.pair_counts = distinct_pair_counts(&out.train);
        let served: usize = new_rows.values().map(Vec::len).sum();
        out.notes.push(format!("training log extended by {served} served interactions (feedback loop)"));
        out
    }

    /// The world of data set `dataset` read from its official files in `dir` (KuaiRec 2.0, KuaiRand-Pure or
    /// Coat, flat or in the official layout), with repeated log rows handled by `duplicates`. `status` hears one
    /// line before the environment is built (fitting KuaiRand-Pure's completion may take a while).
    pub fn from_dir(
        dataset: Dataset,
        dir: &Path,
        duplicates: DuplicatePolicy,
        settings: EnvSettings,
        cfg: &WorldConfig,
        status: &mut dyn FnMut(&str),
    ) -> Result<World> {
        Ok(match dataset {
            Dataset::KuaiRec => {
                let opts = kuairec::LoadOptions { duplicate_policy: duplicates, ..Default::default() };
                let data = kuairec::load(dir, &opts)?;
                status("building the KuaiRec environment");
                World::kuairec(&data, settings, cfg)?
            }
            Dataset::KuaiRandPure => {
                let opts = kuairand::LoadOptions { duplicate_policy: duplicates, ..Default::default() };
                let data = kuairand::load(dir, &opts)?;
                status("building the KuaiRand-Pure environment (may fit the MF completion)");
                World::kuairand(&data, settings, cfg)?
            }
            Dataset::Coat => World::coat(&coat::load(dir)?, settings, cfg)?,
        })
    }

    /// The KuaiRec world (`KuaiEnv-v0`).
    pub fn kuairec(data: &KuaiRec, settings: EnvSettings, cfg: &WorldConfig) -> Result<World> {
        let truth = kuairec_truth(&data.small, cfg.small_duplicates)?;
        let item_tags = lookup_tags(&data.item_tags, &truth.item_ids, "item_categories.csv")?;
        let spec = category_spec(truth.table.clone(), &item_tags, settings)?;

        // Training log: the big matrix restricted to catalogue videos; small-matrix users keep their dense
        // ids, the other big-matrix users follow. Target: watch ratio capped like the reward; NaN rows dropped.
        let item_of = dense_map(&truth.item_ids);
        let big = &data.big;
        // The whole big matrix is the training log (`train_full`): catalogue videos keep their dense ids and the
        // other videos follow in id order, so user models learn the environment users from all their rows.
        let mut extra_videos: Vec<u32> = big.video_id.iter().copied().filter(|v| !item_of.contains_key(v)).collect();
        extra_videos.sort_unstable();
        extra_videos.dedup();
        let mut full_item_of = item_of.clone();
        let n_catalogue = truth.item_ids.len();
        extra_videos.iter().enumerate().for_each(|(k, &v)| {
            full_item_of.insert(v, (n_catalogue + k) as u32);
        });
        let mut user_of = dense_map(&truth.user_ids);
        let mut n_users = truth.user_ids.len();
        let mut train_full = Interactions { n_items: n_catalogue + extra_videos.len(), ..Default::default() };
        let mut dropped_nan = 0usize;
        let mut rows: Vec<usize> = (0..big.len()).collect();
        rows.sort_by(|&a, &b| {
            (big.user_id[a], big.timestamp[a])
                .partial_cmp(&(big.user_id[b], big.timestamp[b]))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(&b))
        });
        for row in rows {
            let item = full_item_of[&big.video_id[row]];
            let w = big.watch_ratio[row];
            if w.is_nan() {
                dropped_nan += 1;
                continue;
            }
            let user = *user_of.entry(big.user_id[row]).or_insert_with(|| {
                n_users += 1;
                (n_users - 1) as u32
            });
            train_full.user.push(user);
            train_full.item.push(item);
            train_full.target.push(w.min(crate::ground_truth::KUAIREC_REWARD_CAP));
        }
        train_full.n_users = n_users;
        let train = catalogue_rows(&train_full, n_catalogue);
        let mut full_videos = truth.item_ids.clone();
        full_videos.extend(&extra_videos);

        // Novelty popularity: big-matrix rows with watch_ratio >= 1 per item / distinct big-matrix users.
        let mut big_users = big.user_id.clone();
        big_users.sort_unstable();
        big_users.dedup();
        let mut liked = vec![0u64; truth.item_ids.len()];
        for row in 0..big.len() {
            if big.watch_ratio[row] >= 1.0 {
                if let Some(&item) = item_of.get(&big.video_id[row]) {
                    liked[item as usize] += 1;
                }
            }
        }
        let popularity = liked.iter().map(|&c| c as f64 / big_users.len().max(1) as f64).collect();

        // MCD positives: big-matrix rows with gaussian watch_ratio_normed >= 0.6 (z-score per video over
        // big + small, sample std, > 10 -> 10, NaN -> 0), counted per raw tag of the video.
        let normed = gaussian_normed(
            &[(&big.video_id, &big.watch_ratio), (&data.small.video_id, &data.small.watch_ratio)],
            data.item_tags.len(),
        );
        let mut tag_counts = std::collections::BTreeMap::<i32, u64>::new();
        for row in 0..big.len() {
            let (mean, std) = normed[big.video_id[row] as usize];
            let mut z = (big.watch_ratio[row] - mean) / std;
            z = if z.is_nan() { 0.0 } else { z.min(10.0) };
            if z >= 0.6 {
                if let Some(tags) = data.item_tags.get(big.video_id[row] as usize) {
                    tags.iter().filter(|&&t| t >= 0).for_each(|&t| *tag_counts.entry(t).or_default() += 1);
                }
            }
        }

        let durations = [(&big.video_id, &big.video_duration), (&data.small.video_id, &data.small.video_duration)];
        let per_video = duration_normed(&durations, data.item_tags.len());
        let item_duration_full: Vec<f64> = full_videos.iter().map(|&v| per_video[v as usize]).collect();
        let item_tags_full = lookup_tags(&data.item_tags, &full_videos, "item_categories.csv")?;
        let notes = vec![
            format!(
                "ground truth: small_matrix.csv, {} x {}, watch_ratio capped at 5, NaN -> mean {:.6}",
                truth.user_ids.len(),
                truth.item_ids.len(),
                truth.fill_mean
            ),
            format!(
                "ground truth cells: {} missing (blocked) -> 0, {} NaN -> mean, {} rows capped",
                truth.missing_cells, truth.nan_cells, truth.capped_rows
            ),
            format!(
                "training log: big_matrix.csv, {} rows ({} on catalogue videos; {} NaN rows dropped)",
                train_full.len(),
                train.len(),
                dropped_nan
            ),
        ];
        Ok(World {
            dataset: "kuairec".into(),
            item_duration_normed: item_duration_full[..n_catalogue].to_vec(),
            train_full,
            item_tags_full,
            item_duration_full,
            pair_counts: distinct_pair_counts(&train),
            spec,
            settings,
            user_ids: truth.user_ids,
            item_ids: truth.item_ids,
            item_tags,
            train,
            popularity,
            positive_tag_counts: tag_counts.into_iter().collect(),
            notes,
            provenance: data.provenance.clone(),
        }
        .with_abandonment())
    }

    /// The KuaiRand-Pure world (`KuaiRand-v0`).
    pub fn kuairand(data: &KuaiRandPure, settings: EnvSettings, cfg: &WorldConfig) -> Result<World> {
        let (n_users, n_items) = (data.n_users, data.video_tags.len());
        let mut notes = Vec::new();
        let train_log = match (&data.standard_train, &data.random) {
            (Some(log), _) => log,
            (None, Some(log)) => {
                notes.push("no standard training log: the random log serves as the training log".to_string());
                log
            }
            (None, None) => {
                return Err(SimError::Invalid(
                    "KuaiRand-Pure needs a training log (log_standard_4_08_to_4_21_pure.csv)".into(),
                ))
            }
        };
        let to_interactions = |log: &KuaiRandLog| -> Result<Interactions> {
            if let Some(row) =
                (0..log.len()).find(|&r| log.user_id[r] as usize >= n_users || log.video_id[r] as usize >= n_items)
            {
                return Err(SimError::Invalid(format!(
                    "log row {} (user {}, video {}) lies outside the {} x {} catalogue",
                    row + 1,
                    log.user_id[row],
                    log.video_id[row],
                    n_users,
                    n_items
                )));
            }
            let mut rows: Vec<usize> = (0..log.len()).collect();
            rows.sort_by_key(|&r| (log.user_id[r], log.time_ms[r], r));
            Ok(Interactions {
                n_users,
                n_items,
                user: rows.iter().map(|&r| log.user_id[r]).collect(),
                item: rows.iter().map(|&r| log.video_id[r]).collect(),
                target: rows.iter().map(|&r| f64::from(log.is_click[r])).collect(),
            })
        };
        let train = to_interactions(train_log)?;

        let table = match (cfg.kuairand_truth, &data.ground_truth) {
            (TruthSource::Auto | TruthSource::File, Some(gt)) => {
                if (gt.n_users, gt.n_items) != (n_users, n_items) {
                    return Err(SimError::Invalid(format!(
                        "ground-truth file is {} x {}, catalogue is {n_users} x {n_items}",
                        gt.n_users, gt.n_items
                    )));
                }
                notes.push("ground truth: DORL's MF_results_GT/kuairand_is_click.csv (parity)".into());
                RewardTable::Dense { n_users, n_items, values: gt.values.clone() }
            }
            (TruthSource::File, None) => {
                return Err(SimError::Invalid(
                    "kuairand_truth = \"file\" but MF_results_GT/kuairand_is_click.csv is not in the data directory"
                        .into(),
                ))
            }
            (_, _) => {
                let (name, log) = match (cfg.kuairand_fit_log, &data.random) {
                    (FitLog::Auto | FitLog::Random, Some(random)) => ("log_random_4_22_to_5_08_pure.csv", random),
                    (FitLog::Random, None) => {
                        return Err(SimError::Invalid(
                            "kuairand_fit_log = \"random\" but the random log is missing".into(),
                        ))
                    }
                    _ => ("the standard training log", train_log),
                };
                let mf_cfg = MfConfig { loss: MfLoss::Logistic, ..cfg.completion.clone() };
                let mf = MatrixFactorization::fit(&to_interactions(log)?, &mf_cfg)
                    .map_err(|e| SimError::Model(e.to_string()))?;
                notes.push(format!(
                    "ground truth: NOT DORL's file; a logistic MF completion of is_click fitted here on {name} ({} rows), settings {:?}",
                    log.len(),
                    mf_cfg
                ));
                RewardTable::LowRank(LowRank::from_mf(&mf, true))
            }
        };
        let spec = category_spec(table, &data.video_tags, settings)?;

        let mut log_users = train.user.clone();
        log_users.sort_unstable();
        log_users.dedup();
        let mut rows = vec![0u64; n_items];
        train.item.iter().for_each(|&i| rows[i as usize] += 1);
        let popularity = rows.iter().map(|&c| c as f64 / log_users.len().max(1) as f64).collect();
        let mut tag_counts = std::collections::BTreeMap::<i32, u64>::new();
        for (row, &item) in train.item.iter().enumerate() {
            if train.target[row] >= 1.0 {
                data.video_tags[item as usize]
                    .iter()
                    .filter(|&&t| t >= 0)
                    .for_each(|&t| *tag_counts.entry(t).or_default() += 1);
            }
        }
        notes.push(format!("training log: {} rows; untagged videos share pseudo-tag -1", train.len()));
        let logs: Vec<&KuaiRandLog> =
            [&data.standard_train, &data.standard_test, &data.random].into_iter().flatten().collect();
        let durations: Vec<(Vec<u32>, Vec<i64>)> =
            logs.iter().map(|l| (l.video_id.clone(), l.duration_ms.clone())).collect();
        let duration_refs: Vec<(&Vec<u32>, &Vec<i64>)> = durations.iter().map(|(a, b)| (a, b)).collect();
        let item_duration_normed = duration_normed(&duration_refs, n_items);
        Ok(World {
            dataset: "kuairand-pure".into(),
            train_full: train.clone(),
            item_tags_full: data.video_tags.clone(),
            item_duration_full: item_duration_normed.clone(),
            item_duration_normed,
            pair_counts: distinct_pair_counts(&train),
            spec,
            settings,
            user_ids: (0..n_users as u32).collect(),
            item_ids: (0..n_items as u32).collect(),
            item_tags: data.video_tags.clone(),
            train,
            popularity,
            positive_tag_counts: tag_counts.into_iter().collect(),
            notes,
            provenance: data.provenance.clone(),
        }
        .with_abandonment())
    }

    /// The Coat world: completed ratings, distance quit rule. Categories = the jacket type.
    pub fn coat(data: &Coat, settings: EnvSettings, cfg: &WorldConfig) -> Result<World> {
        let (n_users, n_items) = (data.n_users, data.n_items);
        let ratings = |m: &[u8]| -> Interactions {
            let mut out = Interactions { n_users, n_items, ..Default::default() };
            for (cell, &r) in m.iter().enumerate().filter(|(_, r)| **r > 0) {
                out.user.push((cell / n_items) as u32);
                out.item.push((cell % n_items) as u32);
                out.target.push(f64::from(r));
            }
            out
        };
        let train = ratings(&data.train);
        let test = ratings(&data.test);
        let mut both = train.clone();
        both.user.extend(&test.user);
        both.item.extend(&test.item);
        both.target.extend(&test.target);
        let mf_cfg = MfConfig { loss: MfLoss::Squared, ..cfg.completion.clone() };
        let mf = MatrixFactorization::fit(&both, &mf_cfg).map_err(|e| SimError::Model(e.to_string()))?;
        let mut values = vec![0.0; n_users * n_items];
        for u in 0..n_users {
            mf.score_items(u as u32, &mut values[u * n_items..(u + 1) * n_items]);
        }
        values.iter_mut().for_each(|v| {
            *v = v.clamp(1.0, 5.0);
            if cfg.coat_round {
                *v = v.round();
            }
        });
        let table = RewardTable::Dense { n_users, n_items, values };
        let distance = table.column_distances();
        let jacket = data.item_feature_groups.iter().position(|(g, _)| g == "jackettype").unwrap_or(0);
        let item_tags: Vec<Vec<i32>> =
            data.item_features.iter().map(|f| vec![i32::from(f.get(jacket).copied().unwrap_or(0))]).collect();
        let spec = EnvSpec {
            rewards: table,
            tags: TagMasks::new(&item_tags)?,
            quit: QuitRule::Distance { window: cfg.coat_window, min_distance: cfg.coat_min_distance, distance },
            base_rule: true,
            popularity: None,
            max_turn: settings.max_turn,
            legacy_window: settings.legacy_window,
            random_initial_item: settings.random_initial_item,
        };
        let mut rows = vec![0u64; n_items];
        train.item.iter().for_each(|&i| rows[i as usize] += 1);
        let mut tag_counts = std::collections::BTreeMap::<i32, u64>::new();
        for (row, &item) in train.item.iter().enumerate() {
            if train.target[row] >= 4.0 {
                item_tags[item as usize].iter().for_each(|&t| *tag_counts.entry(t).or_default() += 1);
            }
        }
        let notes = vec![
            format!("ground truth: squared-loss MF completion of train + test ratings ({} rows), clipped to 1..5{}, settings {:?}", both.len(), if cfg.coat_round { ", rounded" } else { "" }, mf_cfg),
            format!("quit rule: distance < {} to one of the last {} items (ground-truth column distances)", cfg.coat_min_distance, cfg.coat_window),
            "categories: jacket type (MCD, diversity, category cycling)".into(),
        ];
        Ok(World {
            dataset: "coat".into(),
            train_full: train.clone(),
            item_tags_full: item_tags.clone(),
            item_duration_full: vec![0.0; n_items],
            item_duration_normed: vec![0.0; n_items],
            pair_counts: distinct_pair_counts(&train),
            popularity: rows.iter().map(|&c| c as f64 / n_users as f64).collect(),
            spec,
            settings,
            user_ids: (0..n_users as u32).collect(),
            item_ids: (0..n_items as u32).collect(),
            item_tags,
            train,
            positive_tag_counts: tag_counts.into_iter().collect(),
            notes,
            provenance: data.provenance.clone(),
        }
        .with_abandonment())
    }
}

fn category_spec(rewards: RewardTable, item_tags: &[Vec<i32>], s: EnvSettings) -> Result<EnvSpec> {
    Ok(EnvSpec {
        rewards,
        tags: TagMasks::new(item_tags)?,
        quit: QuitRule::Category { window: s.num_leave_compute, threshold: s.leave_threshold },
        base_rule: true,
        popularity: None,
        max_turn: s.max_turn,
        legacy_window: s.legacy_window,
        random_initial_item: s.random_initial_item,
    })
}

fn dense_map(ids: &[u32]) -> std::collections::HashMap<u32, u32> {
    ids.iter().enumerate().map(|(d, &id)| (id, d as u32)).collect()
}

fn lookup_tags(tags: &[Vec<i32>], ids: &[u32], file: &str) -> Result<Vec<Vec<i32>>> {
    ids.iter()
        .map(|&id| {
            tags.get(id as usize)
                .cloned()
                .ok_or_else(|| SimError::Invalid(format!("video_id {id} of the small matrix is not in {file}")))
        })
        .collect()
}

/// The rows of `log` whose (user, item) pair a hash of (seed, user, item) keeps with probability `fraction`.
fn keep_pairs(log: &Interactions, fraction: f64, seed: u64) -> Interactions {
    let keep = |user: u32, item: u32| {
        let mut z = seed ^ ((u64::from(user) << 32) | u64::from(item)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 <= fraction
    };
    let mut out = Interactions { n_users: log.n_users, n_items: log.n_items, ..Default::default() };
    for row in (0..log.len()).filter(|&r| keep(log.user[r], log.item[r])) {
        out.user.push(log.user[row]);
        out.item.push(log.item[row]);
        out.target.push(log.target[row]);
    }
    out
}

/// `log` with each user's new rows after that user's existing ones (users without rows go last, by id).
fn append_rows(log: &Interactions, new_rows: &std::collections::BTreeMap<u32, Vec<(u32, f64)>>) -> Interactions {
    let extra: usize = new_rows.values().map(Vec::len).sum();
    let mut out = Interactions {
        n_users: log.n_users,
        n_items: log.n_items,
        user: Vec::with_capacity(log.len() + extra),
        item: Vec::with_capacity(log.len() + extra),
        target: Vec::with_capacity(log.len() + extra),
    };
    let push = |out: &mut Interactions, user: u32| {
        for &(item, target) in new_rows.get(&user).map(Vec::as_slice).unwrap_or(&[]) {
            out.user.push(user);
            out.item.push(item);
            out.target.push(target);
        }
    };
    let mut seen = std::collections::HashSet::new();
    for row in 0..log.len() {
        let user = log.user[row];
        out.user.push(user);
        out.item.push(log.item[row]);
        out.target.push(log.target[row]);
        if log.user.get(row + 1) != Some(&user) && seen.insert(user) {
            push(&mut out, user);
        }
    }
    for &user in new_rows.keys().filter(|u| !seen.contains(*u)) {
        push(&mut out, user);
    }
    out
}

/// Distinct (user, item) pairs per item.
fn distinct_pair_counts(train: &Interactions) -> Vec<u64> {
    let mut pairs: Vec<u64> =
        train.user.iter().zip(&train.item).map(|(&u, &i)| (u64::from(i) << 32) | u64::from(u)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut counts = vec![0u64; train.n_items];
    pairs.iter().for_each(|p| counts[(p >> 32) as usize] += 1);
    counts
}

/// Per-video mean and sample standard deviation (n-1) of watch_ratio over several logs (DORL `gaussian`).
fn gaussian_normed(logs: &[(&Vec<u32>, &Vec<f64>)], n_videos: usize) -> Vec<(f64, f64)> {
    let mut sum = vec![0.0; n_videos];
    let mut count = vec![0usize; n_videos];
    for (ids, values) in logs {
        for (&v, &w) in ids.iter().zip(values.iter()) {
            if (v as usize) < n_videos && !w.is_nan() {
                sum[v as usize] += w;
                count[v as usize] += 1;
            }
        }
    }
    let mean: Vec<f64> = sum.iter().zip(&count).map(|(s, &c)| if c > 0 { s / c as f64 } else { f64::NAN }).collect();
    let mut sq = vec![0.0; n_videos];
    for (ids, values) in logs {
        for (&v, &w) in ids.iter().zip(values.iter()) {
            if (v as usize) < n_videos && !w.is_nan() {
                sq[v as usize] += (w - mean[v as usize]).powi(2);
            }
        }
    }
    (0..n_videos)
        .map(|v| (mean[v], if count[v] > 1 { (sq[v] / (count[v] - 1) as f64).sqrt() } else { f64::NAN }))
        .collect()
}

/// DORL's `duration_normed` per video: (mean duration of the video − μ_d) / σ_d, where μ_d and σ_d are the
/// mean and sample standard deviation of the per-video mean durations. Videos without rows get 0.
fn duration_normed(logs: &[(&Vec<u32>, &Vec<i64>)], n_videos: usize) -> Vec<f64> {
    let mut sum = vec![0.0; n_videos];
    let mut count = vec![0usize; n_videos];
    for (ids, durations) in logs {
        for (&v, &d) in ids.iter().zip(durations.iter()) {
            if (v as usize) < n_videos {
                sum[v as usize] += d as f64;
                count[v as usize] += 1;
            }
        }
    }
    let means: Vec<f64> = (0..n_videos).filter(|&v| count[v] > 0).map(|v| sum[v] / count[v] as f64).collect();
    if means.len() < 2 {
        return vec![0.0; n_videos];
    }
    let mu = means.iter().sum::<f64>() / means.len() as f64;
    let sd = (means.iter().map(|m| (m - mu).powi(2)).sum::<f64>() / (means.len() - 1) as f64).sqrt();
    (0..n_videos).map(|v| if count[v] > 0 && sd > 0.0 { (sum[v] / count[v] as f64 - mu) / sd } else { 0.0 }).collect()
}

/// The rows of `full` whose item is in the catalogue (the first `n_catalogue` dense items), same user ids.
fn catalogue_rows(full: &Interactions, n_catalogue: usize) -> Interactions {
    let mut out = Interactions { n_users: full.n_users, n_items: n_catalogue, ..Default::default() };
    for row in (0..full.len()).filter(|&r| (full.item[r] as usize) < n_catalogue) {
        out.user.push(full.user[row]);
        out.item.push(full.item[row]);
        out.target.push(full.target[row]);
    }
    out
}

impl World {
    /// The share of the catalogue that is popular: popularity-aware abandonment's when that rule is on, else the
    /// project's 20% (`dsrm_metrics::DEFAULT_POPULAR_FRACTION`). Metrics, fairness agents and the rule share it.
    pub fn popular_fraction(&self) -> f64 {
        self.settings.popularity_rule.map_or(dsrm_metrics::DEFAULT_POPULAR_FRACTION, |r| r.popular_fraction)
    }

    /// The popular set P over the catalogue: the top [`Self::popular_fraction`] by distinct training (user, item)
    /// pairs, ties broken by the smaller item id.
    pub fn popular(&self) -> Vec<bool> {
        dsrm_metrics::popular_set(&self.pair_counts, self.popular_fraction())
    }

    /// `item_groups.csv`: `video_id,group` per catalogue item in the data set's own ids, `popular` or
    /// `long_tail` ([`Self::popular`]).
    pub fn item_groups_csv(&self) -> String {
        let mut out = String::from("video_id,group\n");
        for (i, popular) in self.popular().into_iter().enumerate() {
            out += &format!("{},{}\n", self.item_ids[i], if popular { "popular" } else { "long_tail" });
        }
        out
    }

    /// Applies the settings' rules to the environment: the data set's own quit rule on or off, and
    /// popularity-aware abandonment over the popular set of this world's training pairs.
    fn with_abandonment(mut self) -> Self {
        self.spec.base_rule = self.settings.category_rule;
        self.spec.popularity = self.settings.popularity_rule.map(|r| PopularityQuit {
            window: r.window,
            threshold: r.threshold,
            popular: dsrm_metrics::popular_set(&self.pair_counts, r.popular_fraction),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_rows_follow_each_users_own_rows() {
        let log = Interactions {
            n_users: 3,
            n_items: 4,
            user: vec![1, 1, 0, 0, 0],
            item: vec![0, 1, 2, 3, 2],
            target: vec![1.0, 2.0, 3.0, 4.0, 5.0],
        };
        let mut new_rows = std::collections::BTreeMap::new();
        new_rows.insert(0u32, vec![(1u32, 0.5)]);
        new_rows.insert(2u32, vec![(3u32, 0.25), (0, 0.75)]);
        new_rows.insert(1u32, vec![(2u32, 9.0)]);
        let out = append_rows(&log, &new_rows);
        assert_eq!(out.user, [1, 1, 1, 0, 0, 0, 0, 2, 2]);
        assert_eq!(out.item, [0, 1, 2, 2, 3, 2, 1, 3, 0]);
        assert_eq!(out.target, [1.0, 2.0, 9.0, 3.0, 4.0, 5.0, 0.5, 0.25, 0.75]);
        assert_eq!(distinct_pair_counts(&out), [2, 2, 2, 2]);
    }

    #[test]
    fn log_fraction_keeps_whole_pairs_and_roughly_the_share() {
        let n = 20_000u32;
        let log = Interactions {
            n_users: 100,
            n_items: 200,
            user: (0..n).map(|r| r % 100).collect(),
            item: (0..n).map(|r| (r / 100) % 200).collect(),
            target: vec![1.0; n as usize],
        };
        let mut doubled = log.clone();
        doubled.user.extend(log.user.clone());
        doubled.item.extend(log.item.clone());
        doubled.target.extend(log.target.clone());
        let keep = |l: &Interactions, f: f64, seed: u64| keep_pairs(l, f, seed);
        let kept = keep(&doubled, 0.25, 7);
        assert!((kept.len() as f64 / doubled.len() as f64 - 0.25).abs() < 0.02, "{}", kept.len());
        assert_eq!(kept.len() % 2, 0, "both copies of a pair share its fate");
        assert_eq!(keep(&doubled, 0.25, 7), kept, "seeded");
        assert_ne!(keep(&doubled, 0.25, 8), kept);
        assert_eq!(keep(&doubled, 1.0, 7).len(), doubled.len());
    }
}
