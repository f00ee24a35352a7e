//! Item categories as bit masks, so the quit rule's tag counting is a few integer operations.

use crate::SimError;

/// One bit mask per item over the data set's distinct tags (at most 128; KuaiRec has 31, KuaiRand-Pure 47
/// including the pseudo-tag -1 shared by all untagged videos).
#[derive(Debug, Clone, PartialEq)]
pub struct TagMasks {
    masks: Vec<u128>,
    /// The raw tag value of each bit.
    tag_of_bit: Vec<i32>,
}

impl TagMasks {
    /// Builds masks from raw tag lists, one per dense item. Fails above 128 distinct tags.
    pub fn new(item_tags: &[Vec<i32>]) -> Result<Self, SimError> {
        let mut tag_of_bit: Vec<i32> = item_tags.iter().flatten().copied().collect();
        tag_of_bit.sort_unstable();
        tag_of_bit.dedup();
        if tag_of_bit.len() > 128 {
            return Err(SimError::Invalid(format!(
                "{} distinct item tags; the category quit rule supports at most 128",
                tag_of_bit.len()
            )));
        }
        let masks = item_tags
            .iter()
            .map(|tags| {
                tags.iter().fold(0u128, |m, t| {
                    let bit = tag_of_bit.binary_search(t).expect("tag collected above");
                    m | (1u128 << bit)
                })
            })
            .collect();
        Ok(Self { masks, tag_of_bit })
    }

    /// The mask of one item.
    #[inline]
    pub fn mask(&self, item: u32) -> u128 {
        self.masks[item as usize]
    }

    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.masks.len()
    }

    /// Raw tag values of an item, ascending.
    pub fn tags(&self, item: u32) -> Vec<i32> {
        let m = self.mask(item);
        (0..self.tag_of_bit.len()).filter(|b| m >> b & 1 == 1).map(|b| self.tag_of_bit[b]).collect()
    }
}
