//! Purification latency as a serving path sees it: `&[f32]` in, tensor, purify, `Vec<f32>` out, timed per call.
//!
//! The lead's CLI benchmark runs it for T ∈ {1, 5, 10, 20, 50}, DDIM k = 2 and the distilled student at batch 1
//! (one decision) and 256 (a vectorised rollout), with libtorch on one thread (`dsrm_nn::runtime::init(1, _)`),
//! the setting of an RL run that leaves the other core to the simulator.

use crate::{Denoiser, Result};
use dsrm_nn::tch::Tensor;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Per-call wall time of one `purify` round trip, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub median_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub min_us: f64,
    /// Timed calls (after the warm-up).
    pub calls: usize,
    pub batch: i64,
}

/// Times `calls` purifications of one fixed `[batch, dim]` input after `warmup` untimed ones. Each call
/// converts a `&[f32]` to a tensor, purifies it and copies the result back into a `Vec<f32>`, as a serving path
/// would. `dim` is the denoiser's input width. A denoiser that rejects the input is an error.
pub fn measure_latency(
    denoiser: &dyn Denoiser,
    dim: i64,
    batch: i64,
    calls: usize,
    warmup: usize,
) -> Result<LatencyStats> {
    // A fixed, state-like input (values in [−1, 1], no two rows alike).
    let input: Vec<f32> = (0..batch * dim).map(|i| ((i as f32) * 0.618_034).sin()).collect();
    let round_trip = |input: &[f32]| -> Result<Vec<f32>> {
        let states = Tensor::f_from_slice(input)?.f_view([batch, dim])?;
        let purified = denoiser.try_purify(&states)?;
        Ok(Vec::<f32>::try_from(purified.f_view([-1])?)?)
    };
    for _ in 0..warmup {
        let _ = std::hint::black_box(round_trip(&input)?);
    }
    let mut times = Vec::with_capacity(calls.max(1));
    for _ in 0..calls.max(1) {
        let start = Instant::now();
        let out = round_trip(std::hint::black_box(&input))?;
        times.push(start.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(out);
    }
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median = if n % 2 == 1 { times[n / 2] } else { 0.5 * (times[n / 2 - 1] + times[n / 2]) };
    let p99 = times[((0.99 * n as f64).ceil() as usize).clamp(1, n) - 1];
    Ok(LatencyStats {
        median_us: median,
        p99_us: p99,
        mean_us: times.iter().sum::<f64>() / n as f64,
        min_us: times[0],
        calls: n,
        batch,
    })
}
