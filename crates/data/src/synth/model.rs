//! The latent world: which ids take part, each user's preferences, each video's properties, and the true
//! expected watch ratio μ. Sections 1–4 of the model description (`model.md`), in that order.

use rand::seq::index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};

use super::categories::{Categories, N_TAGS};
use super::SynthConfig;

/// Number of user ids in the real KuaiRec (`user_features.csv` has ids 0..7175).
pub const KUAIREC_USERS: usize = 7_176;
/// Number of video ids in the real KuaiRec (`item_categories.csv` has ids 0..10727).
pub const KUAIREC_VIDEOS: usize = 10_728;

/// The independent random streams of the generator. Each (stream, id) pair gets its own ChaCha8 stream,
/// so, e.g., user 17's preferences are the same whichever other users are generated.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    UserLatent = 1,
    VideoLatent = 2,
    Selection = 3,
    UserFeatures = 4,
    Blocks = 5,
    SmallRows = 6,
    BigRows = 7,
    Duplicates = 8,
}

/// The random stream for `(stream, index)` under `seed`.
pub(crate) fn stream_rng(seed: u64, stream: Stream, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((stream as u64) << 32) | index);
    rng
}

fn normal<R: Rng>(rng: &mut R) -> f64 {
    rng.sample(StandardNormal)
}

/// Section 1: the ids of both matrices, each list sorted ascending.
#[derive(Debug, Clone)]
pub(crate) struct Ids {
    pub big_users: Vec<u32>,
    pub big_videos: Vec<u32>,
    pub small_users: Vec<u32>,
    pub small_videos: Vec<u32>,
    /// Indexed by video id.
    pub is_small_video: Vec<bool>,
    pub is_big_video: Vec<bool>,
    /// Indexed by user id.
    pub is_small_user: Vec<bool>,
    pub is_big_user: Vec<bool>,
}

impl Ids {
    pub(crate) fn draw(cfg: &SynthConfig, seed: u64) -> Self {
        let mut rng = stream_rng(seed, Stream::Selection, 0);
        let all_users: Vec<u32> = (0..KUAIREC_USERS as u32).collect();
        let all_videos: Vec<u32> = (0..KUAIREC_VIDEOS as u32).collect();
        let big_users = pick(&mut rng, &all_users, cfg.n_big_users);
        let big_videos = pick(&mut rng, &all_videos, cfg.n_big_videos);
        let small_users = pick(&mut rng, &big_users, cfg.n_small_users);
        let small_videos = pick(&mut rng, &big_videos, cfg.n_small_videos);
        let mask = |ids: &[u32], n: usize| {
            let mut m = vec![false; n];
            ids.iter().for_each(|&i| m[i as usize] = true);
            m
        };
        Ids {
            is_small_video: mask(&small_videos, KUAIREC_VIDEOS),
            is_big_video: mask(&big_videos, KUAIREC_VIDEOS),
            is_small_user: mask(&small_users, KUAIREC_USERS),
            is_big_user: mask(&big_users, KUAIREC_USERS),
            big_users,
            big_videos,
            small_users,
            small_videos,
        }
    }
}

/// `n` of `from`, uniformly without replacement, sorted (all of them when `n >= from.len()`).
fn pick(rng: &mut ChaCha8Rng, from: &[u32], n: usize) -> Vec<u32> {
    if n >= from.len() {
        return from.to_vec();
    }
    let mut chosen: Vec<u32> = index::sample(rng, from.len(), n).into_iter().map(|i| from[i]).collect();
    chosen.sort_unstable();
    chosen
}

/// Section 2: every user's latent preference, indexed by user id 0..7175.
#[derive(Debug, Clone)]
pub(crate) struct Users {
    /// Favourite tags F_u, ascending.
    pub favourites: Vec<Vec<u8>>,
    /// a_ut, row-major `n_users x N_TAGS`.
    pub affinity: Vec<f64>,
    /// β_u.
    pub bias: Vec<f64>,
    /// p_u, row-major `n_users x n_factors`.
    pub factors: Vec<f64>,
    /// α_u (mean 1).
    pub activity: Vec<f64>,
}

impl Users {
    fn draw(cfg: &SynthConfig, seed: u64, cats: &Categories) -> Self {
        let k = cfg.n_factors;
        let prior: Vec<f64> = cats.tag_counts().iter().map(|&n| n as f64 + cfg.fav_tag_smoothing).collect();
        let extra =
            (cfg.fav_extra_mean > 0.0).then(|| Poisson::new(cfg.fav_extra_mean).expect("validated: positive mean"));
        let mut users = Users {
            favourites: Vec::with_capacity(KUAIREC_USERS),
            affinity: Vec::with_capacity(KUAIREC_USERS * N_TAGS),
            bias: Vec::with_capacity(KUAIREC_USERS),
            factors: Vec::with_capacity(KUAIREC_USERS * k),
            activity: Vec::with_capacity(KUAIREC_USERS),
        };
        for u in 0..KUAIREC_USERS {
            let mut rng = stream_rng(seed, Stream::UserLatent, u as u64);
            let n_extra = extra.as_ref().map_or(0.0, |p| p.sample(&mut rng)) as usize;
            let mut favourites = weighted_without_replacement(&mut rng, &prior, 1 + n_extra);
            favourites.sort_unstable();
            for t in 0..N_TAGS {
                let background = cfg.affinity_bg_sd * normal(&mut rng);
                let favourite = cfg.affinity_fav_mean + cfg.affinity_fav_sd * normal(&mut rng);
                let is_fav = favourites.contains(&(t as u8));
                users.affinity.push(background + if is_fav { favourite } else { 0.0 });
            }
            users.favourites.push(favourites);
            users.bias.push(cfg.user_bias_sd * normal(&mut rng));
            for _ in 0..k {
                users.factors.push(normal(&mut rng));
            }
            let s = cfg.activity_sd;
            users.activity.push((s * normal(&mut rng) - s * s / 2.0).exp());
        }
        users
    }

    pub(crate) fn affinity_of(&self, u: usize) -> &[f64] {
        &self.affinity[u * N_TAGS..(u + 1) * N_TAGS]
    }
}

/// `n` distinct indices of `weights` (at most all with a positive weight), each draw ∝ the remaining
/// weights.
fn weighted_without_replacement(rng: &mut ChaCha8Rng, weights: &[f64], n: usize) -> Vec<u8> {
    let mut w = weights.to_vec();
    let positive = w.iter().filter(|&&x| x > 0.0).count();
    let mut chosen = Vec::with_capacity(n);
    for _ in 0..n.min(positive) {
        let total: f64 = w.iter().sum();
        let mut x = rng.gen::<f64>() * total;
        let mut pick = w.iter().rposition(|&wi| wi > 0.0).expect("weights left");
        for (i, &wi) in w.iter().enumerate() {
            if wi > 0.0 && x < wi {
                pick = i;
                break;
            }
            x -= wi;
        }
        chosen.push(pick as u8);
        w[pick] = 0.0;
    }
    chosen
}

/// Section 3: every video's properties, indexed by video id 0..10727.
#[derive(Debug, Clone)]
pub(crate) struct Videos {
    /// q_v.
    pub quality: Vec<f64>,
    /// l_v = ln π_v.
    pub log_popularity: Vec<f64>,
    /// d_v, ms: the length that drives play_duration.
    pub duration: Vec<i64>,
    /// What the matrices write as `video_duration`: d_v, or 0 for a zero-duration quirk video.
    pub file_duration: Vec<i64>,
    /// g_v.
    pub author: Vec<u32>,
    /// f_v, row-major `n_videos x n_factors`.
    pub factors: Vec<f64>,
    /// Number of author groups.
    pub n_authors: u32,
}

impl Videos {
    fn draw(cfg: &SynthConfig, seed: u64) -> Self {
        let k = cfg.n_factors;
        let n_authors = ((KUAIREC_VIDEOS as f64 / cfg.videos_per_author).round() as u32).max(1);
        let rho = cfg.popularity_quality_corr;
        let mut videos = Videos {
            quality: Vec::with_capacity(KUAIREC_VIDEOS),
            log_popularity: Vec::with_capacity(KUAIREC_VIDEOS),
            duration: Vec::with_capacity(KUAIREC_VIDEOS),
            file_duration: Vec::with_capacity(KUAIREC_VIDEOS),
            author: Vec::with_capacity(KUAIREC_VIDEOS),
            factors: Vec::with_capacity(KUAIREC_VIDEOS * k),
            n_authors,
        };
        for v in 0..KUAIREC_VIDEOS {
            let mut rng = stream_rng(seed, Stream::VideoLatent, v as u64);
            let (z_q, z_l, z_d) = (normal(&mut rng), normal(&mut rng), normal(&mut rng));
            videos.quality.push(cfg.quality_sd * z_q);
            let l = cfg.popularity_log_sd * (rho * z_q + (1.0 - rho * rho).sqrt() * z_l);
            videos.log_popularity.push(l);
            let d = (cfg.duration_median_ms.ln() + cfg.duration_log_sd * z_d).exp().round() as i64;
            let d = d.clamp(cfg.duration_min_ms, cfg.duration_max_ms);
            videos.duration.push(d);
            videos.author.push(rng.gen_range(0..n_authors));
            for _ in 0..k {
                videos.factors.push(normal(&mut rng));
            }
            let zero = rng.gen::<f64>() < cfg.zero_duration_rate;
            videos.file_duration.push(if zero { 0 } else { d });
        }
        videos
    }
}

/// The whole latent world and the true expected watch ratio (section 4).
#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub cats: Categories,
    pub ids: Ids,
    pub users: Users,
    pub videos: Videos,
    /// Per video, the terms of ln μ that do not depend on the user:
    /// log_ratio_intercept + q_v − duration_effect · ln(d_v / duration_median_ms).
    video_base: Vec<f64>,
    /// factor_scale / sqrt(k).
    factor_weight: f64,
    k: usize,
}

impl Model {
    /// Draws everything latent for `seed`. `cfg` must be valid.
    pub(crate) fn draw(cfg: &SynthConfig, seed: u64, cats: Categories) -> Self {
        let ids = Ids::draw(cfg, seed);
        let users = Users::draw(cfg, seed, &cats);
        let videos = Videos::draw(cfg, seed);
        let video_base = (0..KUAIREC_VIDEOS)
            .map(|v| {
                let rel_duration = videos.duration[v] as f64 / cfg.duration_median_ms;
                cfg.log_ratio_intercept + videos.quality[v] - cfg.duration_effect * rel_duration.ln()
            })
            .collect();
        let k = cfg.n_factors;
        let factor_weight = if k == 0 { 0.0 } else { cfg.factor_scale / (k as f64).sqrt() };
        Model { cats, ids, users, videos, video_base, factor_weight, k }
    }

    /// A_uv: the mean of u's tag affinities over v's tags.
    pub(crate) fn tag_affinity(&self, u: usize, v: usize) -> f64 {
        let a = self.users.affinity_of(u);
        let tags = self.cats.of(v);
        tags.iter().map(|&t| a[usize::from(t)]).sum::<f64>() / tags.len() as f64
    }

    /// ln μ_uv = log_ratio_intercept + β_u + q_v + A_uv + factor_scale·<p_u, f_v>/√k
    ///           − duration_effect · ln(d_v / duration_median_ms).
    pub(crate) fn log_mu(&self, u: usize, v: usize) -> f64 {
        let k = self.k;
        let p = &self.users.factors[u * k..(u + 1) * k];
        let f = &self.videos.factors[v * k..(v + 1) * k];
        let dot: f64 = p.iter().zip(f).map(|(a, b)| a * b).sum();
        self.video_base[v] + self.users.bias[u] + self.tag_affinity(u, v) + self.factor_weight * dot
    }

    /// μ_uv, the noise-free expected watch ratio.
    pub(crate) fn mu(&self, u: usize, v: usize) -> f64 {
        self.log_mu(u, v).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn favourites_are_distinct_and_follow_the_prior() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut picks = weighted_without_replacement(&mut rng, &[0.5, 1.0, 0.2, 100.0], 9);
        picks.sort_unstable();
        assert_eq!(picks, [0, 1, 2, 3]);
        // Zero weights are never drawn.
        let w = [0.0, 1.0, 0.0, 100.0];
        assert_eq!(weighted_without_replacement(&mut rng, &w, 5).len(), 2);
        // The heavy index almost always comes first.
        let firsts = (0..200).filter(|_| weighted_without_replacement(&mut rng, &w, 1)[0] == 3).count();
        assert!(firsts > 190);
    }

    #[test]
    fn a_users_latents_do_not_depend_on_the_size() {
        let cats = Categories::embedded().unwrap();
        let full = Model::draw(&SynthConfig::default(), 9, cats.clone());
        let tiny = Model::draw(&SynthConfig::for_size(super::super::SynthSize::Tiny), 9, cats);
        assert_eq!(full.users.affinity_of(17), tiny.users.affinity_of(17));
        assert_eq!(full.videos.quality[123], tiny.videos.quality[123]);
    }
}
