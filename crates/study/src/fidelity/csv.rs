//! The generator's truth files (`truth/user_preferences.csv`, `truth/item_truth.csv`): a key column and the
//! selected numeric columns, with errors that name the file, line and column.

use anyhow::Result;
use std::collections::HashMap;
use std::path::Path;

/// `key column -> selected columns` of a truth CSV (the DSRM stage's reader, which also builds the clean target).
pub fn read_truth(path: &Path, key: &str, select: impl Fn(&str) -> bool) -> Result<HashMap<u32, Vec<f64>>> {
    Ok(dsrm_denoise::stage::clean::read_table(path, key, select)?.rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_keep_their_commas_and_bad_numbers_name_line_and_column() {
        assert_eq!(dsrm_denoise::stage::clean::split_quoted("1,\"[2, 3]\",4"), vec!["1", "\"[2, 3]\"", "4"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "id,tags,x\n1,\"[2, 3]\",0.5\n2,\"[]\",oops\n").unwrap();
        let err = format!("{:#}", read_truth(&path, "id", |h| h == "x").unwrap_err());
        assert!(err.ends_with("t.csv:3:3: expected a number"), "{err}");
        std::fs::write(&path, "id,tags,x\n1,\"[2, 3]\",0.5\n").unwrap();
        assert_eq!(read_truth(&path, "id", |h| h == "x").unwrap()[&1], vec![0.5]);
    }
}
