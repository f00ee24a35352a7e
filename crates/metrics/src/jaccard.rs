//! Jaccard overlap of two sets given as sorted, deduplicated slices: |x ∩ y| / |x ∪ y| (0 when both are empty).
//! Shared by the tag similarity ([`crate::similarity::TagJaccard`]) and homogenisation
//! ([`crate::homogenisation`]).

/// |x ∩ y| / |x ∪ y| of sorted, deduplicated `x` and `y`, by one merge pass; 0 when the union is empty.
pub fn sorted_jaccard<T: Ord>(x: &[T], y: &[T]) -> f64 {
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = x.len() + y.len() - common;
    if union == 0 {
        0.0
    } else {
        common as f64 / union as f64
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn overlap_of_sorted_sets() {
        assert_eq!(super::sorted_jaccard(&[1, 2, 3], &[2, 3, 4]), 0.5);
        assert_eq!(super::sorted_jaccard::<u32>(&[], &[]), 0.0);
        assert_eq!(super::sorted_jaccard(&[-1], &[7]), 0.0);
    }
}
