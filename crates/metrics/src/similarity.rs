//! Pairwise item similarity, the ingredient of EasyRL4Rec's Diversity (`docs/protocol.md` §6.1, "EasyRL4Rec
//! similarity and popularity"): Jaccard of raw tag sets on KuaiRec, 1 / (1 + Euclidean distance between
//! ground-truth columns) on KuaiRand.

/// A similarity between two catalogue items, expected in [0, 1] with 1 for an item and itself.
///
/// Diversity asks for it once per position pair of an episode, so implementations should be cheap and
/// must not panic on any id (an id outside the catalogue should read as "shares nothing").
pub trait ItemSimilarity {
    /// Similarity of items `a` and `b` (dense catalogue ids).
    fn similarity(&self, a: u32, b: u32) -> f64;
}

/// KuaiRec's similarity: the Jaccard index |A ∩ B| / |A ∪ B| of the two items' raw tag **sets**.
///
/// Tag lists are deduplicated and sorted once at construction, so a lookup is a linear merge with no
/// allocation. An item is always 1 with itself (even when untagged); two distinct untagged items, or an
/// id outside the catalogue, give 0 (an empty union shares nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagJaccard {
    sets: Vec<Vec<i32>>,
}

impl TagJaccard {
    /// Builds the similarity from one raw tag list per dense item.
    pub fn new(tags: &[Vec<i32>]) -> Self {
        let sets = tags
            .iter()
            .map(|t| {
                let mut s = t.clone();
                s.sort_unstable();
                s.dedup();
                s
            })
            .collect();
        Self { sets }
    }

    /// Number of items the similarity was built for.
    pub fn n_items(&self) -> usize {
        self.sets.len()
    }
}

impl ItemSimilarity for TagJaccard {
    fn similarity(&self, a: u32, b: u32) -> f64 {
        if a == b {
            return 1.0;
        }
        let (Some(x), Some(y)) = (self.sets.get(a as usize), self.sets.get(b as usize)) else {
            return 0.0;
        };
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
}

/// A similarity derived from any distance: sim(a, b) = 1 / (1 + d(a, b)).
///
/// This is how EasyRL4Rec turns KuaiRand's column distances into a similarity; wrap whatever computes the
/// distance (a precomputed table, a low-rank completion) in a closure. A negative or NaN distance is the
/// caller's bug and is passed through the formula unchanged.
pub struct DistanceSimilarity<F> {
    distance: F,
}

impl<F: Fn(u32, u32) -> f64> DistanceSimilarity<F> {
    /// Wraps a distance function `d(a, b)`.
    pub fn new(distance: F) -> Self {
        Self { distance }
    }
}

impl<F: Fn(u32, u32) -> f64> ItemSimilarity for DistanceSimilarity<F> {
    fn similarity(&self, a: u32, b: u32) -> f64 {
        1.0 / (1.0 + (self.distance)(a, b))
    }
}

impl<F> std::fmt::Debug for DistanceSimilarity<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DistanceSimilarity(..)")
    }
}

/// KuaiRand's similarity: 1 / (1 + ‖x_a − x_b‖₂) over one vector per item (EasyRL4Rec uses the item's
/// column of the ground-truth matrix, i.e. its rewards for every user).
///
/// Vectors are stored item-major so one distance reads two contiguous rows. An id outside the catalogue
/// is infinitely far (similarity 0); an item is always 1 with itself.
#[derive(Debug, Clone, PartialEq)]
pub struct EuclideanSimilarity {
    dim: usize,
    vectors: Vec<f64>,
}

impl EuclideanSimilarity {
    /// Takes `n_items * dim` values, item `i` at `[i * dim, (i + 1) * dim)`. A trailing partial row is
    /// ignored; `dim == 0` gives an empty catalogue.
    pub fn from_item_major(vectors: Vec<f64>, dim: usize) -> Self {
        let mut vectors = vectors;
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        vectors.truncate(n * dim);
        Self { dim, vectors }
    }

    /// Takes a row-major `n_users * n_items` ground-truth matrix and keeps its columns as item vectors
    /// (the EasyRL4Rec KuaiRand definition). Cells beyond the slice read as 0.
    pub fn from_user_item_columns(matrix: &[f64], n_users: usize, n_items: usize) -> Self {
        let mut vectors = vec![0.0; n_users * n_items];
        for u in 0..n_users {
            for i in 0..n_items {
                vectors[i * n_users + u] = matrix.get(u * n_items + i).copied().unwrap_or(0.0);
            }
        }
        Self { dim: n_users, vectors }
    }

    /// Number of item vectors.
    pub fn n_items(&self) -> usize {
        self.vectors.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Euclidean distance between two items' vectors; +∞ when either id is outside the catalogue.
    pub fn distance(&self, a: u32, b: u32) -> f64 {
        let (a, b) = (a as usize, b as usize);
        let n = self.n_items();
        if a >= n || b >= n {
            return f64::INFINITY;
        }
        let x = &self.vectors[a * self.dim..(a + 1) * self.dim];
        let y = &self.vectors[b * self.dim..(b + 1) * self.dim];
        x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum::<f64>().sqrt()
    }
}

impl ItemSimilarity for EuclideanSimilarity {
    fn similarity(&self, a: u32, b: u32) -> f64 {
        if a == b {
            return 1.0;
        }
        1.0 / (1.0 + self.distance(a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaccard_of_tag_sets() {
        // Item 0 {1, 2, 3}, item 1 {2, 3, 4} (dup 3 ignored), item 2 {} , item 3 {} .
        let s = TagJaccard::new(&[vec![3, 1, 2], vec![2, 3, 3, 4], vec![], vec![]]);
        // |{2,3}| / |{1,2,3,4}| = 2/4.
        assert_eq!(s.similarity(0, 1), 0.5);
        assert_eq!(s.similarity(1, 0), 0.5);
        assert_eq!(s.similarity(0, 0), 1.0);
        // Untagged: identical item is 1, two distinct untagged items share nothing.
        assert_eq!(s.similarity(2, 2), 1.0);
        assert_eq!(s.similarity(2, 3), 0.0);
        assert_eq!(s.similarity(0, 2), 0.0);
        // Outside the catalogue.
        assert_eq!(s.similarity(0, 99), 0.0);
        assert_eq!(s.n_items(), 4);
    }

    #[test]
    fn distance_similarity_formula() {
        let s = DistanceSimilarity::new(|a: u32, b: u32| (a as f64 - b as f64).abs());
        assert_eq!(s.similarity(2, 2), 1.0);
        assert_eq!(s.similarity(1, 4), 0.25); // 1 / (1 + 3)
    }

    #[test]
    fn euclidean_columns() {
        // 2 users x 3 items, row-major: u0 = [0, 3, 0], u1 = [0, 4, 1].
        let m = [0.0, 3.0, 0.0, 0.0, 4.0, 1.0];
        let s = EuclideanSimilarity::from_user_item_columns(&m, 2, 3);
        assert_eq!(s.n_items(), 3);
        // Columns: i0 = (0, 0), i1 = (3, 4), i2 = (0, 1).
        assert_eq!(s.distance(0, 1), 5.0);
        assert_eq!(s.similarity(0, 1), 1.0 / 6.0);
        assert_eq!(s.similarity(0, 2), 0.5);
        assert_eq!(s.similarity(1, 1), 1.0);
        assert_eq!(s.similarity(0, 3), 0.0);
        let t = EuclideanSimilarity::from_item_major(vec![0.0, 0.0, 3.0, 4.0, 9.0], 2);
        assert_eq!(t.n_items(), 2);
        assert_eq!(t.distance(0, 1), 5.0);
    }
}
