//! The user feature table, shared in form by KuaiRec (`user_features.csv`) and KuaiRand-Pure
//! (`user_features_pure.csv`): 31 columns, `user_id` dense from 0. Only the number of users is kept (it fixes
//! the user id space); every cell is still checked so that a damaged table is caught before a model reads it.

use std::path::Path;

use crate::csv_table::{CsvTable, Kind, LineEnd};
use crate::dense_ids::DenseIds;
use crate::findings::Findings;
use crate::Result;

/// The official header, in order.
pub const USER_FEATURES_HEADER: &[&str] = &[
    "user_id",
    "user_active_degree",
    "is_lowactive_period",
    "is_live_streamer",
    "is_video_author",
    "follow_user_num",
    "follow_user_num_range",
    "fans_user_num",
    "fans_user_num_range",
    "friend_user_num",
    "friend_user_num_range",
    "register_days",
    "register_days_range",
    "onehot_feat0",
    "onehot_feat1",
    "onehot_feat2",
    "onehot_feat3",
    "onehot_feat4",
    "onehot_feat5",
    "onehot_feat6",
    "onehot_feat7",
    "onehot_feat8",
    "onehot_feat9",
    "onehot_feat10",
    "onehot_feat11",
    "onehot_feat12",
    "onehot_feat13",
    "onehot_feat14",
    "onehot_feat15",
    "onehot_feat16",
    "onehot_feat17",
];

/// Form of each column after `user_id`: the counters and flags are integers (KuaiRand writes `-124` for
/// unknown), the `*_range` and activity columns are labels, and the `onehot_feat*` codes may be empty
/// (missing) or written as floats (`1.0`).
fn kind(column: &str) -> Kind {
    if column.starts_with("onehot_feat") {
        Kind::OptNumber
    } else if column == "user_active_degree" || column.ends_with("_range") {
        Kind::Text
    } else {
        Kind::Integral
    }
}

/// Reads and checks a user feature table; returns the number of users, or `None` when the file could not be
/// read (validation mode).
pub(crate) fn read_user_count(path: &Path, findings: &mut Findings) -> Result<Option<usize>> {
    let Some(mut table) = CsvTable::open_reporting(path, USER_FEATURES_HEADER, LineEnd::NewlineOrCrlf, findings)?
    else {
        return Ok(None);
    };
    let kinds: Vec<Kind> = USER_FEATURES_HEADER.iter().map(|c| kind(c)).collect();
    let mut ids = DenseIds::new(path, "user_id");
    table.for_each_row(findings, |row| {
        let id = row.unsigned::<u64>(0, "a non-negative integer id")?;
        ids.push(id, row.line());
        for (i, &kind) in kinds.iter().enumerate().skip(1) {
            row.check(i, kind)?;
        }
        Ok(())
    })?;
    table.finish_into(findings)?;
    ids.check(findings).map(Some)
}
