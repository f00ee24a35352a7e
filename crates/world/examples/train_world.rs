//! Trains DORL's world model on a KuaiRec directory and reports how long each part takes.
//!
//! ```text
//! cargo run --release -p dsrm-world --example train_world -- <kuairec dir> [models] [epochs] [threads] [workers] [out.ckpt]
//! ```
//!
//! Defaults: 1 model, 1 epoch, 1 libtorch thread, 1 worker (a one model-epoch timing). On the 2-core
//! machine the full ensemble runs fastest as `5 5 1 2`. With an output path the ensemble is saved there.

use dsrm_sim::{RewardModel, World};
use dsrm_world::entropy::DORL_WINDOWS;
use dsrm_world::{DeepFmConfig, EnsembleConfig, EntropyMap, SimulatedReward, UserModelEnsemble, WorldPenalty};
use std::sync::Arc;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: train_world <kuairec dir> [models] [epochs] [threads] [workers] [out.ckpt]";
    let dir = args.first().ok_or(usage)?;
    let n_models: usize = args.get(1).map_or(Ok(1), |s| s.parse())?;
    let epochs: usize = args.get(2).map_or(Ok(1), |s| s.parse())?;
    let threads: usize = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let workers: usize = args.get(4).map_or(Ok(1), |s| s.parse())?;
    dsrm_nn::runtime::init(threads, 0);

    let t = Instant::now();
    let opts = dsrm_data::kuairec::LoadOptions { check_official_counts: false, ..Default::default() };
    let data = dsrm_data::kuairec::load(dir.as_ref(), &opts)?;
    let world = World::kuairec(&data, dsrm_sim::Preset::DorlPaper.settings(), &Default::default())?;
    drop(data);
    println!(
        "world: {} x {} environment, training log {} rows from {} users ({:.1} s)",
        world.spec.n_users(),
        world.spec.n_items(),
        world.train.len(),
        world.train.n_users,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let entropy = Arc::new(EntropyMap::build(&world.train, &DORL_WINDOWS)?);
    println!("entropy map: {} keys, bounds {:?} ({:.1} s)", entropy.len(), entropy.bounds(), t.elapsed().as_secs_f64());

    let model = DeepFmConfig { epochs, ..DeepFmConfig::default() };
    let cfg = EnsembleConfig { n_models, model, workers, ..Default::default() };
    let t = Instant::now();
    let mut last = Instant::now();
    let ensemble = UserModelEnsemble::train(&world, &cfg, 0, &mut |m, epoch, loss| {
        println!(
            "model {m} epoch {epoch}: loss {loss:.4} ({:.1} s since the last report)",
            last.elapsed().as_secs_f64()
        );
        last = Instant::now();
    })?;
    println!(
        "ensemble of {n_models} x {epochs} epochs incl. grid prediction: {:.1} s (grid alone {:.1} s)",
        t.elapsed().as_secs_f64(),
        last.elapsed().as_secs_f64()
    );

    let reward = SimulatedReward::for_world(&world, ensemble.predictions(), entropy, WorldPenalty::Dorl)?;
    println!("{}: range {:?}", reward.describe(), reward.range());
    if let Some(out) = args.get(5) {
        ensemble.save(out.as_ref())?;
        println!("saved to {out}");
    }
    Ok(())
}
