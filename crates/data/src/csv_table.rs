//! Streaming reader for the release's CSV tables: one fixed header, one reused [`csv::ByteRecord`], fields
//! parsed straight from bytes, and an error for every malformed value that names the file, the 1-based line,
//! the column and the expected form.
//!
//! Records end at `\n` only. For ordinary tables a `\r` before the `\n` (Windows line ends) is stripped from
//! the last field; for the caption table ([`LineEnd::NewlineOnly`]) a `\r` anywhere is data, because four
//! official captions contain a bare `\r` (`docs/data.md` §1.3).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use csv::{ByteRecord, ReaderBuilder, Terminator};

use crate::findings::Findings;
use crate::provenance::{HashingReader, InputFile};
use crate::source::Source;
use crate::{DataError, Result};

/// How records end in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineEnd {
    /// `\n`, with an optional `\r` before it that is not part of the data.
    NewlineOrCrlf,
    /// `\n` only; a `\r` is part of the field it occurs in.
    NewlineOnly,
}

/// An open CSV table whose header has been checked.
pub(crate) struct CsvTable {
    path: PathBuf,
    header: &'static [&'static str],
    reader: csv::Reader<HashingReader<Box<dyn Read + Send>>>,
    record: ByteRecord,
    strip_cr: bool,
    rows: u64,
    /// File length, and whether the file ends without a newline: a short last record in such a file is
    /// reported as a truncated line.
    unterminated_len: Option<u64>,
}

impl CsvTable {
    /// Opens `path` in `source` and checks that its first line is exactly `header`, in order.
    pub(crate) fn open(
        source: &dyn Source,
        path: &Path,
        header: &'static [&'static str],
        line_end: LineEnd,
    ) -> Result<Self> {
        let file = source.open(path).map_err(|e| DataError::io(path, e))?;
        let unterminated_len = source.unterminated_length(path).map_err(|e| DataError::io(path, e))?;
        let reader = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(Terminator::Any(b'\n'))
            .buffer_capacity(1 << 20)
            .from_reader(HashingReader::new(file));
        let mut table = CsvTable {
            path: path.to_path_buf(),
            header,
            reader,
            record: ByteRecord::new(),
            strip_cr: line_end == LineEnd::NewlineOrCrlf,
            rows: 0,
            unterminated_len,
        };
        table.check_header()?;
        Ok(table)
    }

    /// Like [`CsvTable::open`], but a file that cannot be opened or has a wrong header is reported to
    /// `findings` (and `None` returned) instead of failing in collect mode.
    pub(crate) fn open_reporting(
        path: &Path,
        header: &'static [&'static str],
        line_end: LineEnd,
        findings: &mut Findings,
    ) -> Result<Option<Self>> {
        match CsvTable::open(&*findings.source, path, header, line_end) {
            Ok(table) => Ok(Some(table)),
            Err(e) => findings.problem(e).map(|()| None),
        }
    }

    fn check_header(&mut self) -> Result<()> {
        let expected = self.header.join(",");
        let found_any = self.reader.read_byte_record(&mut self.record).map_err(|e| csv_error(&self.path, e))?;
        if !found_any {
            return Err(DataError::format(
                &self.path,
                1,
                "header",
                format!("header line `{expected}`"),
                "an empty file",
            ));
        }
        let found: Vec<String> =
            (0..self.record.len()).map(|i| String::from_utf8_lossy(self.field_bytes(i)).into_owned()).collect();
        let found = strip_bom(found);
        if found.iter().map(String::as_str).ne(self.header.iter().copied()) {
            let column = self
                .header
                .iter()
                .zip(found.iter().map(String::as_str).chain(std::iter::repeat("")))
                .find(|(want, got)| *want != got)
                .map_or("header", |(want, _)| want);
            return Err(DataError::format(
                &self.path,
                1,
                column.to_string(),
                format!("header line `{expected}` (these columns, in this order)"),
                found.join(","),
            ));
        }
        Ok(())
    }

    /// The next data row, `None` at the end of the file. A row with the wrong number of fields or with
    /// non-UTF-8 bytes is an error; the table can still be read on after it.
    pub(crate) fn next_row(&mut self) -> Result<Option<Row<'_>>> {
        let more = self.reader.read_byte_record(&mut self.record).map_err(|e| csv_error(&self.path, e))?;
        if !more {
            return Ok(None);
        }
        self.rows += 1;
        let line = self.record.position().map_or(self.rows + 1, |p| p.line());
        let row = Row { path: &self.path, header: self.header, record: &self.record, line, strip_cr: self.strip_cr };
        if self.record.len() != self.header.len() {
            let mut found =
                format!("{} field(s): {}", self.record.len(), String::from_utf8_lossy(self.record.as_slice()));
            let at_end = self.unterminated_len.is_some_and(|len| self.reader.position().byte() >= len);
            if at_end && self.record.len() < self.header.len() {
                found.push_str(" (the last line looks truncated)");
            }
            let column =
                self.header.get(self.record.len()).map_or_else(|| "(extra field)".to_string(), |c| c.to_string());
            return Err(DataError::format(
                &self.path,
                line,
                column,
                format!("{} fields `{}`", self.header.len(), self.header.join(",")),
                found,
            ));
        }
        // Fast path: an ASCII record is valid UTF-8 in every field.
        let ascii = self.record.as_slice().is_ascii();
        for i in (0..self.header.len()).filter(|_| !ascii) {
            let bytes = row.bytes(i);
            if let Err(e) = std::str::from_utf8(bytes) {
                let bad = bytes.get(e.valid_up_to()).copied().unwrap_or_default();
                return Err(row.error(
                    i,
                    "UTF-8 text",
                    format!(
                        "invalid byte 0x{bad:02X} at byte {} of the field: {}",
                        e.valid_up_to() + 1,
                        String::from_utf8_lossy(bytes)
                    ),
                ));
            }
        }
        Ok(Some(row))
    }

    /// Calls `each` on every data row. A problem in a row (returned by `each`, or a malformed record) goes to
    /// `findings`: it ends the read in fail-fast mode and is recorded and skipped in collect mode. An I/O
    /// error ends the read in both.
    pub(crate) fn for_each_row(
        &mut self,
        findings: &mut Findings,
        mut each: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        loop {
            match self.next_row() {
                Ok(Some(row)) => {
                    if let Err(e) = each(&row) {
                        findings.problem(e)?;
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    let fatal = matches!(e, DataError::Io { .. });
                    findings.problem(e)?;
                    if fatal {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Data rows read so far (header excluded).
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Error for a table that must hold at least one data row but holds only its header.
    pub(crate) fn require_rows(&self) -> Result<()> {
        if self.rows == 0 {
            return Err(DataError::format(
                &self.path,
                2,
                self.header.first().copied().unwrap_or("header"),
                "at least one data row after the header",
                "end of file",
            ));
        }
        Ok(())
    }

    /// Finishes the file: reports a table with no data row, hashes the rest of the file and records it in
    /// the provenance.
    pub(crate) fn finish_into(self, findings: &mut Findings) -> Result<()> {
        if let Err(e) = self.require_rows() {
            findings.problem(e)?;
        }
        match self.finish() {
            Ok(file) => findings.provenance.files.push(file),
            Err(e) => findings.problem(e)?,
        }
        Ok(())
    }

    /// Finishes hashing the file and describes it for the provenance record.
    pub(crate) fn finish(self) -> Result<InputFile> {
        let rows = self.rows;
        let path = self.path;
        let (sha256, bytes) = self.reader.into_inner().finish().map_err(|e| DataError::io(&path, e))?;
        Ok(InputFile { path: path.display().to_string(), sha256, bytes, rows })
    }

    fn field_bytes(&self, i: usize) -> &[u8] {
        let bytes = self.record.get(i).unwrap_or_default();
        if self.strip_cr && i + 1 == self.record.len() {
            bytes.strip_suffix(b"\r").unwrap_or(bytes)
        } else {
            bytes
        }
    }
}

/// Removes a UTF-8 byte-order mark from the first header name, which some editors add.
fn strip_bom(mut names: Vec<String>) -> Vec<String> {
    if let Some(first) = names.first_mut() {
        if let Some(rest) = first.strip_prefix('\u{feff}') {
            *first = rest.to_string();
        }
    }
    names
}

fn csv_error(path: &Path, error: csv::Error) -> DataError {
    let line = error.position().map_or(0, |p| p.line());
    match error.into_kind() {
        csv::ErrorKind::Io(source) => DataError::io(path, source),
        other => DataError::format(path, line, "record", "a CSV record", format!("{other:?}")),
    }
}

/// One data row, borrowed from its table. Every accessor turns a bad value into a [`DataError::Format`]
/// naming the file, line and column.
pub(crate) struct Row<'a> {
    path: &'a Path,
    header: &'static [&'static str],
    record: &'a ByteRecord,
    line: u64,
    strip_cr: bool,
}

impl<'a> Row<'a> {
    /// 1-based line number of the row in its file.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// Name of column `i`.
    pub(crate) fn column(&self, i: usize) -> &'static str {
        self.header.get(i).copied().unwrap_or("?")
    }

    /// An error about column `i` of this row.
    pub(crate) fn error(&self, i: usize, expected: impl Into<String>, found: impl AsRef<str>) -> DataError {
        DataError::format(self.path, self.line, self.column(i), expected, found)
    }

    /// Field `i` as raw bytes (a `\r` line end stripped), for parsers that need no text.
    pub(crate) fn bytes(&self, i: usize) -> &'a [u8] {
        let bytes = self.record.get(i).unwrap_or_default();
        if self.strip_cr && i + 1 == self.record.len() {
            bytes.strip_suffix(b"\r").unwrap_or(bytes)
        } else {
            bytes
        }
    }

    /// Field `i` as text.
    pub(crate) fn text(&self, i: usize) -> Result<&'a str> {
        std::str::from_utf8(self.bytes(i)).map_err(|_| self.bad(i, "UTF-8 text"))
    }

    /// Field `i` as non-empty text.
    pub(crate) fn non_empty(&self, i: usize) -> Result<&'a str> {
        let text = self.text(i)?;
        if text.is_empty() {
            return Err(self.error(i, "a non-empty value", text));
        }
        Ok(text)
    }

    fn parse<T: FromStr>(&self, i: usize, expected: &str) -> Result<T> {
        let text = self.text(i)?;
        text.parse().map_err(|_| self.error(i, expected, text))
    }

    /// An error about column `i` showing the field as found.
    fn bad(&self, i: usize, expected: impl Into<String>) -> DataError {
        self.error(i, expected, String::from_utf8_lossy(self.bytes(i)))
    }

    /// Field `i` as an integer, written without a fraction.
    pub(crate) fn int(&self, i: usize) -> Result<i64> {
        parse_i64(self.bytes(i)).ok_or_else(|| self.bad(i, "an integer"))
    }

    /// Field `i` as an integer that may be written as a float with a zero fraction (`87433.0`), as the
    /// release's pandas-written tables do.
    pub(crate) fn integral(&self, i: usize) -> Result<i64> {
        parse_integral(self.bytes(i)).ok_or_else(|| self.bad(i, "an integer (optionally written with `.0`)"))
    }

    /// Field `i` as a dense id in `0..n`; `of` says what the range counts (e.g. "users in user_features.csv").
    pub(crate) fn id(&self, i: usize, n: usize, of: &str) -> Result<u32> {
        match parse_u64(self.bytes(i)).filter(|&id| id < n as u64).and_then(|id| u32::try_from(id).ok()) {
            Some(id) => Ok(id),
            None => Err(self.bad(
                i,
                match n.checked_sub(1) {
                    Some(last) => format!("an integer id in 0..={last} ({n} {of})"),
                    None => format!("an integer id, but there are no {of}"),
                },
            )),
        }
    }

    /// Field `i` as a non-negative integer that fits in `T`.
    pub(crate) fn unsigned<T: TryFrom<u64>>(&self, i: usize, expected: &str) -> Result<T> {
        parse_u64(self.bytes(i)).and_then(|v| T::try_from(v).ok()).ok_or_else(|| self.bad(i, expected))
    }

    /// Field `i` as a 0/1 flag.
    pub(crate) fn flag(&self, i: usize) -> Result<u8> {
        match self.bytes(i) {
            b"0" => Ok(0),
            b"1" => Ok(1),
            _ => Err(self.bad(i, "0 or 1")),
        }
    }

    /// Field `i` as a finite number.
    pub(crate) fn finite(&self, i: usize) -> Result<f64> {
        let value: f64 = self.parse(i, "a finite number")?;
        if !value.is_finite() {
            return Err(self.error(i, "a finite number", self.text(i)?));
        }
        Ok(value)
    }

    /// Like [`Row::finite`], but an empty field is a missing value.
    pub(crate) fn opt_finite(&self, i: usize) -> Result<Option<f64>> {
        if self.bytes(i).is_empty() {
            return Ok(None);
        }
        self.finite(i).map(Some)
    }

    /// Field `i` as a number that may be non-finite (`inf`, `nan`) or empty (read as NaN); the caller
    /// decides where non-finite values are allowed.
    pub(crate) fn any_float(&self, i: usize) -> Result<f64> {
        if self.bytes(i).is_empty() {
            return Ok(f64::NAN);
        }
        self.parse(i, "a number (or inf/nan)")
    }
}

/// The form a plain (not specially parsed) column of a side table must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An integer, optionally written with `.0`.
    Integral,
    /// A finite number.
    Number,
    /// Empty (missing) or a finite number.
    OptNumber,
    /// Non-empty text.
    Text,
}

impl Row<'_> {
    /// Checks that column `i` has the form `kind`.
    pub(crate) fn check(&self, i: usize, kind: Kind) -> Result<()> {
        match kind {
            Kind::Integral => self.integral(i).map(drop),
            Kind::Number => self.finite(i).map(drop),
            Kind::OptNumber => self.opt_finite(i).map(drop),
            Kind::Text => self.non_empty(i).map(drop),
        }
    }
}

/// Decimal digits only (no sign), without overflow.
pub(crate) fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, &b| {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// An optional `-` and decimal digits, without overflow.
pub(crate) fn parse_i64(bytes: &[u8]) -> Option<i64> {
    match bytes.strip_prefix(b"-") {
        Some(digits) => {
            let magnitude = parse_u64(digits)?;
            0i64.checked_sub_unsigned(magnitude)
        }
        None => i64::try_from(parse_u64(bytes)?).ok(),
    }
}

/// `87433` or `87433.0` (any number of zeros after the point) as an integer.
pub(crate) fn parse_integral(bytes: &[u8]) -> Option<i64> {
    let digits = match bytes.iter().position(|&b| b == b'.') {
        Some(point) => {
            let zeros = bytes.get(point + 1..)?;
            if zeros.is_empty() || zeros.iter().any(|&b| b != b'0') {
                return None;
            }
            bytes.get(..point)?
        }
        None => bytes,
    };
    parse_i64(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[&str] = &["a", "b", "c"];

    fn table(content: &[u8], line_end: LineEnd) -> (tempfile::TempDir, Result<CsvTable>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, content).unwrap();
        let table = CsvTable::open(&crate::source::Disk, &path, HEADER, line_end);
        (dir, table)
    }

    fn texts(table: &mut CsvTable) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        while let Some(row) = table.next_row().unwrap() {
            out.push((0..3).map(|i| row.text(i).unwrap().to_string()).collect());
        }
        out
    }

    #[test]
    fn crlf_is_stripped_from_tables_but_kept_in_caption_mode() {
        let (_d, t) = table(b"a,b,c\r\n1,2,3\r\n4,\"5\r6\",7\n", LineEnd::NewlineOrCrlf);
        let rows = texts(&mut t.unwrap());
        assert_eq!(rows[0], ["1", "2", "3"]);
        assert_eq!(rows[1], ["4", "5\r6", "7"]);
        let (_d, t) = table(b"a,b,c\n1,x\ry,3\n", LineEnd::NewlineOnly);
        assert_eq!(texts(&mut t.unwrap())[0], ["1", "x\ry", "3"]);
    }

    #[test]
    fn missing_final_newline_is_fine() {
        let (_d, t) = table(b"a,b,c\n1,2,3", LineEnd::NewlineOrCrlf);
        let mut t = t.unwrap();
        assert_eq!(texts(&mut t), [["1", "2", "3"]]);
        assert_eq!(t.finish().unwrap().rows, 1);
    }

    #[test]
    fn wrong_header_shows_expected_header() {
        let (_d, t) = table(b"a,c,b\n1,2,3\n", LineEnd::NewlineOrCrlf);
        let msg = t.err().unwrap().to_string();
        assert!(msg.contains(":1: column b: expected header line `a,b,c`"), "{msg}");
    }

    #[test]
    fn empty_file_and_header_only() {
        let (_d, t) = table(b"", LineEnd::NewlineOrCrlf);
        let msg = t.err().unwrap().to_string();
        assert!(msg.contains("an empty file"), "{msg}");
        let (_d, t) = table(b"a,b,c\n", LineEnd::NewlineOrCrlf);
        let mut t = t.unwrap();
        assert!(t.next_row().unwrap().is_none());
        let msg = t.require_rows().unwrap_err().to_string();
        assert!(msg.contains(":2: column a: expected at least one data row"), "{msg}");
    }

    #[test]
    fn truncated_last_line_is_named() {
        let (_d, t) = table(b"a,b,c\n1,2,3\n4,5", LineEnd::NewlineOrCrlf);
        let mut t = t.unwrap();
        assert!(t.next_row().unwrap().is_some());
        let msg = t.next_row().err().unwrap().to_string();
        assert!(msg.contains(":3: column c: expected 3 fields"), "{msg}");
        assert!(msg.contains("truncated"), "{msg}");
    }

    #[test]
    fn non_utf8_names_line_and_column() {
        let (_d, t) = table(b"a,b,c\n1,2,3\n1,x\xffy,3\n", LineEnd::NewlineOrCrlf);
        let mut t = t.unwrap();
        assert!(t.next_row().unwrap().is_some());
        let msg = t.next_row().err().unwrap().to_string();
        assert!(msg.contains(":3: column b: expected UTF-8 text"), "{msg}");
        assert!(msg.contains("0xFF"), "{msg}");
        // The table reads on after a bad row.
        assert!(t.next_row().unwrap().is_none());
    }

    #[test]
    fn value_parsers() {
        let (_d, t) = table(b"a,b,c\n7,87433.0,-3\n", LineEnd::NewlineOrCrlf);
        let mut t = t.unwrap();
        let row = t.next_row().unwrap().unwrap();
        assert_eq!(row.id(0, 8, "things").unwrap(), 7);
        let msg = row.id(0, 7, "things").unwrap_err().to_string();
        assert!(msg.contains("an integer id in 0..=6 (7 things)"), "{msg}");
        assert_eq!(row.integral(1).unwrap(), 87433);
        assert!(row.int(1).is_err());
        assert_eq!(row.int(2).unwrap(), -3);
        assert!(row.id(2, 10, "x").is_err());
        assert!(row.flag(0).is_err());
    }

    #[test]
    fn integer_forms() {
        assert_eq!(parse_integral(b"20200705.0"), Some(20200705));
        assert_eq!(parse_integral(b"-124"), Some(-124));
        assert_eq!(parse_integral(b"1.5"), None);
        assert_eq!(parse_integral(b"1."), None);
        assert_eq!(parse_integral(b"."), None);
        assert_eq!(parse_integral(b"+1"), None);
        assert_eq!(parse_integral(b"99999999999999999999"), None);
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"1 "), None);
    }
}
