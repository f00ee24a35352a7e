//! The generator's truth files (`truth/user_preferences.csv`, `truth/item_truth.csv`): a key column and the
//! selected numeric columns, with errors that name the file, line and column.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;

/// `key column -> selected columns` of a truth CSV.
pub fn read_truth(path: &Path, key: &str, select: impl Fn(&str) -> bool) -> Result<HashMap<u32, Vec<f64>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("empty truth file")?.split(',').collect();
    let key_col =
        header.iter().position(|h| *h == key).with_context(|| format!("{}: no {key} column", path.display()))?;
    let cols: Vec<usize> = (0..header.len()).filter(|&c| select(header[c])).collect();
    let mut out = HashMap::new();
    for (i, line) in lines.enumerate() {
        let fields = split_quoted(line);
        let at = |c: usize| fields.get(c).copied();
        let bad = |c: usize| anyhow::anyhow!("{}:{}:{}: expected a number", path.display(), i + 2, c + 1);
        let id: u32 = at(key_col).and_then(|f| f.parse().ok()).ok_or_else(|| bad(key_col))?;
        let values = cols
            .iter()
            .map(|&c| at(c).and_then(|f| f.parse::<f64>().ok()).ok_or_else(|| bad(c)))
            .collect::<Result<Vec<_>>>()?;
        out.insert(id, values);
    }
    Ok(out)
}

/// Splits a CSV line on commas outside double quotes (the truth files quote tag lists such as "[1, 2]").
fn split_quoted(line: &str) -> Vec<&str> {
    let (mut fields, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                fields.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&line[start..]);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_keep_their_commas_and_bad_numbers_name_line_and_column() {
        assert_eq!(split_quoted("1,\"[2, 3]\",4"), vec!["1", "\"[2, 3]\"", "4"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "id,tags,x\n1,\"[2, 3]\",0.5\n2,\"[]\",oops\n").unwrap();
        let err = format!("{:#}", read_truth(&path, "id", |h| h == "x").unwrap_err());
        assert!(err.ends_with("t.csv:3:3: expected a number"), "{err}");
        std::fs::write(&path, "id,tags,x\n1,\"[2, 3]\",0.5\n").unwrap();
        assert_eq!(read_truth(&path, "id", |h| h == "x").unwrap()[&1], vec![0.5]);
    }
}
