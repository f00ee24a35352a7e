//! `user_features.csv`: one synthetic row per user id 0..7175, in the real file's 31 columns and value
//! forms. The values follow the marginals measured on the shipped real file (the constants below); apart
//! from `user_active_degree`, which follows the user's activity, they carry no preference signal.

use std::path::Path;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::model::{stream_rng, Stream, Users, KUAIREC_USERS};
use super::writer::{push_u64, Sink};
use crate::{InputFile, Result};

/// The header of the real `user_features.csv`, byte for byte.
pub const USER_FEATURES_HEADER: &str = "user_id,user_active_degree,is_lowactive_period,\
is_live_streamer,is_video_author,follow_user_num,follow_user_num_range,fans_user_num,\
fans_user_num_range,friend_user_num,friend_user_num_range,register_days,register_days_range,\
onehot_feat0,onehot_feat1,onehot_feat2,onehot_feat3,onehot_feat4,onehot_feat5,onehot_feat6,\
onehot_feat7,onehot_feat8,onehot_feat9,onehot_feat10,onehot_feat11,onehot_feat12,onehot_feat13,\
onehot_feat14,onehot_feat15,onehot_feat16,onehot_feat17";

/// Counts in the real file (7,176 users), used as sampling weights.
const REAL_USERS: f64 = 7_176.0;
const UNKNOWN_DEGREE: f64 = 118.0;
const MIDDLE_ACTIVE: f64 = 28.0;
const HIGH_ACTIVE: f64 = 938.0;
const LOW_ACTIVE_PERIOD: f64 = 3.0;
const LIVE_STREAMER: f64 = 49.0;
const VIDEO_AUTHOR: f64 = 1_217.0;
/// `onehot_feat4` is empty on 201 rows; `onehot_feat12`..`17` are empty together on about 74.
const FEAT4_EMPTY: f64 = 201.0;
const FEAT12_17_EMPTY: f64 = 74.0;

/// (value, count) of the categorical one-hot columns in the real file.
const FEAT0: &[(u32, u32)] = &[(0, 4361), (1, 2815)];
const FEAT1: &[(u32, u32)] = &[(1, 3082), (4, 1096), (3, 949), (6, 825), (2, 736), (5, 483), (0, 3), (7, 2)];
const FEAT2: &[(u32, u32)] = &[
    (8, 1971),
    (25, 1498),
    (24, 1095),
    (17, 1032),
    (1, 513),
    (13, 234),
    (21, 201),
    (23, 187),
    (10, 119),
    (6, 65),
    (0, 52),
    (11, 42),
    (18, 27),
    (26, 22),
    (22, 20),
    (4, 18),
    (16, 16),
    (7, 15),
    (15, 11),
    (19, 9),
    (12, 8),
    (3, 7),
    (20, 3),
    (14, 3),
    (5, 2),
    (2, 2),
    (9, 1),
    (28, 1),
    (29, 1),
    (27, 1),
];
const FEAT4: &[(u32, u32)] =
    &[(1, 3257), (0, 2055), (2, 1195), (3, 314), (4, 78), (5, 44), (6, 20), (7, 8), (8, 1), (9, 1), (10, 1), (11, 1)];
const FEAT5: &[(u32, u32)] = &[(0, 7160), (6, 5), (8, 2), (3, 2), (5, 2), (9, 1), (2, 1), (4, 1), (7, 1), (1, 1)];
const FEAT6: &[(u32, u32)] = &[(1, 4040), (0, 3120), (2, 16)];
const FEAT9: &[(u32, u32)] = &[(6, 1728), (3, 1352), (5, 1250), (4, 1138), (1, 1108), (2, 582), (0, 18)];
const FEAT10: &[(u32, u32)] = &[(2, 3761), (3, 1682), (4, 920), (0, 812), (1, 1)];
const FEAT11: &[(u32, u32)] = &[(0, 6665), (2, 473), (1, 38)];
/// P(1) of the binary `onehot_feat12`..`17` among non-empty rows.
const FEAT12_17_ONES: [(u32, u32); 6] = [(2121, 7099), (743, 7101), (673, 7101), (132, 7102), (127, 7102), (103, 7102)];
/// Upper ends (inclusive) of the uniform integer columns `onehot_feat3`, `7`, `8`.
const FEAT3_MAX: u32 = 1075;
const FEAT7_MAX: u32 = 46;
const FEAT8_MAX: u32 = 339;

/// Range labels of the count columns: (inclusive upper bound, label); the last label has no bound.
const FOLLOW_RANGES: &[(u64, &str)] = &[
    (0, "0"),
    (10, "(0,10]"),
    (50, "(10,50]"),
    (100, "(50,100]"),
    (150, "(100,150]"),
    (250, "(150,250]"),
    (500, "(250,500]"),
    (u64::MAX, "500+"),
];
const FANS_RANGES: &[(u64, &str)] = &[
    (0, "0"),
    (9, "[1,10)"),
    (99, "[10,100)"),
    (999, "[100,1k)"),
    (4_999, "[1k,5k)"),
    (9_999, "[5k,1w)"),
    (u64::MAX, "[1w,10w)"),
];
const FRIEND_RANGES: &[(u64, &str)] = &[
    (0, "0"),
    (4, "[1,5)"),
    (29, "[5,30)"),
    (59, "[30,60)"),
    (119, "[60,120)"),
    (249, "[120,250)"),
    (u64::MAX, "250+"),
];
const REGISTER_RANGES: &[(u64, &str)] = &[
    (30, "15-30"),
    (60, "31-60"),
    (90, "61-90"),
    (180, "91-180"),
    (365, "181-365"),
    (730, "366-730"),
    (u64::MAX, "730+"),
];

/// A log-normal count: P(0) = `p_zero`, else round(exp(ln median + sd·z)) clamped to 1..=max.
struct CountModel {
    p_zero: f64,
    median: f64,
    sd: f64,
    max: u64,
}

/// Fitted to the real quartiles: follow median 33 (q25 9, q75 130); fans 30% zero, [1,10) 53%;
/// friends 60% zero, [1,5) 28%; register days median 225, 8% above 730.
const FOLLOW: CountModel = CountModel { p_zero: 14.0 / REAL_USERS, median: 33.0, sd: 1.9, max: 2_100 };
const FANS: CountModel = CountModel { p_zero: 2_146.0 / REAL_USERS, median: 3.4, sd: 1.5, max: 99_999 };
const FRIENDS: CountModel = CountModel { p_zero: 4_338.0 / REAL_USERS, median: 2.2, sd: 1.6, max: 2_000 };
const REGISTER_DAYS: CountModel = CountModel { p_zero: 0.0, median: 225.0, sd: 0.85, max: 2_245 };

impl CountModel {
    fn sample(&self, rng: &mut ChaCha8Rng, min: u64) -> u64 {
        let zero = rng.gen::<f64>() < self.p_zero;
        let z: f64 = rng.sample(StandardNormal);
        if zero {
            return 0;
        }
        let x = (self.median.ln() + self.sd * z).exp().round() as u64;
        x.clamp(min.max(1), self.max)
    }
}

/// Writes `user_features.csv` for all user ids 0..7175.
pub(crate) fn write(root: &Path, seed: u64, users: &Users) -> Result<InputFile> {
    let degrees = active_degrees(seed, &users.activity);
    let mut sink = Sink::create(root, "user_features.csv")?;
    sink.header(USER_FEATURES_HEADER)?;
    for (u, degree) in degrees.iter().enumerate() {
        let mut rng = stream_rng(seed, Stream::UserFeatures, u as u64);
        let b = sink.buf();
        push_u64(b, u as u64);
        b.push(b',');
        b.extend_from_slice(degree.as_bytes());
        for count in [LOW_ACTIVE_PERIOD, LIVE_STREAMER, VIDEO_AUTHOR] {
            b.push(b',');
            push_u64(b, u64::from(rng.gen::<f64>() < count / REAL_USERS));
        }
        for (model, ranges, min) in [
            (&FOLLOW, FOLLOW_RANGES, 0),
            (&FANS, FANS_RANGES, 0),
            (&FRIENDS, FRIEND_RANGES, 0),
            (&REGISTER_DAYS, REGISTER_RANGES, 15),
        ] {
            let n = model.sample(&mut rng, min);
            b.push(b',');
            push_u64(b, n);
            b.push(b',');
            push_label(b, label(ranges, n));
        }
        push_cell(b, Some(categorical(&mut rng, FEAT0)));
        push_cell(b, Some(categorical(&mut rng, FEAT1)));
        push_cell(b, Some(categorical(&mut rng, FEAT2)));
        push_cell(b, Some(rng.gen_range(0..=FEAT3_MAX)));
        let feat4_empty = rng.gen::<f64>() < FEAT4_EMPTY / REAL_USERS;
        let feat4 = categorical(&mut rng, FEAT4);
        push_cell(b, (!feat4_empty).then_some(feat4));
        push_cell(b, Some(categorical(&mut rng, FEAT5)));
        push_cell(b, Some(categorical(&mut rng, FEAT6)));
        push_cell(b, Some(rng.gen_range(0..=FEAT7_MAX)));
        push_cell(b, Some(rng.gen_range(0..=FEAT8_MAX)));
        push_cell(b, Some(categorical(&mut rng, FEAT9)));
        push_cell(b, Some(categorical(&mut rng, FEAT10)));
        push_cell(b, Some(categorical(&mut rng, FEAT11)));
        let tail_empty = rng.gen::<f64>() < FEAT12_17_EMPTY / REAL_USERS;
        for (ones, of) in FEAT12_17_ONES {
            let one = rng.gen::<f64>() < f64::from(ones) / f64::from(of);
            push_cell(b, (!tail_empty).then_some(u32::from(one)));
        }
        sink.end_row()?;
    }
    sink.finish()
}

/// `user_active_degree` per user id: `UNKNOWN` for a random 1.6%, otherwise by activity rank (the least
/// active `middle_active`, then `high_active`, then `full_active`, in the real file's proportions).
fn active_degrees(seed: u64, activity: &[f64]) -> Vec<&'static str> {
    let unknown: Vec<bool> = (0..KUAIREC_USERS)
        .map(|u| {
            // A stream index past the per-user feature streams.
            let mut rng = stream_rng(seed, Stream::UserFeatures, (KUAIREC_USERS + u) as u64);
            rng.gen::<f64>() < UNKNOWN_DEGREE / REAL_USERS
        })
        .collect();
    let mut known: Vec<usize> = (0..KUAIREC_USERS).filter(|&u| !unknown[u]).collect();
    known.sort_by(|&a, &b| activity[a].total_cmp(&activity[b]).then(a.cmp(&b)));
    let known_real = REAL_USERS - UNKNOWN_DEGREE;
    let n_middle = (known.len() as f64 * MIDDLE_ACTIVE / known_real).round() as usize;
    let n_high = (known.len() as f64 * HIGH_ACTIVE / known_real).round() as usize;
    let mut degrees = vec!["UNKNOWN"; KUAIREC_USERS];
    for (rank, &u) in known.iter().enumerate() {
        degrees[u] = if rank < n_middle {
            "middle_active"
        } else if rank < n_middle + n_high {
            "high_active"
        } else {
            "full_active"
        };
    }
    degrees
}

fn categorical(rng: &mut ChaCha8Rng, table: &[(u32, u32)]) -> u32 {
    let total: u32 = table.iter().map(|&(_, c)| c).sum();
    let mut x = rng.gen_range(0..total);
    for &(value, count) in table {
        if x < count {
            return value;
        }
        x -= count;
    }
    unreachable!("x < total")
}

fn label(ranges: &[(u64, &'static str)], n: u64) -> &'static str {
    ranges.iter().find(|&&(upper, _)| n <= upper).map_or("", |&(_, l)| l)
}

/// A label, quoted when it holds a comma (`"(0,10]"`), as in the real file.
fn push_label(b: &mut Vec<u8>, label: &str) {
    if label.contains(',') {
        b.push(b'"');
        b.extend_from_slice(label.as_bytes());
        b.push(b'"');
    } else {
        b.extend_from_slice(label.as_bytes());
    }
}

/// `,value`, or `,` alone for an empty cell.
fn push_cell(b: &mut Vec<u8>, value: Option<u32>) {
    b.push(b',');
    if let Some(v) = value {
        push_u64(b, u64::from(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_the_real_forms() {
        assert_eq!(label(FOLLOW_RANGES, 0), "0");
        assert_eq!(label(FOLLOW_RANGES, 10), "(0,10]");
        assert_eq!(label(FOLLOW_RANGES, 501), "500+");
        assert_eq!(label(FANS_RANGES, 10), "[10,100)");
        assert_eq!(label(FRIEND_RANGES, 250), "250+");
        assert_eq!(label(REGISTER_RANGES, 731), "730+");
        let mut b = Vec::new();
        push_label(&mut b, "(0,10]");
        push_label(&mut b, "61-90");
        assert_eq!(b, b"\"(0,10]\"61-90");
    }

    #[test]
    fn active_degrees_follow_the_real_proportions() {
        let activity: Vec<f64> = (0..KUAIREC_USERS).map(|u| u as f64).collect();
        let d = active_degrees(1, &activity);
        let count = |name| d.iter().filter(|&&x| x == name).count();
        assert!((60..200).contains(&count("UNKNOWN")));
        assert!((20..40).contains(&count("middle_active")));
        assert!((880..1000).contains(&count("high_active")));
        // The least active known user is middle_active.
        let first_known = (0..KUAIREC_USERS).find(|&u| d[u] != "UNKNOWN").unwrap();
        assert_eq!(d[first_known], "middle_active");
    }
}
