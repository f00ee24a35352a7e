//! Per-decision cost of an actor-critic policy's `act` on a KuaiRec-sized catalogue (3,327 items), as the evaluation
//! protocol calls it: one observation at a time.
use dsrm_agents::rl_policy::actor_critic_policy;
use dsrm_agents::ActorCritic;
use dsrm_nn::tch::Device;
use dsrm_policy::{ItemMask, Observation, Policy, PolicyRng, Selection};
use rand::SeedableRng;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    dsrm_nn::runtime::init(1, 0);
    let n_items = 3327;
    let tracker = dsrm_state::build(&Default::default(), n_items, None, Device::Cpu)?;
    let net = ActorCritic::new(tracker.state_dim(), n_items as i64, &[64, 64], true, Device::Cpu)?;
    let mut policy = actor_critic_policy("a2c", tracker, net, (0.0, 5.0))?;
    let mut rng = PolicyRng::seed_from_u64(0);
    let mask = ItemMask::all(n_items);
    let items = [3u32, 17, 99, 2000];
    let rewards = [0.5, 1.0, 2.0, 0.1];
    for selection in [Selection::Sampled, Selection::Argmax] {
        let n = 20_000;
        let t = Instant::now();
        let mut sum = 0u64;
        for i in 0..n {
            let obs = Observation { user: 0, items: &items[..i % 5], rewards: &rewards[..i % 5], initial_item: None };
            sum += u64::from(policy.act(&obs, &mask, selection, &mut rng));
        }
        println!("{selection:?}: {:.1} µs per decision ({sum})", t.elapsed().as_secs_f64() / n as f64 * 1e6);
    }
    Ok(())
}
