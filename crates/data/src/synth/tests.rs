//! End-to-end checks of the generator on the `tiny` size, plus an ignored full-size run
//! (`cargo test -p dsrm-data --release -- --ignored synth --nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, FixedOffset};
use sha2::{Digest, Sha256};

use super::categories::Categories;
use super::model::Model;
use super::*;

/// One parsed matrix row.
#[derive(Debug, Clone, Copy)]
struct Parsed {
    user: u32,
    video: u32,
    play: i64,
    duration: i64,
    unix_ms: i64,
    ratio: f64,
}

fn tiny(seed: u64, dir: &Path) -> SynthSummary {
    let out = dir.join("synth");
    generate(&SynthConfig::for_size(SynthSize::Tiny), seed, &out, &mut |_, _, _| {}).unwrap()
}

/// Parses and checks every row of a matrix file: column forms, ratio = play / duration bitwise, and the
/// agreement of `time`, `date` and `timestamp` (UTC+8).
fn parse_matrix(path: &Path) -> Vec<Parsed> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(MATRIX_HEADER));
    let beijing = FixedOffset::east_opt(8 * 3600).unwrap();
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 8, "{line}");
            let (secs, frac) = f[6].split_once('.').expect("timestamp has decimals");
            assert_eq!(frac.len(), 3, "{line}");
            let unix_ms = secs.parse::<i64>().unwrap() * 1000 + frac.parse::<i64>().unwrap();
            let local = DateTime::from_timestamp_millis(unix_ms).unwrap().with_timezone(&beijing);
            assert_eq!(f[4], local.format("%Y-%m-%d %H:%M:%S%.3f").to_string(), "{line}");
            assert_eq!(f[5], local.format("%Y%m%d").to_string(), "{line}");
            assert!(("20200705"..="20200905").contains(&f[5]), "{line}");
            let row = Parsed {
                user: f[0].parse().unwrap(),
                video: f[1].parse().unwrap(),
                play: f[2].parse().unwrap(),
                duration: f[3].parse().unwrap(),
                unix_ms,
                ratio: if f[7].is_empty() { f64::NAN } else { f[7].parse().unwrap() },
            };
            assert!(row.play >= 0);
            let expected = row.play as f64 / row.duration as f64;
            assert_eq!(row.ratio.to_bits(), expected.to_bits(), "{line}");
            if row.duration == 0 {
                assert_eq!(f[7], if row.play == 0 { "" } else { "inf" }, "{line}");
            }
            row
        })
        .collect()
}

fn sha256_hex(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

fn manifest(dir: &Path) -> SynthManifest {
    serde_json::from_str(&std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap()).unwrap()
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

#[test]
fn tiny_matrices_have_the_kuairec_format_and_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = tiny(1, tmp.path());
    let dir = &summary.out_dir;
    let cfg = SynthConfig::for_size(SynthSize::Tiny);
    let small = parse_matrix(&dir.join("small_matrix.csv"));
    let big = parse_matrix(&dir.join("big_matrix.csv"));

    // Sorted by (user, timestamp).
    for rows in [&small, &big] {
        assert!(rows.windows(2).all(|w| (w[0].user, w[0].unix_ms) <= (w[1].user, w[1].unix_ms)));
    }

    // Small matrix: one row per unblocked cell, ≈ 99.6% of cells.
    let cells = (cfg.n_small_users * cfg.n_small_videos) as f64;
    let density = small.len() as f64 / cells;
    assert!((density - 0.996).abs() < 0.005, "small density {density}");
    let small_pairs: BTreeSet<(u32, u32)> = small.iter().map(|r| (r.user, r.video)).collect();
    assert_eq!(small_pairs.len(), small.len(), "one row per small cell");
    let small_users: BTreeSet<u32> = small.iter().map(|r| r.user).collect();
    let small_videos: BTreeSet<u32> = small.iter().map(|r| r.video).collect();
    assert_eq!(small_users.len(), cfg.n_small_users);
    assert_eq!(small_videos.len(), cfg.n_small_videos);

    // Big matrix: ≈ 16% of cells, ids inside the real id spaces, small ids inside the big ids.
    let big_users: BTreeSet<u32> = big.iter().map(|r| r.user).collect();
    let big_videos: BTreeSet<u32> = big.iter().map(|r| r.video).collect();
    assert_eq!(big_users.len(), cfg.n_big_users);
    assert!(big_videos.len() <= cfg.n_big_videos);
    assert!(big_users.iter().all(|&u| (u as usize) < KUAIREC_USERS));
    assert!(big_videos.iter().all(|&v| (v as usize) < KUAIREC_VIDEOS));
    assert!(small_users.is_subset(&big_users));
    let truth = std::fs::read_to_string(dir.join("truth/item_truth.csv")).unwrap();
    let in_big: BTreeSet<u32> = truth
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some("1"))
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(in_big.len(), cfg.n_big_videos);
    assert!(small_videos.is_subset(&in_big) && big_videos.is_subset(&in_big));
    let big_density = summary.stats.big_density;
    assert!((big_density - 0.16).abs() < 0.01, "big density {big_density}");
    let s = &summary.stats;
    assert_eq!(s.big_rows as usize, big.len());
    assert_eq!(s.small_rows as usize, small.len());
    assert!(s.big_duplicates > 0);

    // Exact duplicates exist, and only in the big matrix.
    let mut keys: Vec<(u32, u32, i64)> = big.iter().map(|r| (r.user, r.video, r.unix_ms)).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!((big.len() - keys.len()) as u64, s.big_duplicates);

    // One duration per video, across both matrices and the truth file.
    let mut duration: BTreeMap<u32, i64> = BTreeMap::new();
    for r in small.iter().chain(&big) {
        assert_eq!(*duration.entry(r.video).or_insert(r.duration), r.duration);
    }
    for line in truth.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if let Some(&d) = duration.get(&f[0].parse().unwrap()) {
            assert_eq!(d.to_string(), f[8]);
        }
    }
    assert!(duration.values().all(|&d| (2_000..=300_000).contains(&d)));

    // The watch-ratio distribution looks like KuaiRec's small matrix.
    let median = s.small_ratio_quantiles[3];
    assert!((0.6..=1.0).contains(&median), "median {median}");
    assert!((0.01..0.12).contains(&s.small_share_above_2));
    assert!(s.small_share_above_5 > 0.0);
}

#[test]
fn side_tables_truth_and_manifest_are_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = tiny(2, tmp.path());
    let dir = &summary.out_dir;
    let cfg = SynthConfig::for_size(SynthSize::Tiny);

    // The real categories, byte for byte.
    assert_eq!(std::fs::read(dir.join("item_categories.csv")).unwrap(), ITEM_CATEGORIES_CSV.as_bytes());

    // User features: the real header, every user id once, 31 cells per row.
    let mut reader = csv::Reader::from_path(dir.join("user_features.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header.join(","), USER_FEATURES_HEADER);
    assert_eq!(header.len(), 31);
    let mut n = 0;
    for (u, record) in reader.records().enumerate() {
        let r = record.unwrap();
        assert_eq!(r.len(), 31);
        assert_eq!(r[0].parse::<usize>().unwrap(), u);
        assert!(["full_active", "high_active", "middle_active", "UNKNOWN"].contains(&&r[1]));
        for c in [2, 3, 4, 5, 7, 9, 11, 13, 14, 15, 16, 18, 19, 20, 21, 22, 23, 24] {
            r[c].parse::<u64>().unwrap();
        }
        for c in [17, 25, 26, 27, 28, 29, 30] {
            assert!(r[c].is_empty() || r[c].parse::<u64>().is_ok());
        }
        n += 1;
    }
    assert_eq!(n, KUAIREC_USERS);
    let text = std::fs::read_to_string(dir.join("user_features.csv")).unwrap();
    assert!(text.contains(",\"(10,50]\","), "labels with commas are quoted");

    // Truth of every small cell; blocked exactly where the matrix has no row.
    let small = parse_matrix(&dir.join("small_matrix.csv"));
    let present: BTreeSet<(u32, u32)> = small.iter().map(|r| (r.user, r.video)).collect();
    let truth = std::fs::read_to_string(dir.join("truth/true_watch_ratio_small.csv")).unwrap();
    let mut lines = truth.lines();
    assert_eq!(lines.next(), Some(TRUTH_SMALL_HEADER));
    let mut cells = 0;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let key = (f[0].parse().unwrap(), f[1].parse().unwrap());
        let mu: f64 = f[2].parse().unwrap();
        assert!(mu.is_finite() && mu > 0.0);
        assert_eq!(f[3] == "1", !present.contains(&key), "{line}");
        cells += 1;
    }
    assert_eq!(cells, cfg.n_small_users * cfg.n_small_videos);
    assert_eq!(summary.stats.small_blocked as usize, cells - small.len());

    // Preferences: every user, 31 affinities and k factors.
    let prefs = std::fs::read_to_string(dir.join("truth/user_preferences.csv")).unwrap();
    let header = prefs.lines().next().unwrap();
    assert_eq!(header.split(',').count(), 6 + 31 + cfg.n_factors);
    assert_eq!(prefs.lines().count(), 1 + KUAIREC_USERS);

    // The manifest: label, settings, and the hash of every other file.
    let m = manifest(dir);
    assert_eq!(m.synthetic.generator, GENERATOR);
    assert_eq!(m.synthetic.size, "tiny");
    assert_eq!(m.synthetic.seed, 2);
    let settings: SynthConfig = serde_json::from_value(m.synthetic.settings.clone()).unwrap();
    assert_eq!(settings, cfg);
    let info: SyntheticInfo = serde_json::from_str(&std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(info, m.synthetic);
    assert_eq!(m.files.len(), 9);
    for f in &m.files {
        let path = dir.join(&f.path);
        assert_eq!(sha256_hex(&path), f.sha256, "{}", f.path);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), f.bytes);
    }
    let rows = |name: &str| m.files.iter().find(|f| f.path == name).unwrap().rows;
    assert_eq!(rows("item_categories.csv"), KUAIREC_VIDEOS as u64);
    assert_eq!(rows("user_features.csv"), KUAIREC_USERS as u64);
    assert_eq!(summary.files.len(), 10);
    assert_eq!(summary.files.last().unwrap().path, MANIFEST_FILE);
    assert!(std::fs::read_to_string(dir.join("LICENSE-NOTE.md")).unwrap().contains("CC BY-SA 4.0"));
    let readme = std::fs::read_to_string(dir.join("truth/README.md")).unwrap();
    assert!(readme.contains("ln μ_uv") && readme.contains("\"n_big_users\": 400"));
}

/// The README's promise: μ of any cell follows from the two truth tables, the tags and the formula.
#[test]
fn the_documented_formula_reproduces_the_true_ratios() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = tiny(9, tmp.path());
    let dir = &summary.out_dir;
    let cfg = SynthConfig::for_size(SynthSize::Tiny);
    let table = |name: &str| -> Vec<Vec<String>> {
        let mut reader = csv::Reader::from_path(dir.join(name)).unwrap();
        reader.records().map(|r| r.unwrap().iter().map(String::from).collect()).collect()
    };
    let num = |s: &str| s.parse::<f64>().unwrap();
    let users = table("truth/user_preferences.csv");
    let items = table("truth/item_truth.csv");
    let cats = Categories::embedded().unwrap();
    let k = cfg.n_factors;
    let mut worst: f64 = 0.0;
    for cell in table("truth/true_watch_ratio_small.csv") {
        let (u, v) = (cell[0].parse::<usize>().unwrap(), cell[1].parse::<usize>().unwrap());
        let (user, item) = (&users[u], &items[v]);
        let affinity: f64 =
            cats.of(v).iter().map(|&t| num(&user[6 + t as usize])).sum::<f64>() / cats.of(v).len() as f64;
        let dot: f64 = (0..k).map(|j| num(&user[37 + j]) * num(&item[10 + j])).sum();
        let log_mu = cfg.log_ratio_intercept
            + num(&user[4])
            + num(&item[4])
            + affinity
            + cfg.factor_scale * dot / (k as f64).sqrt()
            - cfg.duration_effect * (num(&item[9]) / cfg.duration_median_ms).ln();
        worst = worst.max((log_mu.exp() / num(&cell[2]) - 1.0).abs());
    }
    assert!(worst < 1e-12, "largest relative difference {worst}");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let a = generate(&SynthConfig::for_size(SynthSize::Tiny), 5, &tmp.path().join("a"), &mut |_, _, _| {}).unwrap();
    let b = generate(&SynthConfig::for_size(SynthSize::Tiny), 5, &tmp.path().join("b"), &mut |_, _, _| {}).unwrap();
    let c = generate(&SynthConfig::for_size(SynthSize::Tiny), 6, &tmp.path().join("c"), &mut |_, _, _| {}).unwrap();
    assert_eq!(a.files, b.files);
    let hash = |s: &SynthSummary, name: &str| s.files.iter().find(|f| f.path == name).unwrap().sha256.clone();
    for name in ["small_matrix.csv", "big_matrix.csv", "user_features.csv", "truth/user_preferences.csv"] {
        assert_ne!(hash(&a, name), hash(&c, name), "{name}");
    }
    assert_eq!(hash(&a, "item_categories.csv"), hash(&c, "item_categories.csv"));
    // Only the data set folders are left: no temporary folder.
    let mut names: Vec<String> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn big_matrix_exposure_and_feedback_are_popularity_biased() {
    let tmp = tempfile::tempdir().unwrap();
    let seed = 3;
    let summary = tiny(seed, tmp.path());
    let cfg = SynthConfig::for_size(SynthSize::Tiny);
    let model = Model::draw(&cfg, seed, Categories::embedded().unwrap());
    let big = parse_matrix(&summary.out_dir.join("big_matrix.csv"));
    let small = parse_matrix(&summary.out_dir.join("small_matrix.csv"));

    // Exposure: distinct (user, video) pairs per video rise with popularity.
    let mut pairs: Vec<(u32, u32)> = big.iter().map(|r| (r.user, r.video)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut exposures: BTreeMap<u32, f64> = model.ids.big_videos.iter().map(|&v| (v, 0.0)).collect();
    for (_, v) in pairs {
        *exposures.get_mut(&v).unwrap() += 1.0;
    }
    let log_pop: Vec<f64> = exposures.keys().map(|&v| model.videos.log_popularity[v as usize]).collect();
    let counts: Vec<f64> = exposures.values().copied().collect();
    let r = pearson(&log_pop, &counts);
    assert!(r > 0.5, "corr(log popularity, exposures) = {r}");

    // Feedback: the big matrix over-rates the most popular decile and under-rates the least popular one,
    // against the truth for the same cells; the small matrix does not.
    let mut by_pop = model.ids.big_videos.clone();
    by_pop.sort_by(|&a, &b| {
        let l = &model.videos.log_popularity;
        l[a as usize].total_cmp(&l[b as usize])
    });
    let decile = by_pop.len() / 10;
    let bottom: BTreeSet<u32> = by_pop[..decile].iter().copied().collect();
    let top: BTreeSet<u32> = by_pop[by_pop.len() - decile..].iter().copied().collect();
    let observed_over_truth = |rows: &[Parsed], set: &BTreeSet<u32>| {
        let (mut obs, mut truth) = (0.0, 0.0);
        for r in rows.iter().filter(|r| set.contains(&r.video)) {
            obs += r.ratio;
            truth += model.mu(r.user as usize, r.video as usize);
        }
        obs / truth
    };
    let top_big = observed_over_truth(&big, &top);
    let bottom_big = observed_over_truth(&big, &bottom);
    assert!(top_big > 1.05, "top decile observed/truth {top_big}");
    assert!(bottom_big < 1.0, "bottom decile observed/truth {bottom_big}");
    let top_small = observed_over_truth(&small, &top);
    assert!((0.9..1.1).contains(&top_small), "small matrix {top_small}");
}

#[test]
fn zero_duration_videos_give_inf_ratios_like_the_real_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = SynthConfig { zero_duration_rate: 0.05, ..SynthConfig::for_size(SynthSize::Tiny) };
    let out = tmp.path().join("z");
    let summary = generate(&cfg, 4, &out, &mut |_, _, _| {}).unwrap();
    let big = parse_matrix(&out.join("big_matrix.csv"));
    let zero = big.iter().filter(|r| r.duration == 0).count() as u64;
    assert!(zero > 0);
    let small = parse_matrix(&out.join("small_matrix.csv"));
    let zero_small = small.iter().filter(|r| r.duration == 0).count() as u64;
    assert_eq!(summary.stats.non_finite_ratios, zero + zero_small);
}

#[test]
fn an_existing_data_set_is_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("taken");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let err = generate(&SynthConfig::for_size(SynthSize::Tiny), 1, &out, &mut |_, _, _| {}).unwrap_err();
    assert!(err.to_string().contains("taken"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("keep.txt")).unwrap(), "mine");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    // An empty folder is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut stages = BTreeSet::new();
    generate(&SynthConfig::for_size(SynthSize::Tiny), 1, &empty, &mut |stage, done, total| {
        assert!(done <= total);
        stages.insert(stage.to_string());
    })
    .unwrap();
    assert!(empty.join(MANIFEST_FILE).exists());
    assert!(stages.contains("big matrix") && stages.contains("small matrix"));
}

#[test]
fn configs_round_trip_and_bad_settings_are_named() {
    let cfg = SynthConfig::for_size(SynthSize::Tiny);
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(json.contains("\"size\":\"tiny\""));
    assert_eq!(serde_json::from_str::<SynthConfig>(&json).unwrap(), cfg);
    assert_eq!(serde_json::from_str::<SynthConfig>("{}").unwrap(), SynthConfig::default());
    assert!(serde_json::from_str::<SynthConfig>("{\"no_such\": 1}").is_err());
    cfg.validate().unwrap();
    SynthConfig::default().validate().unwrap();
    let bad = SynthConfig { n_small_users: 401, start_date: "2020-13-01".into(), ..cfg };
    let msg = bad.validate().unwrap_err().to_string();
    assert!(msg.contains("n_small_users") && msg.contains("start_date"), "{msg}");
}

/// The full size, timed: `cargo test -p dsrm-data --release -- --ignored full_size --nocapture`.
#[test]
#[ignore = "writes ≈ 1.5 GB; run in release"]
fn full_size_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("full");
    let t0 = std::time::Instant::now();
    let mut last = String::new();
    let summary = generate(&SynthConfig::default(), 2020, &out, &mut |stage, _, _| {
        if stage != last {
            eprintln!("{:>7.2} s  {stage}", t0.elapsed().as_secs_f64());
            last = stage.to_string();
        }
    })
    .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("generated in {secs:.2} s");
    eprintln!("{}", serde_json::to_string(&summary.stats).unwrap());
    for f in &summary.files {
        eprintln!("{:>14} bytes {:>10} rows  {}", f.bytes, f.rows, f.path);
    }
    let s = &summary.stats;
    assert_eq!(s.small_users * s.small_videos, 1_411 * 3_327);
    assert!((s.small_density - 0.996).abs() < 0.002);
    assert!((s.big_density - 0.16).abs() < 0.005);
}
