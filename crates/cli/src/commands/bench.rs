//! `dsrm bench env`: environment steps per second for a uniform-random policy, resets included, on one and
//! on several threads. Each thread steps its own batch of episodes over the shared read-only environment.

use crate::output;
use anyhow::Result;
use clap::Subcommand;
use dsrm_sim::vec_env::{rollout_random, RolloutStats};
use dsrm_sim::{Preset, World};
use dsrm_study::config::RunConfig;
use dsrm_study::loading;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Open-loop load on a running `dsrm serve` (recommend + feedback sessions): achieved rate, p50 / p99 /
    /// p99.9 latency from each request's scheduled send time, errors; --ramp finds the highest rate held.
    Serve(ServeBenchArgs),
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
    /// Purification latency of the DSRM denoisers (DDPM with T in {1,5,10,20,50}, DDIM k = 2, the distilled
    /// one-step student, VAE, flow with K in {1, 4} Euler steps, identity) at batch 1 and 256, including the
    /// &[f32] -> tensor -> Vec<f32> round trip.
    /// Latency does not depend on the weights, so the models are fitted for one epoch on random 42-d states.
    Denoise {
        /// libtorch intra-op threads (the serving goal is stated for one core).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// State dimension (42 = KuaiRec's `avg` state).
        #[arg(long, default_value_t = 42)]
        dim: i64,
        /// Width of the history-summary condition the diffusion and flow denoisers also read (42: the default
        /// DSRM's 20-step summary of the 42-d state; 0: unconditional). Identity and VAE read the state alone.
        #[arg(long, default_value_t = 42)]
        cond_dim: i64,
        /// Timed calls at batch 1 (a tenth of that at batch 256).
        #[arg(long, default_value_t = 5000)]
        calls: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `dsrm bench serve`'s flags.
#[derive(clap::Args)]
pub struct ServeBenchArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Instead of a server: load this run and time its decision path in process (no HTTP), one thread,
    /// libtorch on one core, --requests recommendations.
    #[arg(long, conflicts_with_all = ["rps", "ramp"])]
    in_process: Option<PathBuf>,
    /// With --in-process: the policy's networks on libtorch, as `dsrm serve --libtorch-heads`.
    #[arg(long, requires = "in_process")]
    libtorch_heads: bool,
    /// Recommendations timed with --in-process.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Offered requests per second (open loop).
    #[arg(long, conflicts_with = "ramp", required_unless_present_any = ["ramp", "in_process"])]
    rps: Option<f64>,
    /// Raise the rate (from --ramp-start, x --ramp-factor per step) until p99 exceeds --p99-limit-us, an
    /// error occurs or under 95% of the offered rate is achieved; report the highest rate held.
    #[arg(long)]
    ramp: bool,
    #[arg(long, default_value_t = 500.0)]
    ramp_start: f64,
    #[arg(long, default_value_t = 1.5)]
    ramp_factor: f64,
    /// The p99 a ramp step must keep, microseconds.
    #[arg(long, default_value_t = 10_000)]
    p99_limit_us: u64,
    /// Steps of a ramp at most.
    #[arg(long, default_value_t = 12)]
    ramp_steps: usize,
    /// Seconds per measurement (per ramp step).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Consumed items per simulated session.
    #[arg(long, default_value_t = 20)]
    session_length: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn bench_serve(args: ServeBenchArgs) -> Result<()> {
    use dsrm_serve::bench;
    if !(args.duration.is_finite() && args.duration > 0.0) {
        anyhow::bail!("--duration must be a positive number of seconds");
    }
    let cfg = bench::BenchConfig {
        url: args.url.clone(),
        rps: args.rps.unwrap_or(args.ramp_start),
        duration: std::time::Duration::from_secs_f64(args.duration),
        concurrency: args.concurrency,
        session_length: args.session_length.max(1),
        seed: args.seed,
    };
    let mut t =
        output::table(&["offered rps", "achieved rps", "requests", "errors", "p50 µs", "p99 µs", "p99.9 µs", "max µs"]);
    let row = |r: &bench::BenchReport| {
        vec![
            format!("{:.0}", r.offered_rps),
            format!("{:.0}", r.rps),
            r.requests.to_string(),
            r.errors.to_string(),
            r.p50_us.to_string(),
            r.p99_us.to_string(),
            r.p999_us.to_string(),
            r.max_us.to_string(),
        ]
    };
    let record = if let Some(run) = &args.in_process {
        let loaded = dsrm_serve::loaded::load(run, &[], None, &output::progress())?;
        let metrics = std::sync::Arc::new(dsrm_serve::metrics::Metrics::new()?);
        let settings = dsrm_serve::EngineSettings { libtorch_heads: args.libtorch_heads, ..Default::default() };
        let mut engine = dsrm_serve::Engine::new(loaded, settings, metrics, None)?;
        let r = bench::in_process(&mut engine, args.requests, cfg.session_length, args.seed)?;
        t.add_row(row(&r));
        println!("{t}");
        let summary = bench::summary_json(&r);
        println!("{summary}");
        json!({"bench": "serve", "run": run, "mode": "in-process", "libtorch_heads": args.libtorch_heads, "result": summary})
    } else if args.ramp {
        let ramp = bench::ramp(&cfg, args.ramp_factor, args.p99_limit_us, args.ramp_steps)?;
        ramp.steps.iter().for_each(|r| {
            t.add_row(row(r));
        });
        println!("{t}");
        match &ramp.held {
            Some(h) => {
                println!("highest rate held (0 errors, p99 <= {} µs): {:.0} requests/s", ramp.p99_limit_us, h.rps)
            }
            None => println!("no rate held (the first step already broke: p99 > {} µs or errors)", ramp.p99_limit_us),
        }
        let held = ramp.held.as_ref().map(bench::summary_json).unwrap_or(serde_json::Value::Null);
        let steps: Vec<_> = ramp.steps.iter().map(bench::summary_json).collect();
        println!("{held}");
        json!({"bench": "serve", "url": args.url, "mode": "ramp", "p99_limit_us": ramp.p99_limit_us, "held": held, "steps": steps})
    } else {
        let r = bench::run(&cfg)?;
        t.add_row(row(&r));
        println!("{t}");
        let summary = bench::summary_json(&r);
        println!("{summary}");
        json!({"bench": "serve", "url": args.url, "mode": "fixed", "result": summary})
    };
    if let Some(path) = args.out {
        dsrm_files::write_json(&path, &record)?;
    }
    Ok(())
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Serve(args) => bench_serve(args),
        BenchCommand::Denoise { threads, dim, cond_dim, calls, out } => {
            bench_denoise(threads, dim, cond_dim, calls, out)
        }
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
    let mut t = output::table(&["workload", "figure"]);
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
        dsrm_files::write_json(&path, &json!({"bench": "nn", "threads": threads, "results": rows}))?;
    }
    Ok(())
}

fn bench_denoise(threads: usize, dim: i64, cond_dim: i64, calls: usize, out: Option<PathBuf>) -> Result<()> {
    use dsrm_denoise::{
        measure_latency, Ddim, Ddpm, DdpmConfig, Denoiser, Distilled, Flow, FlowConfig, Identity, ScheduleConfig,
        StudentConfig, TrainConfig, Vae, VaeConfig,
    };
    use dsrm_nn::tch::{Device, Kind, Tensor};
    dsrm_nn::runtime::init(threads, 0);
    anyhow::ensure!(dim > 0 && cond_dim >= 0, "--dim must be > 0 and --cond-dim >= 0");
    // Diffusion denoisers read [state ⊕ condition]; identity and VAE the state alone.
    let data = Tensor::randn([2000, dim + cond_dim], (Kind::Float, Device::Cpu)) * 0.1;
    let states = data.narrow(1, 0, dim);
    let quick = TrainConfig { max_epochs: 1, ..Default::default() };
    let mut denoisers: Vec<Box<dyn Denoiser>> = vec![Box::new(Identity::new(dim))];
    let mut t10 = None;
    for steps in [1, 5, 10, 20, 50] {
        let cfg = DdpmConfig {
            schedule: ScheduleConfig { steps, ..Default::default() },
            train: quick.clone(),
            cond_dim,
            ..Default::default()
        };
        let (model, _) = Ddpm::fit(&data, &data, &cfg, &mut |_| {})?;
        if steps == 10 {
            t10 = Some(model.shallow_clone()?);
        }
        denoisers.push(Box::new(model));
    }
    let t10 = t10.expect("T = 10 is in the list");
    denoisers.push(Box::new(Ddim::new(&t10, 2)?));
    let student = StudentConfig { train: quick.clone(), ..Default::default() };
    denoisers.push(Box::new(Distilled::fit(&t10, &data, &data, &student, &mut |_| {})?.0));
    denoisers.push(Box::new(
        Vae::fit(&states, &states, &VaeConfig { train: quick.clone(), ..Default::default() }, &mut |_| {})?.0,
    ));
    // The flow as the stage builds it: its network reads o_t ⊕ h (towards a clean target), K = 1 and the default 4.
    for ode_steps in [1, 4] {
        let cfg =
            FlowConfig { ode_steps, cond_dim, observed_condition: true, train: quick.clone(), ..Default::default() };
        denoisers.push(Box::new(Flow::fit_towards(&data, Some(&states), &data, Some(&states), &cfg, &mut |_| {})?.0));
    }

    let mut t = output::table(&[
        "denoiser",
        "network evals",
        "batch 1 median µs",
        "batch 1 p99 µs",
        "batch 256 median µs",
        "batch 256 p99 µs",
    ]);
    let mut rows = Vec::new();
    let pb = output::bar(denoisers.len() as u64, "timing");
    for den in &denoisers {
        let width = den.input_dim();
        let one = measure_latency(den.as_ref(), width, 1, calls, calls / 10)?;
        let many = measure_latency(den.as_ref(), width, 256, (calls / 10).max(10), (calls / 100).max(1))?;
        t.add_row(vec![
            den.name(),
            den.steps().to_string(),
            format!("{:.1}", one.median_us),
            format!("{:.1}", one.p99_us),
            format!("{:.1}", many.median_us),
            format!("{:.1}", many.p99_us),
        ]);
        rows.push(json!({"denoiser": den.name(), "steps": den.steps(), "batch1": {"median_us": one.median_us, "p99_us": one.p99_us}, "batch256": {"median_us": many.median_us, "p99_us": many.p99_us}}));
        pb.inc(1);
    }
    pb.finish_and_clear();
    println!("purification latency, state dim {dim}, condition dim {cond_dim}, {threads} libtorch thread(s)\n{t}");
    if let Some(path) = out {
        let record = json!({"bench": "denoise", "threads": threads, "dim": dim, "cond_dim": cond_dim, "results": rows});
        dsrm_files::write_json(&path, &record)?;
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
    let mut t = output::table(&["preset", "threads", "steps/s (median)", "mean length", "reward/step"]);
    for preset in [Preset::DorlPaper, Preset::Easyrl4recPaper] {
        let mut cfg = RunConfig::default();
        cfg.data.dir = data.clone();
        cfg.env = preset.into();
        let world = loading::load_world(&cfg, &output::progress())?;
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
        dsrm_files::write_json(&path, &json!({"bench": "env", "results": rows}))?;
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
