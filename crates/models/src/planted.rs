//! Planted test data shared by the user models' tests: a low-rank matrix with biases, and 0/1 labels of one
//! with a share of them flipped (the noise the denoising losses and BOD are tested against).

use crate::{Interactions, MfConfig, MfLoss};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A planted rank-2 matrix with biases, `n_users × n_items`, and a random split of its cells.
pub(crate) fn planted(
    n_users: usize,
    n_items: usize,
    train_frac: f64,
    seed: u64,
) -> (Interactions, Interactions, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let u: Vec<[f64; 2]> = (0..n_users).map(|_| [rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)]).collect();
    let v: Vec<[f64; 2]> = (0..n_items).map(|_| [rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)]).collect();
    let bu: Vec<f64> = (0..n_users).map(|_| rng.gen_range(-0.3..0.3)).collect();
    let bi: Vec<f64> = (0..n_items).map(|_| rng.gen_range(-0.3..0.3)).collect();
    let mut truth = vec![0.0; n_users * n_items];
    let empty = || Interactions { n_users, n_items, ..Default::default() };
    let (mut train, mut test) = (empty(), empty());
    for a in 0..n_users {
        for b in 0..n_items {
            let y = 1.0 + bu[a] + bi[b] + u[a][0] * v[b][0] + u[a][1] * v[b][1];
            truth[a * n_items + b] = y;
            let part = if rng.gen::<f64>() < train_frac { &mut train } else { &mut test };
            part.user.push(a as u32);
            part.item.push(b as u32);
            part.target.push(y);
        }
    }
    (train, test, truth)
}

/// 0/1 labels of a planted rank-2 matrix (positive where the score is above the median), every cell
/// observed, with a `flip` share of labels flipped (the noise), and which cells were flipped.
pub(crate) fn noisy_clicks(flip: f64, seed: u64) -> (Interactions, Vec<bool>, Vec<f64>) {
    let (all, _, truth) = planted(60, 50, 1.0, seed);
    let mut sorted = truth.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
    let mut flipped = Vec::new();
    let mut data = all.clone();
    for (k, t) in data.target.iter_mut().enumerate() {
        let clean = f64::from(u8::from(truth[all.user[k] as usize * 50 + all.item[k] as usize] > median));
        let f = rng.gen::<f64>() < flip;
        flipped.push(f);
        *t = if f { 1.0 - clean } else { clean };
    }
    let clean: Vec<f64> = data.target.iter().zip(&flipped).map(|(&t, &f)| if f { 1.0 - t } else { t }).collect();
    (data, flipped, clean)
}

/// The logistic MF the denoising-loss and BOD tests fit to [`noisy_clicks`].
pub(crate) fn noisy_clicks_mf() -> MfConfig {
    MfConfig {
        dim: 16,
        epochs: 150,
        learning_rate: 0.05,
        regularization: 0.001,
        loss: MfLoss::Logistic,
        ..MfConfig::default()
    }
}
