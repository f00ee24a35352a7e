//! KuaiRec interaction logs written in the exact official format: loading, the quirks the real release has
//! (empty time fields, non-finite ratios at zero duration, duplicates), and the duplicate policies.

mod common;

use common::{assert_mentions, kuairec_dir, log_line, small_matrix, write, LOG_HEADER};
use dsrm_data::{kuairec, validate, Dataset, DuplicatePolicy};

#[test]
fn valid_logs_load_column_by_column() {
    let Some(dir) = kuairec_dir(false) else { return };
    let data = kuairec::load(dir.path(), &kuairec::LoadOptions::default()).unwrap();
    let s = &data.small;
    assert_eq!(s.len(), 20);
    assert_eq!((s.user_id[7], s.video_id[7]), (1, 2));
    assert_eq!((s.play_duration[7], s.video_duration[7]), (1_074, 10_868));
    assert_eq!(s.date[0], 20200705);
    assert!((s.timestamp[0] - 1_593_878_903.438).abs() < 1e-6);
    assert!((s.watch_ratio[7] - 1_074.0 / 10_868.0).abs() < 1e-6);
    assert!(data.provenance.synthetic.is_none());
    assert_eq!(data.provenance.files.len(), 4);
    // Nothing odd in these logs: the only warnings are the official-count mismatches.
    assert!(
        data.provenance.warnings.iter().all(|w| w.contains("the official release has")),
        "{:?}",
        data.provenance.warnings
    );
}

#[test]
fn official_layout_crlf_and_missing_final_newline_are_accepted() {
    let Some(dir) = kuairec_dir(false) else { return };
    let nested = dir.path().join("KuaiRec 2.0/data");
    std::fs::create_dir_all(&nested).unwrap();
    for name in ["small_matrix.csv", "big_matrix.csv", "item_categories.csv", "user_features.csv"] {
        std::fs::rename(dir.path().join(name), nested.join(name)).unwrap();
    }
    let crlf = small_matrix(2, 3).replace('\n', "\r\n");
    write(&nested, "small_matrix.csv", crlf.trim_end());
    let opts = kuairec::LoadOptions { check_official_counts: false, ..Default::default() };
    let data = kuairec::load(dir.path(), &opts).unwrap();
    assert_eq!(data.small.len(), 6);
    assert!(data.small.watch_ratio.iter().all(|r| r.is_finite()));
    assert!(data.provenance.warnings.is_empty(), "{:?}", data.provenance.warnings);
}

#[test]
fn empty_time_fields_and_zero_durations_are_the_releases_handled_cases() {
    let Some(dir) = kuairec_dir(false) else { return };
    let mut text = small_matrix(2, 2);
    text.push_str("1,3,500,0,2020-07-05 00:08:23.438,20200705.0,1593878903.438,inf\n");
    text.push_str("1,4,0,0,,,,\n");
    text.push_str("1,5,0,0,2020-07-05 00:08:23.438,20200705,1593878903.438,nan\n");
    write(dir.path(), "small_matrix.csv", &text);
    let data = kuairec::load(dir.path(), &kuairec::LoadOptions::default()).unwrap();
    let s = &data.small;
    assert_eq!(s.len(), 7);
    assert_eq!(s.watch_ratio[4], f64::INFINITY);
    assert_eq!(s.date[4], 20200705);
    assert_eq!(s.date[5], 0);
    assert!(s.timestamp[5].is_nan() && s.watch_ratio[5].is_nan() && s.watch_ratio[6].is_nan());
    let warnings = data.provenance.warnings.join("\n");
    assert_mentions(&warnings, &["small_matrix.csv: 1 rows with an empty time, date or timestamp", "line 7"]);
}

#[test]
fn inconsistent_time_fields_and_ratios_are_warnings_not_errors() {
    let Some(dir) = kuairec_dir(false) else { return };
    let mut text = small_matrix(1, 1);
    // time one hour off timestamp; date of another day; ratio not play/duration.
    text.push_str("0,1,1000,2000,2020-07-05 01:08:23.438,20200705,1593878903.438,0.5\n");
    text.push_str("0,2,1000,2000,2020-07-05 00:08:23.438,20200706,1593878903.438,0.5\n");
    text.push_str("0,3,1000,2000,2020-07-05 00:08:23.438,20200705,1593878903.438,0.7\n");
    write(dir.path(), "big_matrix.csv", &text);
    let data = kuairec::load(dir.path(), &kuairec::LoadOptions::default()).unwrap();
    assert_eq!(data.big.len(), 4);
    let warnings = data.provenance.warnings.join("\n");
    assert_mentions(
        &warnings,
        &[
            "big_matrix.csv: 1 rows whose time is not timestamp in Beijing time (UTC+8) to the second (e.g. line 3",
            "big_matrix.csv: 1 rows whose date is not the date of time (e.g. line 4",
            "big_matrix.csv: 1 rows whose watch_ratio differs from play_duration / video_duration",
            "line 5: 0.7 vs 1000/2000",
        ],
    );
}

fn with_duplicates() -> String {
    let a = log_line(0, 1, 100, 200, 1_593_878_903_438);
    let b = log_line(0, 1, 150, 200, 1_593_878_903_438); // same (user, video, time), other values
    let c = log_line(0, 1, 100, 200, 1_593_878_999_000); // same pair, other time
    format!("{LOG_HEADER}\n{a}\n{a}\n{b}\n{c}\n{a}\n{b}\n")
}

#[test]
fn duplicate_policies_count_and_drop_per_file() {
    let Some(dir) = kuairec_dir(false) else { return };
    write(dir.path(), "big_matrix.csv", &with_duplicates());
    for (policy, rows, plays) in [
        (DuplicatePolicy::KeepAll, 6, vec![100, 100, 150, 100, 100, 150]),
        (DuplicatePolicy::DropExact, 3, vec![100, 150, 100]),
        (DuplicatePolicy::CollapseUserVideoTime, 2, vec![100, 100]),
    ] {
        let opts = kuairec::LoadOptions { duplicate_policy: policy, check_official_counts: false };
        let data = kuairec::load(dir.path(), &opts).unwrap();
        assert_eq!(data.big.len(), rows, "{policy:?}");
        assert_eq!(data.big.play_duration, plays, "{policy:?}");
        assert_eq!(data.provenance.duplicate_policy, policy.name());
        let d = &data.provenance.duplicates;
        let get = |k: &str| d.iter().find(|(w, _)| w == k).map(|(_, n)| *n);
        assert_eq!(get("big_matrix.csv exact duplicate rows"), Some(3));
        assert_eq!(get("big_matrix.csv rows repeating (user, video, time)"), Some(4));
        assert_eq!(get("big_matrix.csv rows dropped by the duplicate policy"), Some(6 - rows as u64));
        assert_eq!(get("small_matrix.csv exact duplicate rows"), Some(0));
    }
}

#[test]
fn repeated_pairs_in_the_small_matrix_are_warned() {
    let Some(dir) = kuairec_dir(false) else { return };
    write(dir.path(), "small_matrix.csv", &with_duplicates());
    let data = kuairec::load(dir.path(), &kuairec::LoadOptions::default()).unwrap();
    assert!(data.provenance.warnings.iter().any(|w| w.contains("5 rows repeat an earlier (user, video) pair")));
}

#[test]
fn synthetic_marker_is_recorded() {
    let Some(dir) = kuairec_dir(false) else { return };
    let marker = r#"{"generator":"dsrm synth","generator_version":"0.1.0","seed":7,"size":"tiny","settings":{"a":1}}"#;
    write(dir.path(), "synthetic.json", marker);
    let data = kuairec::load(dir.path(), &kuairec::LoadOptions::default()).unwrap();
    let info = data.provenance.synthetic.unwrap();
    assert_eq!((info.seed, info.size.as_str()), (7, "tiny"));
    assert!(data.provenance.files.iter().any(|f| f.path.ends_with("synthetic.json")));
    let report = validate(Dataset::KuaiRec, dir.path());
    assert!(report.is_ok(), "{report}");
    assert!(report.to_string().contains("SYNTHETIC data: dsrm synth 0.1.0 seed 7"), "{report}");

    write(dir.path(), "synthetic.json", "{\"generator\": 3}");
    let msg = kuairec::load(dir.path(), &kuairec::LoadOptions::default()).unwrap_err().to_string();
    assert_mentions(&msg, &["synthetic.json:1:", "expected a JSON object with generator"]);
}

#[test]
fn validation_reports_every_bad_row_and_caps_each_file() {
    let Some(dir) = kuairec_dir(false) else { return };
    let mut text = small_matrix(1, 1);
    for i in 0..60 {
        text.push_str(&format!("0,{i},1x,100,,,,\n"));
    }
    text.push_str("0,1,100,100,,,,nan\n");
    write(dir.path(), "big_matrix.csv", &text);
    write(dir.path(), "small_matrix.csv", &format!("{LOG_HEADER}\n0,99999,1,1,,,,1\n"));
    let report = validate(Dataset::KuaiRec, dir.path());
    assert_eq!(report.problems.len(), 1 + 50 + 1, "{report}");
    assert_mentions(&report.problems[0], &["small_matrix.csv:2: column video_id", "0..=10727"]);
    assert_mentions(&report.problems[1], &["big_matrix.csv:3: column play_duration: expected an integer"]);
    assert_mentions(report.problems.last().unwrap(), &["... and 11 more problems in", "big_matrix.csv"]);
    // Good rows are still counted.
    assert!(report.counts.contains(&("big_matrix.csv rows".to_string(), 62)), "{report}");
    assert!(report.to_string().contains("52 PROBLEM(S)"));
}
