//! What one update reports: means over its gradient steps, merged across minibatches and levels.

use serde::{Deserialize, Serialize};

/// Means over the minibatches of one update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// The optimised loss.
    pub loss: f64,
    /// Its policy term (A2C: −mean log π · A; PPO: the clipped surrogate, negated).
    pub actor_loss: f64,
    /// Its value term, before `vf_coef`.
    pub vf_loss: f64,
    /// Mean entropy of π(·|s) over the minibatch.
    pub entropy: f64,
    /// PPO only: mean (log π_old − log π) over the minibatches, an estimate of KL(π_old ‖ π).
    pub approx_kl: f64,
    /// PPO only: share of steps whose ratio left [1 − ε, 1 + ε].
    pub clip_fraction: f64,
    /// Gradient steps taken.
    pub grad_steps: usize,
    /// Algorithm-specific means (e.g. a Q loss, a Lagrange multiplier), merged like the fields above.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, f64>,
}

impl UpdateStats {
    /// Combines the means of two sets of gradient steps, weighted by their step counts.
    pub fn merge(&mut self, other: &UpdateStats) {
        let (a, b) = (self.grad_steps as f64, other.grad_steps as f64);
        if a + b == 0.0 {
            return;
        }
        let mean = |x: f64, y: f64| (x * a + y * b) / (a + b);
        self.loss = mean(self.loss, other.loss);
        self.actor_loss = mean(self.actor_loss, other.actor_loss);
        self.vf_loss = mean(self.vf_loss, other.vf_loss);
        self.entropy = mean(self.entropy, other.entropy);
        self.approx_kl = mean(self.approx_kl, other.approx_kl);
        self.clip_fraction = mean(self.clip_fraction, other.clip_fraction);
        for (key, &y) in &other.extra {
            let x = self.extra.get(key).copied().unwrap_or(y);
            self.extra.insert(key.clone(), mean(x, y));
        }
        self.grad_steps += other.grad_steps;
    }
}
