//! `dsrm bench env`: environment steps per second for a uniform-random policy, resets included, on one and
//! on several threads. Each thread steps its own batch of episodes over the shared read-only environment.

use crate::config::RunConfig;
use crate::{loading, output};
use anyhow::Result;
use clap::Subcommand;
use dsrm_sim::vec_env::{rollout_random, RolloutStats};
use dsrm_sim::{Preset, World};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Steps/s of the ground-truth environment under a random policy (dorl-paper and easyrl4rec-paper).
    Env {
        /// Real KuaiRec directory; default: the cached full-size synthetic KuaiRec.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Steps per measurement (split across threads).
        #[arg(long, default_value_t = 50_000_000)]
        steps: u64,
        /// Concurrent episodes per thread.
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Thread counts to measure.
        #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 2])]
        threads: Vec<usize>,
        /// Repetitions; the median is reported.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Also write the results as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    let BenchCommand::Env { data, steps, batch, threads, repeats, out } = cmd;
    let mut rows = Vec::new();
    let mut t = output::table(
        ["preset", "threads", "steps/s (median)", "mean length", "reward/step"].map(String::from).to_vec(),
    );
    for preset in [Preset::DorlPaper, Preset::Easyrl4recPaper] {
        let mut cfg = RunConfig::default();
        cfg.data.dir = data.clone();
        cfg.env = preset.into();
        let world = loading::load_world(&cfg)?;
        for &n in &threads {
            let mut rates = Vec::new();
            let mut stats = RolloutStats::default();
            for rep in 0..repeats.max(1) {
                let (rate, s) = measure(&world, n.max(1), steps, batch, rep as u64);
                rates.push(rate);
                stats = s;
            }
            rates.sort_by(f64::total_cmp);
            let median = rates[rates.len() / 2];
            t.add_row(vec![
                preset.name().into(),
                n.to_string(),
                format!("{median:.3e}"),
                format!("{:.2}", stats.mean_length()),
                format!("{:.4}", stats.reward / stats.steps as f64),
            ]);
            rows.push(json!({"preset": preset.name(), "threads": n, "steps_per_second": median, "all_rates": rates, "mean_length": stats.mean_length(), "steps": steps, "batch": batch, "synthetic": world.is_synthetic()}));
        }
    }
    println!("environment steps/s, uniform-random policy, resets included\n{t}");
    if let Some(path) = out {
        output::write_json(&path, &json!({"bench": "env", "results": rows}))?;
    }
    Ok(())
}

/// Runs `steps` random steps split over `threads` threads; returns (steps/s, totals).
fn measure(world: &World, threads: usize, steps: u64, batch: usize, seed: u64) -> (f64, RolloutStats) {
    let per_thread = steps / threads as u64;
    let start = Instant::now();
    let parts: Vec<RolloutStats> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let spec = &world.spec;
                scope.spawn(move || {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed * 1000 + i as u64);
                    rollout_random(spec, batch, per_thread, &mut rng)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("bench thread")).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut total = RolloutStats::default();
    parts.iter().for_each(|p| total.merge(p));
    (total.steps as f64 / secs, total)
}
