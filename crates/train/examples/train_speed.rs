//! Training throughput of A2C (or PPO) in the simulated KuaiRec environment: env steps/s of collection +
//! updates, and the evaluation time per epoch.
//!
//! ```sh
//! cargo run --release -p dsrm-train --example train_speed -- [DATA_DIR] [STEPS] [THREADS] [a2c|ppo] [TORCH_THREADS]
//! ```
//!
//! DATA_DIR defaults to the cached full-size synthetic KuaiRec (`.cache/dsrm/synthetic-kuairec-full-seed0`).
//! The training reward is the ground truth (a table lookup, like the world model's grid lookup), so the
//! figure measures the agent, not a particular world model.

use dsrm_agents::{A2cConfig, Algorithm, PpoConfig};
use dsrm_eval::{EvalConfig, MetricInputs};
use dsrm_sim::{GroundTruthReward, Preset, World};
use dsrm_train::{train, ProgressEvent, TrainConfig};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map(PathBuf::from).unwrap_or_else(|| ".cache/dsrm/synthetic-kuairec-full-seed0".into());
    let steps: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let threads: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let algorithm = match args.get(4).map(String::as_str) {
        Some("ppo") => Algorithm::Ppo(PpoConfig::default()),
        _ => Algorithm::A2c(A2cConfig::default()),
    };
    let torch_threads: usize = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(1);
    dsrm_nn::runtime::init(torch_threads, 0);

    let t = Instant::now();
    let data = dsrm_data::kuairec::load(&dir, &Default::default())?;
    let world = World::kuairec(&data, Preset::DorlPaper.settings(), &Default::default())?;
    drop(data);
    let inputs = MetricInputs::new(&world, Default::default());
    let reward = GroundTruthReward::new(&world.spec.rewards);
    eprintln!("loaded {} x {} in {:.1}s", world.spec.n_users(), world.spec.n_items(), t.elapsed().as_secs_f64());

    let cfg = TrainConfig {
        algorithm,
        epochs: 1,
        steps_per_epoch: steps,
        threads,
        torch_threads,
        eval: EvalConfig { episodes: 100, ..Default::default() },
        ..Default::default()
    };
    let out = tempfile::tempdir()?;
    let mut collections = 0usize;
    let summary = train(&cfg, &world, &inputs, &reward, None, out.path(), false, &mut |e| {
        if let ProgressEvent::Collected { .. } = e {
            collections += 1;
        }
    })?;
    let timing = std::fs::read_to_string(out.path().join("timing.jsonl"))?;
    let line: serde_json::Value = serde_json::from_str(timing.lines().next().unwrap_or("{}"))?;
    println!(
        "{} ({} eval threads, {} libtorch threads): {} env steps in {} collections; train {:.2}s (collect {:.2}s, update {:.2}s) = {:.0} env steps/s; evaluation (9 x 100 episodes) {:.2}s",
        summary.algorithm,
        threads,
        torch_threads,
        summary.total_env_steps,
        collections,
        line["train_s"].as_f64().unwrap_or(f64::NAN),
        line["collect_s"].as_f64().unwrap_or(f64::NAN),
        line["update_s"].as_f64().unwrap_or(f64::NAN),
        line["train_env_steps_per_s"].as_f64().unwrap_or(f64::NAN),
        line["eval_s"].as_f64().unwrap_or(f64::NAN),
    );
    println!("test NX_0 R_tra after one epoch: {:.3}", summary.selected["sampled"]["NX_0"].r_tra);
    Ok(())
}
