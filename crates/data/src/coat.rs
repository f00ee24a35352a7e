//! Coat (Schnabel et al. 2016) from a directory, in its official files (`docs/data.md` §3).
//!
//! Found flat in the directory or in `coat/` below it:
//!
//! * `train.ascii`, `test.ascii`: users x items whitespace-separated ratings, 0 = unobserved, else 1..5;
//! * `propensities.ascii`: the same shape, finite floats in (0, 1] (scientific notation);
//! * `user_item_features/user_features.ascii`, `item_features.ascii`: binary one-hot rows, decoded per group
//!   with `user_features_map.txt` / `item_features_map.txt` (`group:value` per column, no final newline);
//!   every row must have exactly one 1 in each group.
//!
//! All matrices must agree in shape; a shape other than the official 290 x 300 is a warning.

use std::path::{Path, PathBuf};

use crate::ascii_matrix::{read_feature_map, read_matrix, AsciiMatrix};
use crate::findings::{Findings, Mode};
use crate::locate::SearchPath;
use crate::{Coat, DataError, DuplicatePolicy, Result};

/// File name of the self-selected (MNAR) ratings.
pub const TRAIN: &str = "train.ascii";
/// File name of the uniformly sampled (MCAR) ratings.
pub const TEST: &str = "test.ascii";
/// File name of the learned propensities.
pub const PROPENSITIES: &str = "propensities.ascii";
/// User one-hot features.
pub const USER_FEATURES: &str = "user_item_features/user_features.ascii";
/// Item one-hot features.
pub const ITEM_FEATURES: &str = "user_item_features/item_features.ascii";
/// Names of the user feature columns.
pub const USER_FEATURES_MAP: &str = "user_item_features/user_features_map.txt";
/// Names of the item feature columns.
pub const ITEM_FEATURES_MAP: &str = "user_item_features/item_features_map.txt";

/// Sub-folders searched after the directory itself.
pub const LAYOUTS: &[&str] = &["coat"];

/// Official shape: 290 users x 300 items.
pub const OFFICIAL_SHAPE: (u64, u64) = (290, 300);

/// Feature groups with their value names, in map-file order, e.g. `("gender", ["men", "women"])`.
pub type FeatureGroups = Vec<(String, Vec<String>)>;

/// Loads Coat from `dir`; the first problem found is the error.
pub fn load(dir: &Path) -> Result<Coat> {
    load_from(crate::source::disk(), dir)
}

/// [`load`] from any [`Source`](crate::source::Source) (files in memory, for fuzzing).
pub fn load_from(source: std::sync::Arc<dyn crate::source::Source>, dir: &Path) -> Result<Coat> {
    let mut findings = Findings::reading(source, Mode::FailFast, "coat", dir, DuplicatePolicy::KeepAll);
    let parts = scan(dir, &mut findings)?;
    match parts {
        Parts {
            train: Some(train),
            test: Some(test),
            propensities: Some(propensities),
            users: Some((user_features, user_feature_groups)),
            items: Some((item_features, item_feature_groups)),
        } => Ok(Coat {
            n_users: train.rows,
            n_items: train.cols,
            train: train.values,
            test: test.values,
            propensities: propensities.values,
            user_features,
            item_features,
            user_feature_groups,
            item_feature_groups,
            provenance: findings.provenance,
        }),
        _ => Err(DataError::Invalid { dir: dir.to_path_buf(), detail: "Coat could not be assembled".to_string() }),
    }
}

/// The pieces of Coat that could be read.
pub(crate) struct Parts {
    train: Option<AsciiMatrix<u8>>,
    test: Option<AsciiMatrix<u8>>,
    propensities: Option<AsciiMatrix<f64>>,
    users: Option<(Vec<Vec<u8>>, FeatureGroups)>,
    items: Option<(Vec<Vec<u8>>, FeatureGroups)>,
}

/// Reads every file of the data set into `findings` (shared by [`load`] and validation).
pub(crate) fn scan(dir: &Path, findings: &mut Findings) -> Result<Parts> {
    let search = SearchPath::new(findings.source.clone(), dir, LAYOUTS);
    let mut require = |name: &str, findings: &mut Findings| -> Result<Option<PathBuf>> {
        match search.require(name) {
            Ok(path) => Ok(Some(path)),
            Err(e) => findings.problem(e).map(|()| None),
        }
    };
    let train = match require(TRAIN, findings)? {
        Some(path) => read_matrix(&path, parse_rating, findings)?,
        None => None,
    };
    let shape = train.as_ref().map(|m| (m.rows, m.cols));
    let test = match require(TEST, findings)? {
        Some(path) => read_matrix(&path, parse_rating, findings)?.and_then_shape(&path, shape, TRAIN, findings)?,
        None => None,
    };
    let propensities = match require(PROPENSITIES, findings)? {
        Some(path) => read_matrix(&path, parse_propensity, findings)?.and_then_shape(&path, shape, TRAIN, findings)?,
        None => None,
    };
    if let Some((rows, cols)) = shape {
        findings.count("users".to_string(), rows as u64);
        findings.count("items".to_string(), cols as u64);
        let (users, items) = OFFICIAL_SHAPE;
        findings.provenance.check_official("train.ascii users (rows)", rows as u64, users);
        findings.provenance.check_official("train.ascii items (columns)", cols as u64, items);
    }
    for (name, matrix) in [(TRAIN, &train), (TEST, &test)] {
        if let Some(m) = matrix {
            count_ratings(name, m, findings);
        }
    }
    if let (Some(train), Some(test)) = (&train, &test) {
        let both = train.values.iter().zip(&test.values).filter(|(&a, &b)| a > 0 && b > 0).count();
        findings.count("(user, item) pairs rated in both train and test".to_string(), both as u64);
    }

    let users = read_features(
        &mut require,
        (USER_FEATURES, USER_FEATURES_MAP),
        shape.map(|(rows, _)| (rows, "users in train.ascii")),
        findings,
    )?;
    let items = read_features(
        &mut require,
        (ITEM_FEATURES, ITEM_FEATURES_MAP),
        shape.map(|(_, cols)| (cols, "items in train.ascii")),
        findings,
    )?;
    Ok(Parts { train, test, propensities, users, items })
}

fn parse_rating(text: &str) -> std::result::Result<u8, &'static str> {
    const FORM: &str = "a rating 0..=5 (0 = unobserved)";
    text.parse::<u8>().ok().filter(|&r| r <= 5).ok_or(FORM)
}

fn parse_propensity(text: &str) -> std::result::Result<f64, &'static str> {
    const FORM: &str = "a finite probability in (0, 1]";
    text.parse::<f64>().ok().filter(|p| p.is_finite() && *p > 0.0 && *p <= 1.0).ok_or(FORM)
}

fn parse_bit(text: &str) -> std::result::Result<u8, &'static str> {
    match text {
        "0" => Ok(0),
        "1" => Ok(1),
        _ => Err("0 or 1"),
    }
}

/// Checks a matrix against the shape of `train.ascii`.
trait ShapeCheck: Sized {
    fn and_then_shape(
        self,
        path: &Path,
        shape: Option<(usize, usize)>,
        like: &str,
        findings: &mut Findings,
    ) -> Result<Self>;
}

impl<T> ShapeCheck for Option<AsciiMatrix<T>> {
    fn and_then_shape(
        self,
        path: &Path,
        shape: Option<(usize, usize)>,
        like: &str,
        findings: &mut Findings,
    ) -> Result<Self> {
        match (self, shape) {
            (Some(m), Some((rows, cols))) if (m.rows, m.cols) != (rows, cols) => {
                let line = if m.rows != rows { m.rows.min(rows) as u64 + 1 } else { 1 };
                findings.problem(DataError::format(
                    path,
                    line,
                    if m.rows != rows { "1".to_string() } else { (m.cols.min(cols) + 1).to_string() },
                    format!("{rows} rows x {cols} values, like {like}"),
                    format!("{} rows x {} values", m.rows, m.cols),
                ))?;
                Ok(None)
            }
            (m, _) => Ok(m),
        }
    }
}

/// Counts ratings, their distribution and the per-user range for the report.
fn count_ratings(name: &str, m: &AsciiMatrix<u8>, findings: &mut Findings) {
    let rated = m.values.iter().filter(|&&r| r > 0).count() as u64;
    findings.count(format!("{name} ratings"), rated);
    for level in 1..=5u8 {
        let n = m.values.iter().filter(|&&r| r == level).count() as u64;
        findings.count(format!("{name} ratings of {level}"), n);
    }
    let per_user: Vec<u64> =
        m.values.chunks(m.cols.max(1)).map(|row| row.iter().filter(|&&r| r > 0).count() as u64).collect();
    findings.count(format!("{name} fewest ratings of a user"), per_user.iter().copied().min().unwrap_or(0));
    findings.count(format!("{name} most ratings of a user"), per_user.iter().copied().max().unwrap_or(0));
}

/// Reads a one-hot feature file with its map and decodes every row to one value index per group.
fn read_features(
    require: &mut impl FnMut(&str, &mut Findings) -> Result<Option<PathBuf>>,
    (matrix_name, map_name): (&str, &str),
    rows_expected: Option<(usize, &str)>,
    findings: &mut Findings,
) -> Result<Option<(Vec<Vec<u8>>, FeatureGroups)>> {
    let map = match require(map_name, findings)? {
        Some(path) => read_feature_map(&path, findings)?,
        None => None,
    };
    let Some(matrix_path) = require(matrix_name, findings)? else {
        return Ok(None);
    };
    let Some(matrix) = read_matrix(&matrix_path, parse_bit, findings)? else {
        return Ok(None);
    };
    let Some(map) = map else {
        return Ok(None);
    };
    if map.len() != matrix.cols {
        findings.problem(DataError::format(
            &matrix_path,
            1,
            (matrix.cols.min(map.len()) + 1).to_string(),
            format!("{} values per row, one per line of {map_name}", map.len()),
            format!("{} values", matrix.cols),
        ))?;
        return Ok(None);
    }
    if let Some((n, of)) = rows_expected {
        if matrix.rows != n {
            findings.problem(DataError::format(
                &matrix_path,
                matrix.rows.min(n) as u64 + 1,
                "1",
                format!("{n} rows, one per {of}"),
                format!("{} rows", matrix.rows),
            ))?;
            return Ok(None);
        }
    }

    // Groups in order of first appearance; each with its value names and columns.
    let mut groups: Vec<(String, Vec<String>, Vec<usize>)> = Vec::new();
    for (column, (group, value)) in map.iter().enumerate() {
        match groups.iter_mut().find(|(g, _, _)| g == group) {
            Some((_, values, columns)) => {
                values.push(value.clone());
                columns.push(column);
            }
            None => groups.push((group.clone(), vec![value.clone()], vec![column])),
        }
    }
    let mut decoded = Vec::with_capacity(matrix.rows);
    let mut usable = true;
    for (row_index, row) in matrix.values.chunks(matrix.cols.max(1)).enumerate() {
        let mut codes = Vec::with_capacity(groups.len());
        for (group, values, columns) in &groups {
            // Positions, within the group, of the columns holding a 1.
            let ones: Vec<usize> =
                columns.iter().enumerate().filter(|&(_, &c)| row.get(c) == Some(&1)).map(|(k, _)| k).collect();
            match ones.as_slice().first().map(|&k| u8::try_from(k)) {
                Some(Ok(code)) if ones.len() == 1 => codes.push(code),
                _ => {
                    let first = columns.first().map_or(0, |c| c + 1);
                    let last = columns.last().map_or(0, |c| c + 1);
                    findings.problem(DataError::format(
                        &matrix_path,
                        row_index as u64 + 1,
                        format!("{first}-{last} (group {group})"),
                        format!(
                            "exactly one 1 among the {} columns of group {group} ({})",
                            values.len(),
                            values.join(", ")
                        ),
                        format!("{} ones", ones.len()),
                    ))?;
                    usable = false;
                }
            }
        }
        decoded.push(codes);
    }
    if !usable {
        return Ok(None);
    }
    let names = groups.into_iter().map(|(group, values, _)| (group, values)).collect();
    Ok(Some((decoded, names)))
}
