//! Broken copies of valid files: every malformed input must give an error that names the file, the 1-based
//! line, the column and the expected form (and never a panic).

mod common;

use std::path::Path;

use common::{assert_mentions, kuairec_dir, real_dir, replace_line, small_matrix, write, write_bytes, LOG_HEADER};
use dsrm_data::{coat, kuairand, kuairec, validate, Dataset};

fn kuairec_error(dir: &Path) -> String {
    kuairec::load(dir, &kuairec::LoadOptions::default()).unwrap_err().to_string()
}

// ---------------------------------------------------------------- KuaiRec

#[test]
fn kuairec_missing_file_is_named_with_the_places_searched() {
    let Some(dir) = kuairec_dir(false) else { return };
    std::fs::remove_file(dir.path().join("big_matrix.csv")).unwrap();
    let msg = kuairec_error(dir.path());
    assert_mentions(&msg, &["missing file big_matrix.csv", "KuaiRec 2.0/data/", "/data/"]);
}

#[test]
fn kuairec_wrong_header_or_column_order_shows_the_expected_header() {
    let Some(dir) = kuairec_dir(false) else { return };
    let swapped = "user_id,video_id,play_duration,video_duration,date,time,timestamp,watch_ratio";
    replace_line(dir.path(), "big_matrix.csv", 1, swapped);
    let msg = kuairec_error(dir.path());
    assert_mentions(&msg, &["big_matrix.csv:1: column time", LOG_HEADER, "in this order"]);
}

#[test]
fn kuairec_wrong_field_count() {
    let Some(dir) = kuairec_dir(false) else { return };
    replace_line(dir.path(), "small_matrix.csv", 4, "0,2,1000,10867,2020-07-05 00:08:23.438,20200705,1593878903.438");
    let msg = kuairec_error(dir.path());
    assert_mentions(&msg, &["small_matrix.csv:4: column watch_ratio", "expected 8 fields", "found \"7 field(s)"]);
}

#[test]
fn kuairec_bad_numbers_name_their_column() {
    let cases = [
        ("0,1,12x,10867,2020-07-05 00:08:23.438,20200705,1593878903.438,1", "play_duration", "an integer"),
        ("0,1,1,10867,2020-07-05 00:08:23.438,20200705,1593878903.438,abc", "watch_ratio", "a number"),
        (
            "0,1,1,10867,2020-07-05 00:08:23.438,20200705,1593878903.438,nan",
            "watch_ratio",
            "a finite number (inf, nan or empty only where video_duration is 0)",
        ),
        ("0,1,1,10867,2020-07-05 00:08:23.438,20200705,1593878903.438,", "watch_ratio", "a finite number"),
        ("0,1,1,10867,2020-07-05 00:08:23.438,20200705,inf,1", "timestamp", "a finite number"),
        ("0,1,1,10867,2020-07-05 00:08:23.438,2020-07-05,1593878903.438,1", "date", "a date YYYYMMDD"),
        ("0,1,1,10867,2020-07-05T00:08:23,20200705,1593878903.438,1", "time", "`YYYY-MM-DD HH:MM:SS[.fff]`"),
        (
            "7176,1,1,10867,2020-07-05 00:08:23.438,20200705,1593878903.438,1",
            "user_id",
            "an integer id in 0..=7175 (7176 users in user_features.csv)",
        ),
        ("-1,1,1,10867,2020-07-05 00:08:23.438,20200705,1593878903.438,1", "user_id", "an integer id in 0..=7175"),
        ("0,10728,1,10867,2020-07-05 00:08:23.438,20200705,1593878903.438,1", "video_id", "an integer id in 0..=10727"),
        ("0,99999999999999999999999,1,1,,,,1", "video_id", "an integer id in 0..=10727"),
    ];
    for (row, column, expected) in cases {
        let Some(dir) = kuairec_dir(false) else { return };
        replace_line(dir.path(), "big_matrix.csv", 5, row);
        let msg = kuairec_error(dir.path());
        assert_mentions(&msg, &["big_matrix.csv:5: column ", column, expected]);
        assert!(msg.contains(&format!("column {column}:")), "{msg}");
    }
}

#[test]
fn kuairec_empty_file_header_only_and_truncated_last_line() {
    let Some(dir) = kuairec_dir(false) else { return };
    write(dir.path(), "small_matrix.csv", "");
    assert_mentions(&kuairec_error(dir.path()), &["small_matrix.csv:1: column header", LOG_HEADER, "an empty file"]);

    write(dir.path(), "small_matrix.csv", &format!("{LOG_HEADER}\n"));
    assert_mentions(&kuairec_error(dir.path()), &["small_matrix.csv:2: column user_id", "at least one data row"]);

    let mut text = small_matrix(2, 2);
    text.push_str("1,1,1074,108");
    write(dir.path(), "small_matrix.csv", &text);
    assert_mentions(&kuairec_error(dir.path()), &["small_matrix.csv:6: column time", "expected 8 fields", "truncated"]);
}

#[test]
fn kuairec_non_utf8_bytes_name_line_and_column() {
    let Some(dir) = kuairec_dir(false) else { return };
    let mut bytes = small_matrix(2, 2).into_bytes();
    bytes.extend_from_slice(b"1,1,1074,10868,2020-07-05 00:08:23\xff438,20200705,1593878903.438,1\n");
    write_bytes(dir.path(), "small_matrix.csv", &bytes);
    assert_mentions(&kuairec_error(dir.path()), &["small_matrix.csv:6: column time: expected UTF-8 text", "0xFF"]);
}

#[test]
fn kuairec_item_categories_are_parsed_as_data() {
    for (row, expected) in [
        ("5,[]", "a bracketed list"),
        ("5,\"[1, x]\"", "a bracketed list"),
        ("5,8", "a bracketed list"),
        ("5,\"[1, 2\"", "a bracketed list"),
        ("5,\"__import__('os').system('x')\"", "a bracketed list"),
    ] {
        let Some(dir) = kuairec_dir(false) else { return };
        replace_line(dir.path(), "item_categories.csv", 7, row);
        let msg = kuairec_error(dir.path());
        assert_mentions(&msg, &["item_categories.csv:7: column feat", expected]);
        let direct = kuairec::read_item_categories(&dir.path().join("item_categories.csv")).unwrap_err();
        assert_mentions(&direct.to_string(), &["item_categories.csv:7: column feat"]);
    }
}

#[test]
fn kuairec_item_category_ids_must_be_dense() {
    let Some(dir) = kuairec_dir(false) else { return };
    replace_line(dir.path(), "item_categories.csv", 7, "4,[8]");
    let msg = kuairec_error(dir.path());
    assert_mentions(
        &msg,
        &["item_categories.csv:7: column video_id", "each id of 0..=10727 exactly once", "already on line 6"],
    );

    let Some(dir) = kuairec_dir(false) else { return };
    replace_line(dir.path(), "item_categories.csv", 7, "20000,[8]");
    let msg = kuairec_error(dir.path());
    assert_mentions(&msg, &["item_categories.csv:7: column video_id", "exactly once", "20000"]);
}

#[test]
fn kuairec_user_features_are_checked() {
    let Some(dir) = kuairec_dir(false) else { return };
    let path = dir.path().join("user_features.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let line3: Vec<&str> = text.lines().nth(2).unwrap().split(',').collect();
    let mut bad = line3.clone();
    bad[5] = "many"; // follow_user_num
    replace_line(dir.path(), "user_features.csv", 3, &bad.join(","));
    let msg = kuairec_error(dir.path());
    assert_mentions(&msg, &["user_features.csv:3: column follow_user_num: expected an integer"]);
}

#[test]
fn kuairec_caption_file_is_checked_when_present() {
    let Some(dir) = kuairec_dir(true) else { return };
    let path = dir.path().join("kuairec_caption_category.csv");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"17,UNKNOWN,dup,[],8,x,-124,UNKNOWN,-124,UNKNOWN\n");
    std::fs::write(&path, &bytes).unwrap();
    let msg = kuairec_error(dir.path());
    assert_mentions(&msg, &["kuairec_caption_category.csv:10730: column video_id", "already on line 19"]);

    let Some(dir) = kuairec_dir(true) else { return };
    replace_line(dir.path(), "kuairec_caption_category.csv", 3, "1,UNKNOWN,,[],first,x,-124,UNKNOWN,-124,UNKNOWN");
    let msg = kuairec_error(dir.path());
    assert_mentions(&msg, &["kuairec_caption_category.csv:3: column first_level_category_id", "an integer"]);
}

#[test]
fn kuairec_item_daily_features_header_is_checked_when_present() {
    let Some(dir) = kuairec_dir(false) else { return };
    write(dir.path(), "item_daily_features.csv", "video_id,date\n1,20200705\n");
    let msg = kuairec_error(dir.path());
    assert_mentions(&msg, &["item_daily_features.csv:1: column author_id", "video_id,date,author_id,video_type"]);
}

// ---------------------------------------------------------------- KuaiRand-Pure

fn kuairand_dir() -> Option<tempfile::TempDir> {
    let real = real_dir("kuairand-pure")?;
    let dir = tempfile::tempdir().unwrap();
    for name in ["user_features_pure.csv", "video_features_basic_pure.csv"] {
        std::fs::copy(real.join(name), dir.path().join(name)).unwrap();
    }
    let sample = std::fs::read_to_string(real.join("log_standard_2022-04-25_sample.csv")).unwrap();
    let head: Vec<&str> = sample.lines().take(30).collect();
    write(dir.path(), "log_random_4_22_to_5_08_pure.csv", &(head.join("\n") + "\n"));
    Some(dir)
}

fn kuairand_error(dir: &Path) -> String {
    kuairand::load(dir, &kuairand::LoadOptions::default()).unwrap_err().to_string()
}

#[test]
fn kuairand_small_valid_copy_loads() {
    let Some(dir) = kuairand_dir() else { return };
    let data = kuairand::load(dir.path(), &kuairand::LoadOptions::default()).unwrap();
    assert_eq!(data.random.as_ref().unwrap().len(), 29);
    assert!(data.standard_train.is_none());
    assert!(data.provenance.warnings.iter().any(|w| w.contains("log_random_4_22_to_5_08_pure.csv rows: found 29")));
}

#[test]
fn kuairand_needs_a_log() {
    let Some(dir) = kuairand_dir() else { return };
    std::fs::remove_file(dir.path().join("log_random_4_22_to_5_08_pure.csv")).unwrap();
    assert_mentions(&kuairand_error(dir.path()), &["missing file a log", "log_standard_4_08_to_4_21_pure.csv"]);
}

#[test]
fn kuairand_log_values_are_checked() {
    let good = "712,5239,20220425,0,1650812741436,1,0,0,0,0,0,1,61802,49866,0,0,0,0,1";
    let with = |column: usize, value: &str| {
        let mut fields: Vec<&str> = good.split(',').collect();
        fields[column] = value;
        fields.join(",")
    };
    for (row, column, expected) in [
        (with(5, "2"), "is_click", "0 or 1"),
        (with(0, "27285"), "user_id", "0..=27284 (27285 users in user_features_pure.csv)"),
        (with(1, "7583"), "video_id", "0..=7582"),
        (with(4, "1.6e12"), "time_ms", "an integer"),
        (with(18, "300"), "tab", "a tab code"),
        (good.replacen(",1", "", 1), "tab", "expected 19 fields"),
    ] {
        let Some(dir) = kuairand_dir() else { return };
        replace_line(dir.path(), "log_random_4_22_to_5_08_pure.csv", 9, &row);
        let msg = kuairand_error(dir.path());
        assert_mentions(&msg, &["log_random_4_22_to_5_08_pure.csv:9: column ", column, expected]);
    }
}

#[test]
fn kuairand_video_table_is_checked() {
    let Some(real) = real_dir("kuairand-pure") else { return };
    let text = std::fs::read_to_string(real.join("video_features_basic_pure.csv")).unwrap();
    let line4 = text.lines().nth(3).unwrap().to_string();
    for (from, to, column, expected) in
        [(",NORMAL,", ",,", "video_type", "a non-empty value"), ("0.0,", "zero,", "visible_status", "a finite number")]
    {
        let Some(dir) = kuairand_dir() else { return };
        replace_line(dir.path(), "video_features_basic_pure.csv", 4, &line4.replacen(from, to, 1));
        assert_mentions(&kuairand_error(dir.path()), &["video_features_basic_pure.csv:4: column ", column, expected]);
    }
    let Some(dir) = kuairand_dir() else { return };
    let (head, _tag) = line4.rsplit_once(',').unwrap();
    replace_line(dir.path(), "video_features_basic_pure.csv", 4, &format!("{head},\"1;2\""));
    assert_mentions(&kuairand_error(dir.path()), &["video_features_basic_pure.csv:4: column tag", "comma-separated"]);
}

#[test]
fn kuairand_ground_truth_must_be_complete_and_unique() {
    let Some(dir) = kuairand_dir() else { return };
    // A complete table over 27,285 x 7,583 cells is 1.6 GB of text: check the failure modes on a prefix.
    let gt = "MF_results_GT/kuairand_is_click.csv";
    write(dir.path(), gt, "user_id,item_id,value\n0,0,0.5\n0,1,0.25\n0,0,0.5\n");
    assert_mentions(
        &kuairand_error(dir.path()),
        &["kuairand_is_click.csv:4: column item_id", "each (user_id, item_id) cell once", "cell (0, 0) again"],
    );
    write(dir.path(), gt, "user_id,item_id,value\n0,0,0.5\n0,1,NaN\n");
    assert_mentions(&kuairand_error(dir.path()), &["kuairand_is_click.csv:3: column value: expected a finite number"]);
    write(dir.path(), gt, "user_id,item_id,value\n0,0,0.5\n");
    assert_mentions(
        &kuairand_error(dir.path()),
        &[
            "kuairand_is_click.csv:3: column user_id,item_id",
            "one row per cell of 27285 users x 7583 videos",
            "the first (0, 1)",
        ],
    );
}

// ---------------------------------------------------------------- Coat

fn coat_dir() -> Option<tempfile::TempDir> {
    let real = real_dir("coat")?;
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "train.ascii",
        "test.ascii",
        "propensities.ascii",
        "user_item_features/user_features.ascii",
        "user_item_features/item_features.ascii",
        "user_item_features/user_features_map.txt",
        "user_item_features/item_features_map.txt",
    ] {
        let to = dir.path().join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(real.join(name), to).unwrap();
    }
    Some(dir)
}

/// Replaces the `column`-th (1-based) value on `line` of a whitespace matrix.
fn set_value(dir: &Path, name: &str, line: usize, column: usize, value: &str) {
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    let old = text.split('\n').nth(line - 1).unwrap();
    let mut fields: Vec<&str> = old.split_whitespace().collect();
    fields[column - 1] = value;
    replace_line(dir, name, line, &fields.join(" "));
}

#[test]
fn coat_bad_values_name_line_and_column_position() {
    for (name, value, expected) in [
        ("train.ascii", "6", "a rating 0..=5"),
        ("test.ascii", "-1", "a rating 0..=5"),
        ("propensities.ascii", "0", "a finite probability in (0, 1]"),
        ("propensities.ascii", "nan", "a finite probability in (0, 1]"),
        ("propensities.ascii", "1.5e+00", "a finite probability in (0, 1]"),
    ] {
        let Some(dir) = coat_dir() else { return };
        set_value(dir.path(), name, 17, 42, value);
        let msg = coat::load(dir.path()).unwrap_err().to_string();
        assert_mentions(&msg, &[&format!("{name}:17: column 42: expected {expected}")]);
    }
}

#[test]
fn coat_shapes_must_agree() {
    let Some(dir) = coat_dir() else { return };
    let text = std::fs::read_to_string(dir.path().join("test.ascii")).unwrap();
    let short: Vec<&str> = text.lines().take(200).collect();
    write(dir.path(), "test.ascii", &short.join("\n"));
    assert_mentions(
        &coat::load(dir.path()).unwrap_err().to_string(),
        &["test.ascii:201:", "290 rows x 300 values, like train.ascii"],
    );

    let Some(dir) = coat_dir() else { return };
    let text = std::fs::read_to_string(dir.path().join("train.ascii")).unwrap();
    let line10: Vec<&str> = text.lines().nth(9).unwrap().split_whitespace().collect();
    replace_line(dir.path(), "train.ascii", 10, &line10[..299].join(" "));
    assert_mentions(
        &coat::load(dir.path()).unwrap_err().to_string(),
        &["train.ascii:10: column 300: expected 300 whitespace-separated values"],
    );
}

#[test]
fn coat_one_hot_groups_need_exactly_one_one() {
    let Some(dir) = coat_dir() else { return };
    // Item 5 gets a second jacket type.
    let name = "user_item_features/item_features.ascii";
    let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
    let row: Vec<&str> = text.lines().nth(4).unwrap().split_whitespace().collect();
    let free = (3..=18).find(|&c| row[c - 1] == "0").unwrap();
    set_value(dir.path(), name, 5, free, "1");
    let msg = coat::load(dir.path()).unwrap_err().to_string();
    assert_mentions(
        &msg,
        &[
            "item_features.ascii:5: column 3-18 (group jackettype)",
            "exactly one 1 among the 16 columns",
            "found \"2 ones\"",
        ],
    );

    let Some(dir) = coat_dir() else { return };
    set_value(dir.path(), "user_item_features/user_features.ascii", 3, 1, "2");
    let msg = coat::load(dir.path()).unwrap_err().to_string();
    assert_mentions(&msg, &["user_features.ascii:3: column 1: expected 0 or 1"]);

    let Some(dir) = coat_dir() else { return };
    write(dir.path(), "user_item_features/user_features_map.txt", "gender:men\ngender:women");
    let msg = coat::load(dir.path()).unwrap_err().to_string();
    assert_mentions(&msg, &["user_features.ascii:1: column 3: expected 2 values per row, one per line of user_item_features/user_features_map.txt"]);
}

#[test]
fn coat_missing_and_empty_files() {
    let Some(dir) = coat_dir() else { return };
    std::fs::remove_file(dir.path().join("propensities.ascii")).unwrap();
    assert_mentions(&coat::load(dir.path()).unwrap_err().to_string(), &["missing file propensities.ascii", "coat/"]);
    write(dir.path(), "propensities.ascii", "");
    assert_mentions(
        &coat::load(dir.path()).unwrap_err().to_string(),
        &["propensities.ascii:1: column 1: expected at least one row"],
    );
}

#[test]
fn coat_validation_collects_problems_across_files() {
    let Some(dir) = coat_dir() else { return };
    set_value(dir.path(), "train.ascii", 2, 1, "9");
    set_value(dir.path(), "train.ascii", 3, 1, "9");
    set_value(dir.path(), "propensities.ascii", 4, 1, "inf");
    let report = validate(Dataset::Coat, dir.path());
    assert_eq!(report.problems.len(), 3, "{report}");
    assert_mentions(&report.problems[2], &["propensities.ascii:4: column 1"]);
}
