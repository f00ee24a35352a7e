//! The user model's inputs besides the user id, per item (`docs/protocol.md` §4.1): the item id, up to T tag
//! fields that share one tag-embedding table, and the dense `duration_normed` feature.
//!
//! **Tag indices.** A tag slot holds `raw tag + shift`, and index 0 fills the empty slots of items with fewer
//! than T tags. The shift is `1 − min(0, smallest raw tag)`:
//!
//! * KuaiRec (tags 0..30): shift 1, exactly the anchors' "+1" columns `feat0..feat3` (tag 0 → 1).
//! * KuaiRand-Pure (tags 1..68 plus the pseudo-tag −1 of the 96 untagged videos): shift 2, so −1 → 1, a valid
//!   row of its own, and 1..68 → 3..70 (row 2 is never used). The anchors' "+1" would send −1 to 0, the
//!   empty-slot row, so untagged videos would look like videos with no tag field at all; here they share a
//!   learned "untagged" category, as the quit rule already treats them (`docs/protocol.md` §1.2, quirk 2).
//!
//! As in the anchors' DeepCTR `SparseFeat` columns, row 0 is an ordinary learned row, not a masked one.
//! T is the largest number of tags on any item (4 on KuaiRec, 3 on KuaiRand-Pure), at least 1.

use crate::{invalid, Result};
use dsrm_sim::World;

/// Largest tag-embedding table accepted; tag ids beyond it are certainly a data error.
pub const MAX_TAG_VOCAB: usize = 1 << 20;

/// Per-item model inputs and the table sizes of a user model, derived once from a [`World`].
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// `World::dataset`: picks the embedding size and the number of negatives when the config leaves them open.
    pub dataset: String,
    /// Rows of the user tables: every training user (environment users are `0..n_env_users`).
    pub n_users: usize,
    /// Users of the environment grid the ensemble predicts for.
    pub n_env_users: usize,
    /// Rows of the item tables: every item of the training log.
    pub n_items: usize,
    /// Items of the environment catalogue, dense ids `0..n_env_items` (the grid's columns).
    pub n_env_items: usize,
    /// T: tag fields per item.
    pub n_tag_fields: usize,
    /// Added to a raw tag to get its row in the tag table (module documentation).
    pub tag_shift: i64,
    /// Rows of the tag table (empty-slot row included).
    pub tag_vocab: usize,
    /// `n_items * n_tag_fields` tag rows, row-major by item.
    pub tag_index: Vec<i64>,
    /// `duration_normed` per item (DORL's dense item feature).
    pub duration: Vec<f32>,
}

impl Features {
    /// Reads the item facts of `world`. Errors when the log and the item facts disagree in size, a duration
    /// is not finite, or the tag ids are absurdly spread.
    pub fn from_world(world: &World) -> Result<Self> {
        let train = &world.train_full;
        let (n_env_users, n_env_items) = (world.spec.n_users(), world.spec.n_items());
        let (n_users, n_items) = (train.n_users, train.n_items);
        if n_users == 0 || n_items == 0 {
            return Err(invalid(format!("the training log has {n_users} users and {n_items} items")));
        }
        if n_env_users > n_users || n_env_items > n_items {
            return Err(invalid(format!(
                "environment {n_env_users} x {n_env_items} exceeds the training log's {n_users} x {n_items}; \
                 environment users and items must be the first dense ids"
            )));
        }
        if world.item_tags_full.len() < n_items || world.item_duration_full.len() < n_items {
            return Err(invalid(format!(
                "item facts cover {} (tags) / {} (durations) items, the training log has {n_items}",
                world.item_tags_full.len(),
                world.item_duration_full.len()
            )));
        }
        let item_tags = &world.item_tags_full[..n_items];
        let n_tag_fields = item_tags.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let min_tag = item_tags.iter().flatten().copied().min().unwrap_or(0);
        let max_tag = item_tags.iter().flatten().copied().max().unwrap_or(0);
        let tag_shift = 1 - i64::from(min_tag.min(0));
        let tag_vocab = (i64::from(max_tag) + tag_shift + 1).max(1) as usize;
        if tag_vocab > MAX_TAG_VOCAB {
            return Err(invalid(format!(
                "item tags span {min_tag}..{max_tag}: a tag table of {tag_vocab} rows (max {MAX_TAG_VOCAB})"
            )));
        }
        let mut tag_index = vec![0i64; n_items * n_tag_fields];
        for (item, tags) in item_tags.iter().enumerate() {
            for (slot, &tag) in tags.iter().enumerate() {
                tag_index[item * n_tag_fields + slot] = i64::from(tag) + tag_shift;
            }
        }
        let mut duration = Vec::with_capacity(n_items);
        for (item, &d) in world.item_duration_full[..n_items].iter().enumerate() {
            if !d.is_finite() {
                return Err(invalid(format!("item {item}: duration_normed {d} is not finite")));
            }
            duration.push(d as f32);
        }
        Ok(Self {
            dataset: world.dataset.clone(),
            n_users,
            n_env_users,
            n_items,
            n_env_items,
            n_tag_fields,
            tag_shift,
            tag_vocab,
            tag_index,
            duration,
        })
    }

    /// The tag rows of one item (`n_tag_fields` values, 0 for empty slots).
    ///
    /// # Panics
    /// If `item >= n_items`.
    pub fn tag_slots(&self, item: usize) -> &[i64] {
        &self.tag_index[item * self.n_tag_fields..(item + 1) * self.n_tag_fields]
    }

    /// Width of one item's embedding for the `avg` tracker: item id + every tag field + the dense feature
    /// (41 on KuaiRec with dimension 8, 17 on KuaiRand-Pure with dimension 4).
    pub fn item_embedding_width(&self, dim: usize) -> usize {
        dim * (1 + self.n_tag_fields) + 1
    }
}
