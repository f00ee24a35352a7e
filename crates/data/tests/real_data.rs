//! Loads the real shipped files in `shared/data` and checks the facts measured in `docs/data.md`.

mod common;

use std::collections::BTreeSet;

use common::{kuairec_dir, real_dir};
use dsrm_data::{coat, kuairand, kuairec, validate, Dataset};

#[test]
fn kuairec_item_categories_match_the_measured_facts() {
    let Some(dir) = real_dir("kuairec") else { return };
    let tags = kuairec::read_item_categories(&dir.join("item_categories.csv")).unwrap();
    assert_eq!(tags.len(), 10_728);
    let distinct: BTreeSet<i32> = tags.iter().flatten().copied().collect();
    assert_eq!(distinct, (0..=30).collect());
    let mut histogram = [0usize; 5];
    for t in &tags {
        histogram[t.len()] += 1;
    }
    assert_eq!(histogram, [0, 8_970, 1_562, 185, 11]);
    assert_eq!(tags[0], [8]);
    assert_eq!(tags[1], [27, 9]);
    assert_eq!(tags.iter().filter(|t| t.contains(&0)).count(), 24);
}

#[test]
fn kuairec_side_tables_and_caption_file_load_with_small_logs() {
    let Some(dir) = kuairec_dir(true) else { return };
    let data = kuairec::load(dir.path(), &kuairec::LoadOptions::default()).unwrap();
    assert_eq!(data.n_feature_users, 7_176);
    assert_eq!(data.item_tags.len(), 10_728);
    assert_eq!((data.small.len(), data.big.len()), (20, 42));
    let files = &data.provenance.files;
    let caption = files.iter().find(|f| f.path.ends_with("kuairec_caption_category.csv")).unwrap();
    // Four captions hold a bare `\r`; reading records at `\n` only gives one record per video.
    assert_eq!(caption.rows, 10_728);
    assert_eq!(caption.sha256, "08f6ec40059c5a7ecdcebf615d080d9cf8f59f9497f6d66e8d5ccabdc7cab2d9");
    let users = files.iter().find(|f| f.path.ends_with("user_features.csv")).unwrap();
    assert_eq!((users.rows, users.bytes), (7_176, 744_174));
    assert_eq!(users.sha256, "c03ce5c6e90c50407b45585bde983db3079492346f7fa676d860777abfd783f4");
    // The tiny logs differ from the official sizes: warned, not failed.
    assert!(data.provenance.warnings.iter().any(|w| w.contains("small_matrix.csv rows: found 20")));
    assert!(!data.provenance.warnings.iter().any(|w| w.contains("item_categories")));
}

#[test]
fn kuairand_pure_loads_with_the_one_day_sample_as_training_log() {
    let Some(dir) = real_dir("kuairand-pure") else { return };
    let data = kuairand::load(&dir, &kuairand::LoadOptions::default()).unwrap();
    assert_eq!(data.n_users, 27_285);
    assert_eq!(data.video_tags.len(), 7_583);
    assert_eq!(data.video_tags.iter().filter(|t| t.as_slice() == [-1]).count(), 96);
    let real: BTreeSet<i32> = data.video_tags.iter().flatten().copied().filter(|&t| t >= 0).collect();
    assert_eq!(real.len(), 46);
    assert!(real.iter().all(|t| (1..=68).contains(t)));
    let mut per_video = [0usize; 4];
    for t in data.video_tags.iter().filter(|t| t.as_slice() != [-1]) {
        per_video[t.len()] += 1;
    }
    assert_eq!(per_video, [0, 5_696, 1_759, 32]);

    let log = data.standard_train.as_ref().unwrap();
    assert_eq!(log.len(), 14_911);
    assert!(data.standard_test.is_none() && data.random.is_none() && data.ground_truth.is_none());
    assert!(log.is_rand.iter().all(|&r| r == 0));
    assert_eq!(log.duration_ms.iter().filter(|&&d| d == 0).count(), 263);
    assert!(log.time_ms.windows(2).all(|w| w[0] <= w[1]), "the sample is sorted by time_ms");
    let p = &data.provenance;
    assert!(p.warnings.iter().any(|w| w.contains("log_standard_2022-04-25_sample.csv")), "{:?}", p.warnings);
    let dup = |what: &str| p.duplicates.iter().find(|(k, _)| k.contains(what)).map(|(_, n)| *n);
    // `docs/data.md` §2.4: 247 exact duplicates and 256 rows repeating (user, video, time_ms).
    assert_eq!(dup("exact duplicate"), Some(247));
    assert_eq!(dup("repeating (user, video, time)"), Some(256));
    assert_eq!(dup("dropped"), Some(0));
    assert_eq!(p.duplicate_policy, "keep-all");
    assert_eq!(p.files.len(), 3);
}

#[test]
fn kuairand_duplicate_policies_drop_what_they_say() {
    let Some(dir) = real_dir("kuairand-pure") else { return };
    for (policy, rows) in [
        (dsrm_data::DuplicatePolicy::DropExact, 14_911 - 247),
        (dsrm_data::DuplicatePolicy::CollapseUserVideoTime, 14_911 - 256),
    ] {
        let opts = kuairand::LoadOptions { duplicate_policy: policy, ..Default::default() };
        let data = kuairand::load(&dir, &opts).unwrap();
        assert_eq!(data.standard_train.unwrap().len(), rows, "{policy:?}");
    }
}

#[test]
fn coat_loads_with_the_measured_counts() {
    let Some(dir) = real_dir("coat") else { return };
    let coat = coat::load(&dir).unwrap();
    assert_eq!((coat.n_users, coat.n_items), (290, 300));
    let rated = |m: &[u8]| m.iter().filter(|&&r| r > 0).count();
    assert_eq!((rated(&coat.train), rated(&coat.test)), (6_960, 4_640));
    for (m, per_user) in [(&coat.train, 24), (&coat.test, 16)] {
        assert!(m.chunks(300).all(|row| row.iter().filter(|&&r| r > 0).count() == per_user));
    }
    let mut dist = [0usize; 6];
    coat.train.iter().for_each(|&r| dist[r as usize] += 1);
    assert_eq!(dist[1..], [1_901, 1_437, 1_717, 1_275, 630]);
    let both = coat.train.iter().zip(&coat.test).filter(|(&a, &b)| a > 0 && b > 0).count();
    assert_eq!(both, 366);
    assert!(coat.propensities.iter().all(|&p| p > 0.0 && p <= 1.0));

    let sizes = |g: &[(String, Vec<String>)]| g.iter().map(|(n, v)| (n.clone(), v.len())).collect::<Vec<_>>();
    let s = |n: &str, k| (n.to_string(), k);
    assert_eq!(
        sizes(&coat.user_feature_groups),
        [s("gender", 2), s("age", 6), s("location", 3), s("fashioninterest", 3)]
    );
    assert_eq!(
        sizes(&coat.item_feature_groups),
        [s("gender", 2), s("jackettype", 16), s("color", 13), s("onfrontpage", 2)]
    );
    assert_eq!(coat.user_features.len(), 290);
    assert_eq!(coat.item_features.len(), 300);
    assert!(coat.user_features.iter().chain(&coat.item_features).all(|codes| codes.len() == 4));
    // user 0: "0 1 1 0 0 0 0 0 0 0 1 0 0 1" = women, 20-30, urban, very.
    assert_eq!(coat.user_features[0], [1, 0, 2, 2]);
    assert_eq!(coat.provenance.files.len(), 7);
    assert!(coat.provenance.warnings.is_empty(), "{:?}", coat.provenance.warnings);
}

#[test]
fn the_real_directories_validate_cleanly() {
    for (dataset, sub) in [(Dataset::KuaiRandPure, "kuairand-pure"), (Dataset::Coat, "coat")] {
        let Some(dir) = real_dir(sub) else { return };
        let report = validate(dataset, &dir);
        assert!(report.is_ok(), "{report}");
        assert!(report.to_string().contains(": OK"), "{report}");
    }
    // The real KuaiRec directory lacks the matrices: exactly those two are reported, by name.
    let Some(dir) = real_dir("kuairec") else { return };
    let report = validate(Dataset::KuaiRec, &dir);
    assert_eq!(report.problems.len(), 2, "{report}");
    assert!(report.problems[0].contains("missing file small_matrix.csv"), "{report}");
    assert!(report.problems[1].contains("missing file big_matrix.csv"), "{report}");
    assert!(report.counts.iter().any(|(k, n)| k == "kuairec_caption_category.csv records" && *n == 10_728));
}
