//! Parsing the two tag-list notations of the releases, as data (never by evaluating them as code).
//!
//! * KuaiRec `item_categories.csv`, column `feat`: a bracketed list such as `[8]` or `[27, 9]`.
//! * KuaiRand-Pure `video_features_basic_pure.csv`, column `tag`: a bare comma-separated list such as `12` or
//!   `12,65`, empty for 96 untagged videos, which get the pseudo-tag [`UNTAGGED`] (`docs/protocol.md` §1.2).

/// Pseudo-tag shared by every untagged KuaiRand video, as in the anchors.
pub const UNTAGGED: i32 = -1;

/// What a `feat` cell must look like, for error messages.
pub const FEAT_FORM: &str = "a bracketed list of one or more non-negative integers, like [8] or [27, 9]";

/// What a KuaiRand `tag` cell must look like, for error messages.
pub const TAG_FORM: &str = "empty, or comma-separated non-negative integers, like 12 or 12,65";

/// Parses a KuaiRec `feat` cell (`[8]`, `[27, 9]`); `None` for anything else, including `[]`.
pub fn parse_feat(text: &str) -> Option<Vec<i32>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    parse_list(inner)
}

/// Parses a KuaiRand `tag` cell: an empty cell is `[UNTAGGED]`, otherwise a comma-separated list of
/// non-negative integers; `None` for anything else.
pub fn parse_tag_list(text: &str) -> Option<Vec<i32>> {
    if text.trim().is_empty() {
        return Some(vec![UNTAGGED]);
    }
    parse_list(text)
}

/// One or more comma-separated non-negative integers, spaces allowed around each.
fn parse_list(text: &str) -> Option<Vec<i32>> {
    text.split(',')
        .map(|item| {
            let item = item.trim();
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            item.parse::<i32>().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feat_lists() {
        assert_eq!(parse_feat("[8]"), Some(vec![8]));
        assert_eq!(parse_feat("[27, 9]"), Some(vec![27, 9]));
        assert_eq!(parse_feat("[0,1,2,3]"), Some(vec![0, 1, 2, 3]));
        for bad in [
            "",
            "[]",
            "8",
            "[8",
            "8]",
            "[a]",
            "[1,,2]",
            "[-1]",
            "[1.5]",
            "[__import__('os')]",
            "[99999999999]",
            "[[1]]",
        ] {
            assert_eq!(parse_feat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tag_lists() {
        assert_eq!(parse_tag_list(""), Some(vec![UNTAGGED]));
        assert_eq!(parse_tag_list("39"), Some(vec![39]));
        assert_eq!(parse_tag_list("20,43"), Some(vec![20, 43]));
        for bad in ["a", "1,", ",1", "[1]", "1;2", "-3"] {
            assert_eq!(parse_tag_list(bad), None, "{bad:?}");
        }
    }
}
