//! Where the loaders' bytes come from: the file system ([`Disk`], what every command uses) or a map of paths
//! to bytes held in memory ([`Memory`]), so that the loaders can be fuzzed with millions of generated data sets
//! without touching a disk (`tests/fuzz_loaders.rs`).
//!
//! The loaders ask a source only four things: open a file as a stream, whether a path is a file, the files
//! directly in a folder, and whether a file ends without a newline. Everything else (parsing, hashing,
//! errors) is the same code whatever the source.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A set of files the loaders can read.
pub trait Source: Send + Sync {
    /// The file at `path` as a byte stream.
    fn open(&self, path: &Path) -> io::Result<Box<dyn Read + Send>>;
    /// Whether `path` names a readable file (not a folder).
    fn is_file(&self, path: &Path) -> bool;
    /// The paths of the entries directly in `dir`, in no particular order.
    fn entries(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// The file's length when its last byte is not `\n`, else `None` (an empty file: `None`).
    fn unterminated_length(&self, path: &Path) -> io::Result<Option<u64>>;
}

/// The source every command uses: the file system.
pub fn disk() -> Arc<dyn Source> {
    Arc::new(Disk)
}

/// The file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

impl Source for Disk {
    fn open(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(std::fs::File::open(path)?))
    }

    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn entries(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect()
    }

    fn unterminated_length(&self, path: &Path) -> io::Result<Option<u64>> {
        use std::io::{Seek, SeekFrom};
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            return Ok(None);
        }
        file.seek(SeekFrom::End(-1))?;
        let mut last = [0u8; 1];
        file.read_exact(&mut last)?;
        Ok((last != *b"\n").then_some(len))
    }
}

/// Files held in memory, keyed by their full path (e.g. `data/small_matrix.csv` under the folder `data`).
/// A folder exists when some file lies below it.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Memory {
    /// An empty set of files.
    pub fn new() -> Self {
        Memory::default()
    }

    /// Adds (or replaces) the file at `path`.
    pub fn insert(&mut self, path: impl Into<PathBuf>, bytes: impl Into<Vec<u8>>) {
        self.files.insert(path.into(), bytes.into());
    }

    /// Every file under `dir` on disk, with its path kept, for building fuzz inputs from a real data set.
    pub fn read_dir_recursive(dir: &Path) -> io::Result<Self> {
        let mut memory = Memory::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let bytes = std::fs::read(&path)?;
                    memory.insert(path, bytes);
                }
            }
        }
        Ok(memory)
    }

    /// Removes the file at `path` (a missing file, for fuzzing).
    pub fn remove(&mut self, path: &Path) {
        self.files.remove(path);
    }

    /// The files and their bytes, in path order.
    pub fn files(&self) -> impl Iterator<Item = (&Path, &[u8])> {
        self.files.iter().map(|(p, b)| (p.as_path(), b.as_slice()))
    }

    /// The bytes of the file at `path`, mutable (for mutating fuzz inputs).
    pub fn get_mut(&mut self, path: &Path) -> Option<&mut Vec<u8>> {
        self.files.get_mut(path)
    }

    fn get(&self, path: &Path) -> io::Result<&[u8]> {
        self.files.get(path).map(Vec::as_slice).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file in memory", path.display()))
        })
    }
}

impl Source for Memory {
    fn open(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        // A copy: the files are small, and the stream then outlives no borrow.
        Ok(Box::new(io::Cursor::new(self.get(path)?.to_vec())))
    }

    fn is_file(&self, path: &Path) -> bool {
        self.files.contains_key(path)
    }

    fn entries(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut found: Vec<PathBuf> = self
            .files
            .keys()
            .filter_map(|p| {
                let rest = p.strip_prefix(dir).ok()?;
                let first = rest.components().next()?;
                Some(dir.join(first))
            })
            .collect();
        found.dedup();
        if found.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{}: no such folder", dir.display())));
        }
        Ok(found)
    }

    fn unterminated_length(&self, path: &Path) -> io::Result<Option<u64>> {
        let bytes = self.get(path)?;
        Ok(bytes.last().filter(|&&b| b != b'\n').map(|_| bytes.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_answers_like_the_disk_for_the_same_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("a.csv"), "x,y\n1,2").unwrap();
        std::fs::write(dir.path().join("data/b.csv"), "x\n").unwrap();
        std::fs::write(dir.path().join("empty.csv"), "").unwrap();
        let memory = Memory::read_dir_recursive(dir.path()).unwrap();
        let sources: [&dyn Source; 2] = [&Disk, &memory];
        let answers: Vec<_> = sources
            .iter()
            .map(|s| {
                let mut text = String::new();
                s.open(&dir.path().join("a.csv")).unwrap().read_to_string(&mut text).unwrap();
                let mut entries = s.entries(dir.path()).unwrap();
                entries.sort();
                (
                    text,
                    s.is_file(&dir.path().join("data/b.csv")),
                    s.is_file(&dir.path().join("data")),
                    entries,
                    ["a.csv", "data/b.csv", "empty.csv"].map(|f| s.unterminated_length(&dir.path().join(f)).unwrap()),
                    s.open(&dir.path().join("missing.csv")).is_err(),
                )
            })
            .collect();
        assert_eq!(answers[0], answers[1]);
        assert_eq!(answers[0].4, [Some(7), None, None]);
    }
}
