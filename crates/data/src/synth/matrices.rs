//! The two interaction matrices: observation noise, blocking, missing-not-at-random exposure, times,
//! duplicates (sections 5–9 of `model.md`). Rows are generated one user at a time and streamed out, so
//! the 12-million-row big matrix is never held in memory.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Exp1, StandardNormal};

use super::calendar::Calendar;
use super::model::{stream_rng, Model, Stream};
use super::writer::{push_f64, push_i64, push_u64, Sink};
use super::SynthConfig;
use crate::Result;

/// The header of both KuaiRec interaction matrices.
pub const MATRIX_HEADER: &str = "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio";

/// The header of `truth/true_watch_ratio_small.csv`.
pub const TRUTH_SMALL_HEADER: &str = "user_id,video_id,true_watch_ratio,blocked";

/// One interaction row before formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    pub unix_ms: i64,
    pub video: u32,
    pub play: i64,
    pub duration: i64,
}

impl Row {
    /// play_duration / video_duration, as the files write it.
    pub(crate) fn watch_ratio(&self) -> f64 {
        self.play as f64 / self.duration as f64
    }
}

/// Running statistics of the written watch ratios (for `synthetic.json` and the report).
#[derive(Debug, Default)]
pub(crate) struct RatioStats {
    pub rows: u64,
    /// Finite ratios (for the quantiles).
    pub values: Vec<f64>,
    pub above_2: u64,
    pub above_5: u64,
    pub non_finite: u64,
}

impl RatioStats {
    fn add(&mut self, r: f64) {
        self.rows += 1;
        if r.is_finite() {
            self.values.push(r);
            self.above_2 += u64::from(r > 2.0);
            self.above_5 += u64::from(r > 5.0);
        } else {
            self.non_finite += 1;
        }
    }

    /// Mean of the finite ratios.
    pub(crate) fn mean(&self) -> f64 {
        self.values.iter().sum::<f64>() / self.values.len().max(1) as f64
    }

    /// The `qs` quantiles (ascending) of the finite ratios; consumes the stored values.
    pub(crate) fn quantiles(&mut self, qs: &[f64]) -> Vec<f64> {
        let v = &mut self.values;
        if v.is_empty() {
            return vec![f64::NAN; qs.len()];
        }
        let mut out = Vec::with_capacity(qs.len());
        let mut lo = 0;
        for &q in qs {
            let idx = ((v.len() - 1) as f64 * q).round() as usize;
            let idx = idx.max(lo);
            let (_, nth, _) = v[lo..].select_nth_unstable_by(idx - lo, f64::total_cmp);
            out.push(*nth);
            lo = idx;
        }
        out
    }
}

/// Writes one user's rows, already sorted by time.
fn write_rows(sink: &mut Sink, cal: &Calendar, user: u32, rows: &[Row], stats: &mut RatioStats) -> Result<()> {
    for row in rows {
        let ratio = row.watch_ratio();
        stats.add(ratio);
        let b = sink.buf();
        push_u64(b, u64::from(user));
        b.push(b',');
        push_u64(b, u64::from(row.video));
        b.push(b',');
        push_i64(b, row.play);
        b.push(b',');
        push_i64(b, row.duration);
        b.push(b',');
        cal.push_columns(b, row.unix_ms);
        b.push(b',');
        push_f64(b, ratio);
        sink.end_row()?;
    }
    Ok(())
}

/// Section 5: one observed ratio, μ · bias · mean-one log-normal noise, or a re-watch loop.
fn observe(rng: &mut ChaCha8Rng, cfg: &SynthConfig, mu: f64, bias: f64, sd: f64) -> f64 {
    let z: f64 = rng.sample(StandardNormal);
    let is_loop = rng.gen::<f64>() < cfg.rewatch_loop_rate;
    if is_loop {
        let excess: f64 = rng.sample(Exp1);
        cfg.rewatch_loop_min + cfg.rewatch_loop_excess_mean * excess
    } else {
        mu * bias * (sd * z - sd * sd / 2.0).exp()
    }
}

/// A row for user-video cell with observed ratio `r`: play = round(r · d_v).
fn row(model: &Model, rng: &mut ChaCha8Rng, cal: &Calendar, v: usize, r: f64) -> Row {
    Row {
        unix_ms: cal.sample_ms(rng),
        video: v as u32,
        play: (r * model.videos.duration[v] as f64).round() as i64,
        duration: model.videos.file_duration[v],
    }
}

fn sort_by_time(rows: &mut [Row]) {
    rows.sort_by_key(|r| (r.unix_ms, r.video));
}

/// Section 6: the authors small user `u` blocked, ascending.
pub(crate) fn blocked_authors(cfg: &SynthConfig, seed: u64, model: &Model, u: u32) -> Vec<u32> {
    let mut rng = stream_rng(seed, Stream::Blocks, u64::from(u));
    (0..model.videos.n_authors).filter(|_| rng.gen::<f64>() < cfg.block_author_rate).collect()
}

/// One small-matrix cell as the truth file records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TruthCell {
    pub video: u32,
    pub mu: f64,
    pub blocked: bool,
}

/// Everything the row generators share: the settings, the latent world, the calendar, and the blocked
/// authors of every small user (indexed like `model.ids.small_users`).
pub(crate) struct Matrices<'a> {
    pub cfg: &'a SynthConfig,
    pub seed: u64,
    pub model: &'a Model,
    pub cal: &'a Calendar,
    pub blocks: Vec<Vec<u32>>,
}

impl<'a> Matrices<'a> {
    pub(crate) fn new(cfg: &'a SynthConfig, seed: u64, model: &'a Model, cal: &'a Calendar) -> Self {
        let blocks = model.ids.small_users.iter().map(|&u| blocked_authors(cfg, seed, model, u)).collect();
        Matrices { cfg, seed, model, cal, blocks }
    }

    /// The authors user `u` blocked (none for a user outside the small matrix).
    pub(crate) fn blocked_of(&self, u: u32) -> &[u32] {
        self.model.ids.small_users.binary_search(&u).map_or(&[], |s| &self.blocks[s])
    }

    /// Section 6: the small-matrix rows of user `u` (sorted by time) and the truth of all its cells
    /// (by video).
    pub(crate) fn small_user(&self, u: u32) -> (Vec<Row>, Vec<TruthCell>) {
        let (cfg, model) = (self.cfg, self.model);
        let blocked = self.blocked_of(u);
        let mut rng = stream_rng(self.seed, Stream::SmallRows, u64::from(u));
        let videos = &model.ids.small_videos;
        let mut rows = Vec::with_capacity(videos.len());
        let mut truth = Vec::with_capacity(videos.len());
        for &v in videos {
            let vi = v as usize;
            let mu = model.mu(u as usize, vi);
            let random_block = rng.gen::<f64>() < cfg.block_random_rate;
            let is_blocked = random_block || blocked.binary_search(&model.videos.author[vi]).is_ok();
            truth.push(TruthCell { video: v, mu, blocked: is_blocked });
            if !is_blocked {
                let r = observe(&mut rng, cfg, mu, 1.0, cfg.noise_log_sd);
                rows.push(row(model, &mut rng, self.cal, vi, r));
            }
        }
        sort_by_time(&mut rows);
        (rows, truth)
    }

    /// Writes `small_matrix.csv` and `truth/true_watch_ratio_small.csv` in one pass over the small users.
    pub(crate) fn write_small(
        &self,
        matrix: &mut Sink,
        truth: &mut Sink,
        progress: &mut dyn FnMut(&str, u64, u64),
    ) -> Result<RatioStats> {
        matrix.header(MATRIX_HEADER)?;
        truth.header(TRUTH_SMALL_HEADER)?;
        let mut stats = RatioStats::default();
        let users = &self.model.ids.small_users;
        for (i, &u) in users.iter().enumerate() {
            let (rows, cells) = self.small_user(u);
            write_rows(matrix, self.cal, u, &rows, &mut stats)?;
            for c in cells {
                let b = truth.buf();
                push_u64(b, u64::from(u));
                b.push(b',');
                push_u64(b, u64::from(c.video));
                b.push(b',');
                push_f64(b, c.mu);
                b.push(b',');
                b.push(if c.blocked { b'1' } else { b'0' });
                truth.end_row()?;
            }
            if i % 64 == 0 || i + 1 == users.len() {
                progress("small matrix", i as u64 + 1, users.len() as u64);
            }
        }
        Ok(stats)
    }

    /// Section 7: the videos big user `u` is exposed to, ascending, with ln μ of each.
    /// `scratch` is reused across users to avoid reallocating 10,728 keys per user.
    pub(crate) fn exposed_videos(
        &self,
        plan: &BigPlan,
        rng: &mut ChaCha8Rng,
        u: u32,
        scratch: &mut Vec<(f64, u32, f64)>,
    ) -> Vec<(u32, f64)> {
        let (cfg, model) = (self.cfg, self.model);
        let ids = &model.ids;
        let ui = u as usize;
        let blocked = self.blocked_of(u);
        let skip_small = cfg.big_excludes_small_cells && ids.is_small_user[ui];
        scratch.clear();
        for &v in &ids.big_videos {
            let vi = v as usize;
            if (skip_small && ids.is_small_video[vi])
                || (!blocked.is_empty() && blocked.binary_search(&model.videos.author[vi]).is_ok())
            {
                continue;
            }
            let log_mu = model.log_mu(ui, vi);
            let log_w = plan.log_popularity_weight[vi] + cfg.exposure_preference_power * log_mu;
            let e: f64 = rng.sample(Exp1);
            scratch.push((e * (-log_w).exp(), v, log_mu));
        }
        let eligible = scratch.len();
        let target = cfg.big_density * cfg.n_big_videos as f64 * model.users.activity[ui] / plan.mean_activity;
        let n = (target.round() as usize).clamp(cfg.min_big_rows_per_user.min(eligible), eligible);
        if n == 0 {
            return Vec::new();
        }
        if n < eligible {
            scratch.select_nth_unstable_by(n - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        }
        let mut chosen: Vec<(u32, f64)> = scratch[..n].iter().map(|&(_, v, s)| (v, s)).collect();
        chosen.sort_unstable_by_key(|&(v, _)| v);
        chosen
    }

    /// Sections 5, 7, 8 and 9: the big-matrix rows of user `u`, sorted by time, and how many of them are
    /// duplicates.
    pub(crate) fn big_user(&self, plan: &BigPlan, u: u32, scratch: &mut Vec<(f64, u32, f64)>) -> (Vec<Row>, u64) {
        let mut rng = stream_rng(self.seed, Stream::BigRows, u64::from(u));
        let exposed = self.exposed_videos(plan, &mut rng, u, scratch);
        let mut rows = Vec::with_capacity(exposed.len() + exposed.len() / 64 + 8);
        for &(v, log_mu) in &exposed {
            let vi = v as usize;
            let bias = plan.feedback_bias[vi];
            let r = observe(&mut rng, self.cfg, log_mu.exp(), bias, plan.noise_sd);
            rows.push(row(self.model, &mut rng, self.cal, vi, r));
        }
        let base = rows.len();
        let mut duplicates = 0;
        for i in 0..base {
            if rng.gen::<f64>() < plan.single_copy_rate {
                rows.push(rows[i]);
                duplicates += 1;
            }
        }
        if let Ok(h) = plan.heavy.binary_search_by_key(&u, |&(hu, _)| hu) {
            if base > 0 {
                let copied = rows[rng.gen_range(0..base)];
                let copies = plan.heavy[h].1;
                rows.extend(std::iter::repeat_n(copied, copies as usize));
                duplicates += copies;
            }
        }
        sort_by_time(&mut rows);
        (rows, duplicates)
    }

    /// Writes `big_matrix.csv`; returns its ratio statistics and the number of duplicate rows.
    pub(crate) fn write_big(
        &self,
        sink: &mut Sink,
        progress: &mut dyn FnMut(&str, u64, u64),
    ) -> Result<(RatioStats, u64)> {
        sink.header(MATRIX_HEADER)?;
        let plan = BigPlan::new(self.cfg, self.seed, self.model);
        let mut stats = RatioStats::default();
        let mut duplicates = 0;
        let mut scratch = Vec::with_capacity(self.cfg.n_big_videos);
        let users = &self.model.ids.big_users;
        for (i, &u) in users.iter().enumerate() {
            let (rows, dups) = self.big_user(&plan, u, &mut scratch);
            duplicates += dups;
            write_rows(sink, self.cal, u, &rows, &mut stats)?;
            if i % 64 == 0 || i + 1 == users.len() {
                progress("big matrix", i as u64 + 1, users.len() as u64);
            }
        }
        Ok((stats, duplicates))
    }
}

/// Section 5: l̄, the log popularity of a typical exposed video (Σ w_v l_v / Σ w_v over the big videos,
/// w_v = π_v^exposure_popularity_power), and per video id the big-matrix feedback factor
/// exp(big_popularity_bias · (l_v − l̄)).
pub(crate) fn feedback_bias(cfg: &SynthConfig, model: &Model) -> (f64, Vec<f64>) {
    let l = &model.videos.log_popularity;
    let (mut sum_w, mut sum_wl) = (0.0, 0.0);
    for &v in &model.ids.big_videos {
        let lv = l[v as usize];
        let w = (cfg.exposure_popularity_power * lv).exp();
        sum_w += w;
        sum_wl += w * lv;
    }
    let center = sum_wl / sum_w;
    let bias = l.iter().map(|lv| (cfg.big_popularity_bias * (lv - center)).exp()).collect();
    (center, bias)
}

/// The precomputed parts of sections 7 and 9 shared by all big-matrix users.
pub(crate) struct BigPlan {
    /// Mean α over the big users.
    mean_activity: f64,
    /// Per video id: exposure_popularity_power · l_v (log of the popularity part of the exposure weight).
    log_popularity_weight: Vec<f64>,
    /// Per video id: exp(big_popularity_bias · (l_v − l̄)).
    feedback_bias: Vec<f64>,
    /// σ_b.
    noise_sd: f64,
    /// P(one extra copy) per row.
    single_copy_rate: f64,
    /// (user id, extra copies of one of its rows), sorted by user.
    heavy: Vec<(u32, u64)>,
}

impl BigPlan {
    pub(crate) fn new(cfg: &SynthConfig, seed: u64, model: &Model) -> Self {
        let ids = &model.ids;
        let mean_activity = ids.big_users.iter().map(|&u| model.users.activity[u as usize]).sum::<f64>()
            / ids.big_users.len().max(1) as f64;
        let l = &model.videos.log_popularity;
        let expected_rows = cfg.big_density * (cfg.n_big_users * cfg.n_big_videos) as f64;
        let heavy_total = cfg.duplicate_row_rate * cfg.duplicate_heavy_share * expected_rows;
        let mut rng = stream_rng(seed, Stream::Duplicates, 0);
        let n_heavy = cfg.duplicate_heavy_rows.min(ids.big_users.len());
        let copies = (heavy_total / n_heavy.max(1) as f64).round() as u64;
        let mut heavy: Vec<(u32, u64)> = rand::seq::index::sample(&mut rng, ids.big_users.len(), n_heavy)
            .into_iter()
            .map(|i| (ids.big_users[i], copies))
            .filter(|&(_, c)| c > 0)
            .collect();
        heavy.sort_unstable();
        BigPlan {
            mean_activity,
            log_popularity_weight: l.iter().map(|x| cfg.exposure_popularity_power * x).collect(),
            feedback_bias: feedback_bias(cfg, model).1,
            noise_sd: cfg.noise_log_sd.hypot(cfg.big_extra_noise_log_sd),
            single_copy_rate: cfg.duplicate_row_rate * (1.0 - cfg.duplicate_heavy_share),
            heavy,
        }
    }
}
