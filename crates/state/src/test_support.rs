//! Helpers shared by the tests of this crate.

use crate::embedding::ItemTable;
use crate::HistoryBatch;
use dsrm_nn::tch::{self, Device, Tensor};
use std::sync::MutexGuard;

/// Takes libtorch's generator lock (`dsrm_nn::runtime::exclusive`: tests run on several threads, and a test
/// that seeds the global generator must not have another consume numbers in between) and seeds it.
pub fn seeded(seed: i64) -> MutexGuard<'static, ()> {
    let guard = dsrm_nn::runtime::exclusive();
    // Tests already run on several threads; one libtorch thread each avoids oversubscribing the cores.
    tch::set_num_threads(1);
    tch::manual_seed(seed);
    guard
}

/// Overwrites the table's start row.
pub fn set_start(table: &ItemTable, values: &[f32]) {
    let mut row = table.weight().get(table.start_id());
    tch::no_grad(|| row.copy_(&Tensor::from_slice(values)));
}

/// Asserts a 1-D float tensor equals `want` within 1e-5.
pub fn assert_close(got: &Tensor, want: &[f32], what: &str) {
    let got = Vec::<f32>::try_from(got).unwrap();
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{what}: {got:?} vs {want:?}");
    }
}

/// xorshift64*: test data that does not touch libtorch's generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Random episodes: `(user, items, rewards)` with lengths in `min_t..=max_t` and rewards in [0, 5).
pub fn random_histories(
    b: usize,
    min_t: usize,
    max_t: usize,
    n_items: usize,
    seed: u64,
) -> Vec<(u32, Vec<u32>, Vec<f64>)> {
    let mut rng = Rng::new(seed);
    (0..b)
        .map(|u| {
            let t = min_t + rng.below((max_t - min_t + 1) as u64) as usize;
            let items = (0..t).map(|_| rng.below(n_items as u64) as u32).collect();
            let rewards = (0..t).map(|_| 5.0 * rng.unit()).collect();
            (u as u32, items, rewards)
        })
        .collect()
}

/// A batch of random episodes with lengths in `0..=max_t`.
pub fn random_batch(b: usize, max_t: usize, window: usize, n_items: usize, seed: u64) -> HistoryBatch {
    batch_of(&random_histories(b, 0, max_t, n_items, seed), window, n_items)
}

/// Builds a `HistoryBatch` on the CPU from owned histories.
pub fn batch_of(histories: &[(u32, Vec<u32>, Vec<f64>)], window: usize, n_items: usize) -> HistoryBatch {
    let refs: Vec<(u32, &[u32], &[f64])> = histories.iter().map(|(u, i, r)| (*u, &i[..], &r[..])).collect();
    HistoryBatch::new(&refs, window, n_items, Device::Cpu)
}
