//! The real KuaiRec `item_categories.csv`, embedded in the binary, and its parse.
//!
//! The generator copies these bytes verbatim into every data set it writes, and uses the parsed tag lists
//! for the preference model. The parser is kept here, apart from the loaders, so the generator does not
//! depend on how the loaders evolve.

use std::path::PathBuf;

use super::model::KUAIREC_VIDEOS;
use crate::{DataError, Result};

/// The official KuaiRec 2.0 `item_categories.csv` (10,728 videos, tags 0..30), byte for byte.
pub const ITEM_CATEGORIES_CSV: &str = include_str!("../../../../assets/kuairec/item_categories.csv");

/// Number of distinct tags in the real table (ids 0..30; tag 0 is a real tag).
pub(crate) const N_TAGS: usize = 31;

/// Tag lists of all videos, indexed by video id, stored flat.
#[derive(Debug, Clone)]
pub(crate) struct Categories {
    /// Tags of video `v` are `tags[start[v]..start[v + 1]]`.
    tags: Vec<u8>,
    start: Vec<u32>,
}

impl Categories {
    /// Parses the embedded table, which must cover every KuaiRec video id.
    pub(crate) fn embedded() -> Result<Self> {
        let cats = Self::parse(ITEM_CATEGORIES_CSV)?;
        if cats.n_videos() != KUAIREC_VIDEOS {
            let found = cats.n_videos().to_string();
            return Err(bad(1, "video_id", "10,728 videos", &found));
        }
        Ok(cats)
    }

    /// Parses `video_id,feat` rows whose `feat` is a bracketed integer list, quoted when it has a comma
    /// (`0,[8]`, `1,"[27, 9]"`). Ids must be dense from 0 and every tag below [`N_TAGS`].
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let mut lines = text.lines();
        if lines.next() != Some("video_id,feat") {
            return Err(bad(1, "header", "video_id,feat", text.lines().next().unwrap_or("")));
        }
        let mut tags = Vec::new();
        let mut start = vec![0u32];
        for (i, line) in lines.enumerate() {
            let line_no = i as u64 + 2;
            let (id, feat) = line.split_once(',').ok_or_else(|| bad(line_no, "video_id", "`id,feat`", line))?;
            if id.parse::<usize>().ok() != Some(i) {
                return Err(bad(line_no, "video_id", &format!("{i}"), id));
            }
            let list = feat
                .trim_matches('"')
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .ok_or_else(|| bad(line_no, "feat", "a bracketed list", feat))?;
            for item in list.split(',') {
                match item.trim().parse::<u8>() {
                    Ok(t) if usize::from(t) < N_TAGS => tags.push(t),
                    _ => return Err(bad(line_no, "feat", "tag ids 0..30", feat)),
                }
            }
            start.push(tags.len() as u32);
        }
        Ok(Categories { tags, start })
    }

    /// Number of videos (10,728 for the real table).
    pub(crate) fn n_videos(&self) -> usize {
        self.start.len() - 1
    }

    /// The tags of video `v`.
    pub(crate) fn of(&self, v: usize) -> &[u8] {
        &self.tags[self.start[v] as usize..self.start[v + 1] as usize]
    }

    /// How many videos carry each tag.
    pub(crate) fn tag_counts(&self) -> [u64; N_TAGS] {
        let mut counts = [0u64; N_TAGS];
        for &t in &self.tags {
            counts[usize::from(t)] += 1;
        }
        counts
    }
}

fn bad(line: u64, column: &str, expected: &str, found: &str) -> DataError {
    DataError::Format {
        path: PathBuf::from("assets/kuairec/item_categories.csv (embedded)"),
        line,
        column: column.to_string(),
        expected: expected.to_string(),
        found: found.chars().take(80).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_matches_the_measured_statistics() {
        let c = Categories::embedded().unwrap();
        assert_eq!(c.n_videos(), 10_728);
        assert_eq!(c.of(0), &[8]);
        assert_eq!(c.of(1), &[27, 9]);
        let counts = c.tag_counts();
        assert_eq!(counts[11], 2_027);
        assert_eq!(counts[0], 24);
        assert_eq!(counts[29], 5);
        let per_video: Vec<usize> = (0..c.n_videos()).map(|v| c.of(v).len()).collect();
        assert_eq!(per_video.iter().filter(|&&n| n == 1).count(), 8_970);
        assert_eq!(per_video.iter().filter(|&&n| n == 4).count(), 11);
    }

    #[test]
    fn malformed_rows_are_format_errors() {
        assert!(Categories::parse("video_id,feat\n0,[31]\n").is_err());
        assert!(Categories::parse("video_id,feat\n1,[3]\n").is_err());
        assert!(Categories::parse("video_id,feat\n0,3\n").is_err());
        assert!(Categories::parse("id,feat\n0,[3]\n").is_err());
    }
}
