//! Output plumbing: a file sink that hashes and counts while it writes, and fast number formatting.
//!
//! The full data set is about 1.5 GB of CSV, so every byte goes through one 1 MiB buffer that is hashed
//! (sha256) and written in the same pass; nothing is read back.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{DataError, InputFile, Result};

const FLUSH_AT: usize = 1 << 20;

/// One output file being written.
pub(crate) struct Sink {
    /// Path relative to the data set root, as recorded in `synthetic.json` (`/`-separated).
    rel: String,
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    hasher: Sha256,
    bytes: u64,
    rows: u64,
}

impl Sink {
    /// Creates `root/rel` (the parent folder must exist).
    pub(crate) fn create(root: &Path, rel: &str) -> Result<Self> {
        let path = root.join(rel);
        let file = File::create(&path).map_err(|source| io_error(&path, source))?;
        Ok(Sink {
            rel: rel.to_string(),
            path,
            file,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            hasher: Sha256::new(),
            bytes: 0,
            rows: 0,
        })
    }

    /// The line being assembled; call [`Sink::end_row`] after each data row.
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Data rows written so far.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes a header line (not counted as a row).
    pub(crate) fn header(&mut self, columns: &str) -> Result<()> {
        self.buf.extend_from_slice(columns.as_bytes());
        self.buf.push(b'\n');
        self.flush_if_full()
    }

    /// Ends a data row: appends the newline and counts it.
    pub(crate) fn end_row(&mut self) -> Result<()> {
        self.buf.push(b'\n');
        self.rows += 1;
        self.flush_if_full()
    }

    /// Appends raw bytes, counting their lines as rows (for text files and verbatim copies).
    pub(crate) fn raw(&mut self, bytes: &[u8], rows: u64) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        self.rows += rows;
        self.flush_if_full()
    }

    fn flush_if_full(&mut self) -> Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.hasher.update(&self.buf);
        self.bytes += self.buf.len() as u64;
        self.file.write_all(&self.buf).map_err(|source| io_error(&self.path, source))?;
        self.buf.clear();
        Ok(())
    }

    /// Flushes and closes the file; returns its record for `synthetic.json`.
    pub(crate) fn finish(mut self) -> Result<InputFile> {
        self.flush()?;
        self.file.flush().map_err(|source| io_error(&self.path, source))?;
        Ok(InputFile { path: self.rel, sha256: hex(&self.hasher.finalize()), bytes: self.bytes, rows: self.rows })
    }
}

/// Writes a whole text file in one go; its rows are its lines.
pub(crate) fn write_text(root: &Path, rel: &str, text: &str) -> Result<InputFile> {
    let mut sink = Sink::create(root, rel)?;
    sink.raw(text.as_bytes(), text.lines().count() as u64)?;
    sink.finish()
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io { path: path.to_path_buf(), source }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends the decimal form of `n`.
pub(crate) fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Appends the decimal form of `n`.
pub(crate) fn push_i64(buf: &mut Vec<u8>, n: i64) {
    if n < 0 {
        buf.push(b'-');
    }
    push_u64(buf, n.unsigned_abs());
}

/// Appends `x` in Rust's shortest round-trip `{}` form (`1.2733965215790926`, `0.078`, `2`), so parsing
/// the text gives back the identical f64. Infinities are written `inf`/`-inf` and NaN as an empty cell,
/// which is how pandas (and so the real KuaiRec files) writes them.
pub(crate) fn push_f64(buf: &mut Vec<u8>, x: f64) {
    if x.is_nan() {
        return;
    }
    // Writing into a Vec cannot fail.
    let _ = write!(buf, "{x}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        let mut b = Vec::new();
        push_u64(&mut b, 0);
        b.push(b' ');
        push_i64(&mut b, -1_593_878_903);
        b.push(b' ');
        push_u64(&mut b, u64::MAX);
        assert_eq!(String::from_utf8(b).unwrap(), "0 -1593878903 18446744073709551615");
    }

    #[test]
    fn floats_round_trip_and_non_finite_forms() {
        for x in [13838.0 / 10867.0, 0.078, 2.0, 1e-7, 123456.789] {
            let mut b = Vec::new();
            push_f64(&mut b, x);
            let back: f64 = std::str::from_utf8(&b).unwrap().parse().unwrap();
            assert_eq!(back.to_bits(), x.to_bits());
        }
        let mut b = Vec::new();
        push_f64(&mut b, 13838.0 / 10867.0);
        assert_eq!(b, b"1.2733965215790926");
        let mut b = Vec::new();
        push_f64(&mut b, f64::INFINITY);
        push_f64(&mut b, f64::NAN);
        assert_eq!(b, b"inf");
    }

    #[test]
    fn sink_hashes_what_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::create(dir.path(), "x.csv").unwrap();
        sink.header("a").unwrap();
        sink.buf().extend_from_slice(b"1");
        sink.end_row().unwrap();
        let file = sink.finish().unwrap();
        assert_eq!(std::fs::read(dir.path().join("x.csv")).unwrap(), b"a\n1\n");
        assert_eq!((file.bytes, file.rows), (4, 1));
        let expected = hex(&Sha256::digest(b"a\n1\n"));
        assert_eq!(file.sha256, expected);
    }
}
