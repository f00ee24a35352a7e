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
    /// Neural-network speed on the workloads of `bench/nn_vs_pytorch.py`: an MLP 128-256-256-128 (SiLU) training
    /// step at batch 256 (forward, MSE, backward, Adam; loss read back) and batch-1 inference latency.
    Nn {
        /// libtorch intra-op threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, default_value_t = 2000)]
        steps: usize,
        #[arg(long, default_value_t = 10_000)]
        calls: usize,
        /// Also write the results as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Env { data, steps, batch, threads, repeats, out } => {
            bench_env(data, steps, batch, threads, repeats, out)
        }
        BenchCommand::Nn { threads, steps, calls, out } => bench_nn(threads, steps, calls, out),
    }
}

fn bench_nn(threads: usize, steps: usize, calls: usize, out: Option<PathBuf>) -> Result<()> {
    use dsrm_nn::mlp::{Activation, Mlp};
    use dsrm_nn::optim::{Adam, AdamConfig};
    use dsrm_nn::tch::nn::{self, Module, OptimizerConfig};
    use dsrm_nn::tch::{Device, Kind, Tensor};
    dsrm_nn::runtime::init(threads, 0);
    let sizes = [128, 256, 256, 128];
    let x = Tensor::randn([256, 128], (Kind::Float, Device::Cpu));
    let y = Tensor::randn([256, 128], (Kind::Float, Device::Cpu));
    let mut rows = Vec::new();
    // (a) training steps with libtorch's Adam and with our checkpointable Adam.
    for which in ["tch Adam", "dsrm Adam (checkpointable)"] {
        let vs = nn::VarStore::new(Device::Cpu);
        let mlp = Mlp::new(&vs.root(), &sizes, Activation::Silu);
        let mut torch_adam = nn::Adam::default().build(&vs, 1e-3)?;
        let mut ours = Adam::new(&vs, AdamConfig::default());
        let mut step = |n: usize| -> Result<f64> {
            let mut last = 0.0;
            for _ in 0..n {
                let loss = mlp.forward(&x).mse_loss(&y, dsrm_nn::tch::Reduction::Mean);
                if which == "tch Adam" {
                    torch_adam.backward_step(&loss);
                } else {
                    ours.backward_step(&loss)?;
                }
                last = loss.double_value(&[]);
            }
            Ok(last)
        };
        step(100)?;
        let start = Instant::now();
        step(steps)?;
        let rate = steps as f64 / start.elapsed().as_secs_f64();
        rows.push(json!({"workload": "mlp_train_step_b256", "optimizer": which, "steps_per_second": rate}));
    }
    // (c) batch-1 inference latency: &[f32] -> tensor -> forward -> Vec<f32>.
    let vs = nn::VarStore::new(Device::Cpu);
    let mlp = Mlp::new(&vs.root(), &sizes, Activation::Silu);
    let input: Vec<f32> = (0..128).map(|i| i as f32 / 128.0).collect();
    let mut times = Vec::with_capacity(calls);
    let _guard = dsrm_nn::tch::no_grad_guard();
    for i in 0..calls + 500 {
        let start = Instant::now();
        let t = Tensor::from_slice(&input).reshape([1, 128]);
        let out: Vec<f32> = Vec::try_from(mlp.forward(&t).reshape([-1]))?;
        std::hint::black_box(out);
        if i >= 500 {
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    rows.push(json!({"workload": "mlp_infer_b1", "median_us": median, "p99_us": times[times.len() * 99 / 100]}));
    let mut t = output::table(["workload", "figure"].map(String::from).to_vec());
    for r in &rows {
        let figure = match r.get("steps_per_second") {
            Some(v) => format!("{:.0} steps/s ({})", v.as_f64().unwrap_or(0.0), r["optimizer"].as_str().unwrap_or("")),
            None => format!(
                "median {:.1} µs, p99 {:.1} µs",
                r["median_us"].as_f64().unwrap_or(0.0),
                r["p99_us"].as_f64().unwrap_or(0.0)
            ),
        };
        t.add_row(vec![r["workload"].as_str().unwrap_or("").to_string(), figure]);
    }
    println!("libtorch {threads} thread(s)\n{t}");
    if let Some(path) = out {
        output::write_json(&path, &json!({"bench": "nn", "threads": threads, "results": rows}))?;
    }
    Ok(())
}

fn bench_env(
    data: Option<PathBuf>,
    steps: u64,
    batch: usize,
    threads: Vec<usize>,
    repeats: usize,
    out: Option<PathBuf>,
) -> Result<()> {
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
