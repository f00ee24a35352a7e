//! Shared fixtures of the tests: a toy data set near a subspace, and one DSRM trained on it.

use crate::ddpm::{Ddpm, DdpmConfig};
use crate::train::TrainConfig;
use dsrm_nn::tch::Tensor;
use std::sync::{Mutex, OnceLock};

/// State width of the toy data.
pub const DIM: i64 = 16;
/// Dimension of the clean subspace.
pub const RANK: usize = 3;
/// Standard deviation of the observation noise added to the clean points.
pub const NOISE: f64 = 0.05;

/// Clean points on a RANK-dimensional subspace of R^DIM and their noisy observations.
pub struct Toy {
    pub clean: Tensor,
    pub noisy: Tensor,
}

/// A deterministic Gaussian stream independent of libtorch's global generator (no lock needed).
pub struct Normals(u64);

impl Normals {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (((z ^ (z >> 31)) >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    pub fn next(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// `n` toy points: clean = z U with z ~ N(0, I_RANK) and U an orthonormal RANK × DIM basis (fixed across calls),
/// noisy = clean + N(0, NOISE² I). `seed` picks the points.
pub fn toy(n: usize, seed: u64) -> Toy {
    single_thread();
    let d = DIM as usize;
    // The basis: Gram–Schmidt on a fixed Gaussian matrix.
    let mut basis_rng = Normals::new(12345);
    let mut basis: Vec<Vec<f64>> = Vec::new();
    while basis.len() < RANK {
        let mut v: Vec<f64> = (0..d).map(|_| basis_rng.next()).collect();
        for b in &basis {
            let dot: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
            v.iter_mut().zip(b).for_each(|(x, y)| *x -= dot * y);
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        basis.push(v.into_iter().map(|x| x / norm).collect());
    }
    let mut rng = Normals::new(seed);
    let mut clean = Vec::with_capacity(n * d);
    let mut noisy = Vec::with_capacity(n * d);
    for _ in 0..n {
        let z: Vec<f64> = (0..RANK).map(|_| rng.next()).collect();
        for j in 0..d {
            let c: f64 = z.iter().zip(&basis).map(|(zk, b)| zk * b[j]).sum();
            clean.push(c as f32);
            noisy.push((c + NOISE * rng.next()) as f32);
        }
    }
    let shape = [n as i64, DIM];
    Toy { clean: Tensor::from_slice(&clean).view(shape), noisy: Tensor::from_slice(&noisy).view(shape) }
}

/// Mean squared difference.
pub fn mse(a: &Tensor, b: &Tensor) -> f64 {
    a.mse_loss(b, dsrm_nn::tch::Reduction::Mean).double_value(&[])
}

/// Largest absolute difference.
pub fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// The toy DSRM's settings: the default schedule (T = 10, s = 0.1) and network, with a faster optimiser so the
/// debug-profile tests stay quick.
pub fn toy_config() -> DdpmConfig {
    DdpmConfig {
        train: TrainConfig { lr: 1e-3, batch_size: 100, max_epochs: 150, patience: 10, seed: 7, max_grad_norm: None },
        ..Default::default()
    }
}

/// libtorch on one intra-op thread for the whole test binary: the tests run on several threads of a shared
/// 2-core machine, where libtorch's default (one thread per core, spinning) made small fits ~14× slower.
pub fn single_thread() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| dsrm_nn::tch::set_num_threads(1));
}

/// [`single_thread`], then `dsrm_nn::runtime::exclusive()`: the guard for seeded sections.
pub fn lock() -> std::sync::MutexGuard<'static, ()> {
    single_thread();
    dsrm_nn::runtime::exclusive()
}

/// One DSRM trained on the toy data (2,000 training, 400 validation points), shared by the tests that need a
/// trained model (a shallow clone each: tensors are `Send`, not `Sync`). Callers must not hold [`lock`].
pub fn toy_ddpm() -> Ddpm {
    static MODEL: OnceLock<Mutex<Ddpm>> = OnceLock::new();
    let model = MODEL.get_or_init(|| {
        let _torch = lock();
        let (train, valid) = (toy(2000, 1), toy(400, 2));
        let (model, _report) = Ddpm::fit(&train.noisy, &valid.noisy, &toy_config(), &mut |_| {}).unwrap();
        Mutex::new(model)
    });
    model.lock().unwrap_or_else(|p| p.into_inner()).shallow_clone().unwrap()
}
