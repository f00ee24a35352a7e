//! Reading Coat's whitespace-separated matrices (`*.ascii`) and its `group:value` map files.
//!
//! These files have no header, so errors name the 1-based line and the 1-based column position. Lines end at
//! `\n` with an optional `\r`; a missing final newline is fine (the map files have none).

use std::path::Path;

use crate::findings::Findings;
use crate::provenance::HashingReader;
use crate::{DataError, InputFile, Result};

/// A dense matrix read row by row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AsciiMatrix<T> {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    /// Row-major values.
    pub(crate) values: Vec<T>,
}

/// Reads the whole file (Coat's largest is 2 MB), hashing it, and records it in the provenance.
fn read_bytes(path: &Path, lines: impl Fn(&[u8]) -> u64, findings: &mut Findings) -> Result<Option<Vec<u8>>> {
    let file = match findings.source.open(path) {
        Ok(file) => file,
        Err(e) => return findings.problem(DataError::io(path, e)).map(|()| None),
    };
    let mut reader = HashingReader::new(file);
    let mut bytes = Vec::new();
    if let Err(e) = std::io::Read::read_to_end(&mut reader, &mut bytes) {
        return findings.problem(DataError::io(path, e)).map(|()| None);
    }
    let (sha256, size) = match reader.finish() {
        Ok(done) => done,
        Err(e) => return findings.problem(DataError::io(path, e)).map(|()| None),
    };
    findings.provenance.files.push(InputFile {
        path: path.display().to_string(),
        sha256,
        bytes: size,
        rows: lines(&bytes),
    });
    Ok(Some(bytes))
}

/// The file's lines as text, 1-based numbers attached; a `\r` before `\n` is dropped, and the empty piece
/// after a final newline is not a line. Non-UTF-8 lines are reported with their byte position.
fn text_lines<'a>(path: &'a Path, bytes: &'a [u8]) -> impl Iterator<Item = (u64, Result<&'a str>)> + 'a {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = bytes.is_empty();
    body.split(|&b| b == b'\n').filter(move |_| !empty).zip(1u64..).map(move |(line, number)| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = std::str::from_utf8(line).map_err(|e| {
            let valid = line.get(..e.valid_up_to()).unwrap_or_default();
            let before = valid.split(u8::is_ascii_whitespace).filter(|t| !t.is_empty()).count();
            let column = if valid.last().is_some_and(|b| !b.is_ascii_whitespace()) { before } else { before + 1 };
            DataError::format(
                path,
                number,
                column.to_string(),
                "UTF-8 text",
                format!("invalid byte at byte {} of the line: {}", e.valid_up_to() + 1, String::from_utf8_lossy(line)),
            )
        });
        (number, text)
    })
}

fn count_lines(bytes: &[u8]) -> u64 {
    if bytes.is_empty() {
        return 0;
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    body.iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

/// Reads a whitespace-separated matrix whose every value passes `parse` (which returns the expected form on
/// failure). All rows must have as many values as the first. `None` when the file could not be used.
pub(crate) fn read_matrix<T: Clone>(
    path: &Path,
    parse: impl Fn(&str) -> std::result::Result<T, &'static str>,
    findings: &mut Findings,
) -> Result<Option<AsciiMatrix<T>>> {
    let Some(bytes) = read_bytes(path, count_lines, findings)? else {
        return Ok(None);
    };
    let mut cols: Option<usize> = None;
    let mut rows = 0usize;
    let mut values = Vec::new();
    let mut usable = true;
    for (line, text) in text_lines(path, &bytes) {
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                findings.problem(e)?;
                usable = false;
                continue;
            }
        };
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        let width = *cols.get_or_insert(fields.len());
        if fields.is_empty() || fields.len() != width {
            let expected = if width == 0 {
                "whitespace-separated values".to_string()
            } else {
                format!("{width} whitespace-separated values, as on line 1")
            };
            findings.problem(DataError::format(
                path,
                line,
                (fields.len().min(width) + 1).to_string(),
                expected,
                format!("{} values", fields.len()),
            ))?;
            usable = false;
            continue;
        }
        for (i, field) in fields.iter().enumerate() {
            match parse(field) {
                Ok(value) => values.push(value),
                Err(expected) => {
                    findings.problem(DataError::format(path, line, (i + 1).to_string(), expected, *field))?;
                    usable = false;
                }
            }
        }
        rows += 1;
    }
    if rows == 0 && usable {
        findings.problem(DataError::format(path, 1, "1", "at least one row of values", "an empty file"))?;
        return Ok(None);
    }
    Ok(usable.then(|| AsciiMatrix { rows, cols: cols.unwrap_or(0), values }))
}

/// Reads a map file: one `group:value` per line, in column order (e.g. `age:20-30`).
pub(crate) fn read_feature_map(path: &Path, findings: &mut Findings) -> Result<Option<Vec<(String, String)>>> {
    let Some(bytes) = read_bytes(path, count_lines, findings)? else {
        return Ok(None);
    };
    let mut names = Vec::new();
    let mut usable = true;
    for (line, text) in text_lines(path, &bytes) {
        let parsed = text.and_then(|text| {
            text.split_once(':')
                .filter(|(group, value)| !group.is_empty() && !value.is_empty())
                .map(|(group, value)| (group.to_string(), value.to_string()))
                .ok_or_else(|| DataError::format(path, line, "1", "group:value, like age:20-30", text))
        });
        match parsed {
            Ok(name) => names.push(name),
            Err(e) => {
                findings.problem(e)?;
                usable = false;
            }
        }
    }
    if names.is_empty() && usable {
        findings.problem(DataError::format(path, 1, "1", "group:value lines", "an empty file"))?;
        return Ok(None);
    }
    Ok(usable.then_some(names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Mode;
    use crate::DuplicatePolicy;

    fn findings(mode: Mode) -> Findings {
        Findings::new(mode, "coat", Path::new("."), DuplicatePolicy::KeepAll)
    }

    fn digit(s: &str) -> std::result::Result<u8, &'static str> {
        s.parse().map_err(|_| "a digit")
    }

    #[test]
    fn reads_rows_with_trailing_spaces_and_no_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ascii");
        std::fs::write(&path, "1 2 3 \r\n4 5 6").unwrap();
        let mut f = findings(Mode::FailFast);
        let m = read_matrix(&path, digit, &mut f).unwrap().unwrap();
        assert_eq!((m.rows, m.cols, m.values), (2, 3, vec![1, 2, 3, 4, 5, 6]));
        assert_eq!(f.provenance.files[0].rows, 2);
    }

    #[test]
    fn ragged_rows_and_bad_values_are_all_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ascii");
        std::fs::write(&path, "1 2 3\n4 5\n7 x 9\n").unwrap();
        let mut f = findings(Mode::Collect);
        assert!(read_matrix(&path, digit, &mut f).unwrap().is_none());
        let lines = f.problem_lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("m.ascii:2: column 3: expected 3 whitespace-separated values"), "{}", lines[0]);
        assert!(lines[1].contains("m.ascii:3: column 2: expected a digit"), "{}", lines[1]);
    }

    #[test]
    fn non_utf8_bytes_name_the_value_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ascii");
        std::fs::write(&path, b"1 2 3\n4 \xff5 6\n").unwrap();
        let msg = read_matrix(&path, digit, &mut findings(Mode::FailFast)).unwrap_err().to_string();
        assert!(msg.contains("m.ascii:2: column 2: expected UTF-8 text"), "{msg}");
    }

    #[test]
    fn map_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.txt");
        std::fs::write(&path, "gender:men\ngender:women").unwrap();
        let mut f = findings(Mode::FailFast);
        let names = read_feature_map(&path, &mut f).unwrap().unwrap();
        assert_eq!(names[1], ("gender".to_string(), "women".to_string()));
        std::fs::write(&path, "gender:men\ngender").unwrap();
        let msg = read_feature_map(&path, &mut f).unwrap_err().to_string();
        assert!(msg.contains("map.txt:2:") && msg.contains("group:value"), "{msg}");
    }
}
