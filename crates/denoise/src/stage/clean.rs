//! The per-state clean target s^(0) of `target = "clean"` (`docs/design.md` §4.3, "Clean target").
//!
//! ```text
//! What the paper says: the DSRM denoises a noised clean state s^(0) conditioned on the observed s̃_t; it does
//! not say where s^(0) comes from on logged data.
//! What we choose, per replayed state s̃_t (user u, the window of log rows before step t):
//!
//! synthetic data (world.is_synthetic(), the generator's truth/ beside the files):
//!     s^(0) = tracker(the SAME window's items, each with μ_uv in place of its logged ratio)
//!     μ_uv  = exp(log_ratio_intercept + β_u + q_v + mean_{tag ∈ tags(v)} a_u,tag + factor_scale·<p_u, f_v>/√k
//!                 − duration_effect · ln(d_v / duration_median_ms)), capped at 5 like the log
//!             the noise-free, popularity-unbiased expected watch ratio (truth/README.md §4), rebuilt from
//!             truth/user_preferences.csv, truth/item_truth.csv, the item tags and synthetic.json's settings
//!             (truth/true_watch_ratio_small.csv holds μ only for small-matrix cells; the log's rows are big-
//!             matrix cells, so μ is recomputed by the documented formula).
//!     Start states (t = 0, no item yet) have nothing to clean: s^(0) = s̃_0.
//!
//! no truth (Coat, real KuaiRec, KuaiRand-Pure): DreamRec's next-item target, widened to k items:
//!     P_u   = the user's positively rated rows of the training log, in log (time) order
//!     s^(0) = tracker_k(the first k rows of P_u at or after the row the state precedes, with their rewards)
//!             tracker_k: the frozen tracker with window k (same weights); for a tracker whose weights depend
//!             on its window (SASRec's positions) the tracker itself, reading min(k, W) positives
//!     a state with no later positive has no target: the row is dropped from training (and counted)
//!     positive: KuaiRec watch ratio z-scored per item over the log's rows ≥ 0.6 (DORL's MCD rule, which
//!               z-scores over the big and small matrices; the world holds the log only), KuaiRand-Pure
//!               is_click = 1, Coat rating ≥ 4
//! ```
//!
//! Why the training log and not the random-exposure logs for the no-truth target: a target must follow each
//! state in time, and the random logs do not. KuaiRec's fully observed small matrix has no order relative to a
//! big-matrix state; KuaiRand-Pure's random log (04-22..05-08) comes after the whole standard log, so its
//! "next" positives would be the same for every state of a user — the user-constant target this replaces;
//! Coat's random test set has no time at all. The world (`dsrm_sim::World`) keeps the random logs only as the
//! ground truth they completed, which training must not read.

use super::frozen::{frozen_config, FrozenTracker, ReplayedStates};
use super::{Result, StageError};
use dsrm_data::synth::SynthConfig;
use dsrm_nn::tch::{Device, Kind, Tensor};
use dsrm_sim::World;
use dsrm_state::{HistoryBatch, StateTracker, TrackerConfig};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where a stage's clean targets came from, and what was dropped (saved with the stage and in `fit.json`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TargetReport {
    /// `truth` (re-encoded with μ), `next-positives`, `debiased` or `observed`.
    pub source: String,
    /// What the target is, in one sentence.
    pub rule: String,
    /// Rows offered (training and validation users, after `max_states`).
    pub rows: usize,
    /// Rows dropped because the state had no later positive (next-positives only).
    pub dropped_no_positive: usize,
    /// k and the k actually encoded (next-positives only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<(usize, usize)>,
    /// Rows whose target equals their observed state exactly (start states for the truth target).
    pub equal_to_observed: usize,
}

/// Clean targets of the replayed rows `rows` (indices into `replayed`): `[n_kept, d]` and the kept rows (in
/// the order given; rows without a target left out), with the report.
pub(super) fn clean_targets(
    frozen: &FrozenTracker,
    tracker_cfg: &TrackerConfig,
    pretrained: Option<&Tensor>,
    world: &World,
    replayed: &ReplayedStates,
    rows: &[usize],
    k: usize,
) -> Result<(Tensor, Vec<usize>, TargetReport)> {
    let (targets, kept, mut report) = if world.is_synthetic() {
        truth_targets(frozen, world, replayed, rows)?
    } else {
        next_positive_targets(frozen, tracker_cfg, pretrained, world, replayed, rows, k)?
    };
    let d = frozen.tracker.state_dim();
    let observed = replayed
        .states
        .f_narrow(1, 0, d)?
        .f_index_select(0, &Tensor::f_from_slice(&kept.iter().map(|&r| r as i64).collect::<Vec<_>>())?)?;
    let same = targets.f_eq_tensor(&observed)?.f_all_dim(1, false)?;
    report.equal_to_observed = same.f_sum(Kind::Int64)?.f_int64_value(&[])? as usize;
    Ok((targets, kept, report))
}

// ─────────────────────────────────────── synthetic: the truth ───────────────────────────────────────

/// The generator's truth: μ_uv for any (dense log user, dense catalogue item) of a synthetic world.
pub struct SynthTruth {
    cfg: SynthConfig,
    /// Per dense log user: bias, affinities (31), factors (k).
    users: Vec<(f64, Vec<f64>, Vec<f64>)>,
    /// Per dense catalogue item: quality, true duration (ms), factors (k), tags.
    items: Vec<(f64, f64, Vec<f64>, Vec<usize>)>,
}

impl SynthTruth {
    /// Reads the truth of a synthetic `world` (its data directory's `truth/` and `synthetic.json` settings).
    pub fn load(world: &World) -> Result<Self> {
        let info = world.provenance.synthetic.as_ref().ok_or_else(|| {
            StageError::Config("the clean target's truth needs synthetic data (no synthetic.json)".into())
        })?;
        let cfg: SynthConfig = serde_json::from_value(info.settings.clone())
            .map_err(|e| StageError::Config(format!("synthetic.json settings: {e}")))?;
        let dir = PathBuf::from(&world.provenance.dir);
        let prefs = truth_dir(&dir, "user_preferences.csv")?;
        let k = cfg.n_factors;
        let table = read_table(&prefs, "user_id", |h| {
            h == "bias" || h.starts_with("affinity_") || h.starts_with("factor_") || h == "in_big" || h == "in_small"
        })?;
        let ids = log_user_ids(world, &table.rows, &table.header)?;
        let col = |name: &str| table.header.iter().position(|h| h == name);
        let bias = col("bias").ok_or_else(|| missing(&prefs, "bias"))?;
        let aff: Vec<usize> = (0..).map_while(|t| col(&format!("affinity_{t}"))).collect();
        let fac: Vec<usize> = (0..k)
            .map(|j| col(&format!("factor_{j}")).ok_or_else(|| missing(&prefs, "factor_")))
            .collect::<Result<_>>()?;
        let users = ids
            .iter()
            .map(|id| {
                let row = table
                    .rows
                    .get(id)
                    .ok_or_else(|| StageError::Config(format!("user {id} missing from the truth")))?;
                Ok((row[bias], aff.iter().map(|&c| row[c]).collect(), fac.iter().map(|&c| row[c]).collect()))
            })
            .collect::<Result<_>>()?;
        let items_path = truth_dir(&dir, "item_truth.csv")?;
        let items = read_table(&items_path, "video_id", |h| {
            h == "quality" || h == "true_duration" || h.starts_with("factor_")
        })?;
        let icol = |name: &str| items.header.iter().position(|h| h == name).ok_or_else(|| missing(&items_path, name));
        let (quality, duration) = (icol("quality")?, icol("true_duration")?);
        let ifac: Vec<usize> = (0..k).map(|j| icol(&format!("factor_{j}"))).collect::<Result<_>>()?;
        let mut item_rows = Vec::with_capacity(world.item_ids.len());
        for (i, video) in world.item_ids.iter().enumerate() {
            let row = items
                .rows
                .get(video)
                .ok_or_else(|| StageError::Config(format!("video {video} missing from the truth")))?;
            let tags = world.item_tags[i]
                .iter()
                .map(|&t| usize::try_from(t).ok().filter(|&t| t < aff.len()))
                .collect::<Option<Vec<usize>>>()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    StageError::Config(format!(
                        "video {video}: tags {:?} outside the truth's affinities",
                        world.item_tags[i]
                    ))
                })?;
            item_rows.push((row[quality], row[duration], ifac.iter().map(|&c| row[c]).collect(), tags));
        }
        Ok(Self { cfg, users, items: item_rows })
    }

    /// μ_uv, the noise-free, unbiased expected watch ratio of dense log user `user` and catalogue item `item`,
    /// capped like the log's ratios.
    pub fn mu(&self, user: u32, item: u32) -> f64 {
        let (bias, aff, p) = &self.users[user as usize];
        let (q, d, f, tags) = &self.items[item as usize];
        let affinity = tags.iter().map(|&t| aff[t]).sum::<f64>() / tags.len() as f64;
        let dot: f64 = p.iter().zip(f).map(|(a, b)| a * b).sum();
        let c = &self.cfg;
        let log_mu = c.log_ratio_intercept + bias + q + affinity + c.factor_scale * dot / (c.n_factors as f64).sqrt()
            - c.duration_effect * (d / c.duration_median_ms).ln();
        log_mu.exp().min(dsrm_sim::ground_truth::KUAIREC_REWARD_CAP)
    }
}

fn truth_dir(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join("truth").join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(StageError::Config(format!(
            "{}: missing; the clean target of synthetic data needs the generator's truth/ folder (target = \"clean\")",
            path.display()
        )))
    }
}

fn missing(path: &Path, column: &str) -> StageError {
    StageError::Config(format!("{}: no {column} column", path.display()))
}

fn truth_targets(
    frozen: &FrozenTracker,
    world: &World,
    replayed: &ReplayedStates,
    rows: &[usize],
) -> Result<(Tensor, Vec<usize>, TargetReport)> {
    let truth = SynthTruth::load(world)?;
    let log = &world.train;
    let mu: Vec<f64> = log.user.iter().zip(&log.item).map(|(&u, &i)| truth.mu(u, i)).collect();
    let histories: Vec<(u32, std::ops::Range<usize>)> = rows
        .iter()
        .map(|&n| {
            let (row, t) = (replayed.log_rows[n], replayed.steps[n] as usize);
            (replayed.users[n], row - t..row)
        })
        .collect();
    let targets = encode(&*frozen.tracker, world, &histories, &log.item, &mu)?;
    let report = TargetReport {
        source: "truth".into(),
        rule: "the same window re-encoded by the frozen tracker with the truth's noise-free, unbiased ratios μ_uv"
            .into(),
        rows: rows.len(),
        dropped_no_positive: 0,
        k: None,
        equal_to_observed: 0,
    };
    Ok((targets, rows.to_vec(), report))
}

/// Encodes each (user, log range) history with `tracker`, reading items and rewards from the given columns.
fn encode(
    tracker: &dyn StateTracker,
    world: &World,
    histories: &[(u32, std::ops::Range<usize>)],
    items: &[u32],
    rewards: &[f64],
) -> Result<Tensor> {
    encode_lists(
        tracker,
        world,
        &histories
            .iter()
            .map(|(u, r)| (*u, items[r.clone()].to_vec(), rewards[r.clone()].to_vec()))
            .collect::<Vec<_>>(),
    )
}

fn encode_lists(tracker: &dyn StateTracker, world: &World, histories: &[(u32, Vec<u32>, Vec<f64>)]) -> Result<Tensor> {
    const CHUNK: usize = 4096;
    let device = tracker.var_store().device();
    let mut parts = Vec::new();
    for chunk in histories.chunks(CHUNK) {
        let refs: Vec<(u32, &[u32], &[f64])> = chunk.iter().map(|(u, i, r)| (*u, i.as_slice(), r.as_slice())).collect();
        let batch = HistoryBatch::new(&refs, tracker.window(), world.spec.n_items(), device);
        parts.push(dsrm_nn::tch::no_grad(|| tracker.try_states(&batch))?.f_to_device(Device::Cpu)?);
    }
    if parts.is_empty() {
        return Err(StageError::Config("no states left to build clean targets for".into()));
    }
    Ok(Tensor::f_cat(&parts, 0)?.f_to_kind(Kind::Float)?)
}

// ──────────────────────────────────── no truth: the next k positives ────────────────────────────────────

/// Whether each row of the training log is a positive, by the data set's rule (module docs), and the rule.
pub fn positives(world: &World) -> Result<(Vec<bool>, &'static str)> {
    let log = &world.train;
    match world.dataset.as_str() {
        "kuairec" => {
            let n = world.spec.n_items();
            let (mut sum, mut sq, mut count) = (vec![0.0; n], vec![0.0; n], vec![0usize; n]);
            for (&i, &y) in log.item.iter().zip(&log.target) {
                sum[i as usize] += y;
                sq[i as usize] += y * y;
                count[i as usize] += 1;
            }
            let z = |i: usize, y: f64| {
                let c = count[i] as f64;
                let mean = sum[i] / c;
                let sd = ((sq[i] - c * mean * mean) / (c - 1.0)).max(0.0).sqrt();
                let z = (y - mean) / sd;
                if z.is_nan() {
                    0.0
                } else {
                    z.min(10.0)
                }
            };
            let flags = log.item.iter().zip(&log.target).map(|(&i, &y)| z(i as usize, y) >= 0.6).collect();
            Ok((flags, "watch ratio z-scored per item over the training log >= 0.6 (DORL's MCD rule)"))
        }
        "kuairand-pure" => Ok((log.target.iter().map(|&y| y >= 1.0).collect(), "is_click = 1")),
        "coat" => Ok((log.target.iter().map(|&y| y >= 4.0).collect(), "rating >= 4")),
        other => Err(StageError::Config(format!(
            "target = \"clean\": no positive rule for data set {other:?} without a truth"
        ))),
    }
}

fn next_positive_targets(
    frozen: &FrozenTracker,
    tracker_cfg: &TrackerConfig,
    pretrained: Option<&Tensor>,
    world: &World,
    replayed: &ReplayedStates,
    rows: &[usize],
    k: usize,
) -> Result<(Tensor, Vec<usize>, TargetReport)> {
    let (positive, rule) = positives(world)?;
    let log = &world.train;
    // The tracker with window k and the stage's weights, if its weights allow another window.
    let device = frozen.tracker.var_store().device();
    let wide = if k == frozen.tracker.window() {
        None
    } else {
        let mut t = dsrm_state::build(
            &frozen_config(tracker_cfg, Some(k)),
            world.spec.n_items(),
            pretrained.map(Tensor::shallow_clone),
            device,
        )?;
        match t.var_store_mut().copy(frozen.tracker.var_store()) {
            Ok(()) => {
                t.var_store_mut().freeze();
                t.set_training(false);
                let range = world.spec.rewards.range();
                t.set_reward_range(range.0, range.1)?;
                Some(t)
            }
            Err(_) => None,
        }
    };
    let tracker: &dyn StateTracker = wide.as_deref().unwrap_or(&*frozen.tracker);
    let k_used = k.min(tracker.window());
    // Positive log rows, in log order (users are contiguous and in time order).
    let pos_rows: Vec<usize> = (0..log.len()).filter(|&r| positive[r]).collect();
    let (mut kept, mut histories, mut dropped) = (Vec::new(), Vec::new(), 0);
    for &n in rows {
        let (user, row) = (replayed.users[n], replayed.log_rows[n]);
        let from = pos_rows.partition_point(|&r| r < row);
        let next: Vec<usize> =
            pos_rows[from..].iter().copied().take_while(|&r| log.user[r] == user).take(k_used).collect();
        if next.is_empty() {
            dropped += 1;
            continue;
        }
        kept.push(n);
        histories.push((
            user,
            next.iter().map(|&r| log.item[r]).collect(),
            next.iter().map(|&r| log.target[r]).collect(),
        ));
    }
    let targets = encode_lists(tracker, world, &histories)?;
    let report = TargetReport {
        source: "next-positives".into(),
        rule: format!(
            "the encoding of the user's next {k_used} positively rated items of the training log ({rule}), \
             by the frozen tracker with window {}",
            tracker.window()
        ),
        rows: rows.len(),
        dropped_no_positive: dropped,
        k: Some((k, k_used)),
        equal_to_observed: 0,
    };
    Ok((targets, kept, report))
}

// ──────────────────────────────────────────── truth files ────────────────────────────────────────────

/// A truth CSV: its selected column names and `key -> values` (in the order of `header`).
pub struct TruthTable {
    /// The selected column names, in file order.
    pub header: Vec<String>,
    /// Key -> the selected columns' values, in the order of `header`.
    pub rows: HashMap<u32, Vec<f64>>,
}

/// `key column -> selected columns` of a truth CSV; errors name the file, line and column.
pub fn read_table(path: &Path, key: &str, select: impl Fn(&str) -> bool) -> Result<TruthTable> {
    let text = std::fs::read_to_string(path).map_err(|source| StageError::Io { path: path.to_path_buf(), source })?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let key_col = header.iter().position(|h| *h == key).ok_or_else(|| missing(path, key))?;
    let cols: Vec<usize> = (0..header.len()).filter(|&c| select(header[c])).collect();
    let mut rows = HashMap::new();
    for (i, line) in lines.enumerate() {
        let fields = split_quoted(line);
        let at = |c: usize| fields.get(c).copied();
        let bad = |c: usize| StageError::At {
            path: path.to_path_buf(),
            line: i + 2,
            column: c + 1,
            detail: "expected a number".into(),
        };
        let id: u32 = at(key_col).and_then(|f| f.parse().ok()).ok_or_else(|| bad(key_col))?;
        let values = cols
            .iter()
            .map(|&c| at(c).and_then(|f| f.parse::<f64>().ok()).ok_or_else(|| bad(c)))
            .collect::<Result<_>>()?;
        rows.insert(id, values);
    }
    Ok(TruthTable { header: cols.iter().map(|&c| header[c].to_string()).collect(), rows })
}

/// Splits a CSV line on commas outside double quotes (the truth files quote tag lists such as "[1, 2]").
pub fn split_quoted(line: &str) -> Vec<&str> {
    let (mut fields, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                fields.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&line[start..]);
    fields
}

/// The data-set `user_id` of every dense log user of a KuaiRec-format world. `World::kuairec` numbers the
/// environment (small-matrix) users first (`world.user_ids`), then the other big-matrix users in increasing
/// `user_id`; the truth's `in_big` / `in_small` flags give that list, checked against the log's user count.
pub fn log_user_ids(world: &World, rows: &HashMap<u32, Vec<f64>>, header: &[String]) -> Result<Vec<u32>> {
    let col = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| StageError::Config(format!("truth: no {name} column")))
    };
    let (big, small) = (col("in_big")?, col("in_small")?);
    let env: std::collections::HashSet<u32> = world.user_ids.iter().copied().collect();
    let mut others: Vec<u32> = rows
        .iter()
        .filter(|(id, f)| f[big] == 1.0 && f[small] == 0.0 && !env.contains(id))
        .map(|(id, _)| *id)
        .collect();
    others.sort_unstable();
    let mut ids = world.user_ids.clone();
    ids.extend(others);
    if ids.len() != world.train_full.n_users {
        return Err(StageError::Config(format!(
            "cannot map log users to the truth: {} ids for {} log users",
            ids.len(),
            world.train_full.n_users
        )));
    }
    Ok(ids)
}
