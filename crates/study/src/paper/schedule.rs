//! Equal compute: the study's budget applied to each learned row.
//!
//! Every learned row trains `env_steps` environment steps over `epochs` epochs. Its update schedule is the
//! study's (unless the row says `schedule = "own"`):
//!
//! | learner | what the study sets |
//! |---|---|
//! | A2C, PPO, FCPO (and reward shaping, a PPO) | `batch_size`; `updates_per_1k_steps` (paced: `dsrm_agents` `pace.rs`) |
//! | HRL | the same; the paced updates are split evenly between its two levels, both counted |
//! | TD3, DNaIR, SAC4IR (off-policy, online) | the same: `batch_size`, `updates_per_1k_steps` paced gradient steps (TD3's delayed actor steps ride on its critic steps; each SAC4IR step updates actor, temperature and critics) |
//! | BCQ, CQL, CRR, SQN (offline) | the same number of updates per epoch, `batch_size` logged transitions each, no environment step |
//!
//! A learner without an equal-compute schedule (DQN, SAC) is refused rather than run on other terms. With
//! `[budget] mask_shown`, every learned row (its own schedule or not) blocks the items its episode has shown.

use super::PaperMethod;
use crate::experiment::MethodConfig;
use anyhow::{bail, Context, Result};
use dsrm_agents::learner::Algorithm;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[budget]`: what every learned row gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Environment steps per run (offline rows: none; they get the same updates).
    pub env_steps: u64,
    /// Epochs, each evaluated on the validation users; the reported epoch is the best there.
    pub epochs: usize,
    /// Gradient updates per 1,000 environment steps.
    pub updates_per_1k_steps: f64,
    /// Minibatch size of every update.
    pub batch_size: usize,
    /// The paper's training budget in episodes, for Table 4.
    pub paper_episodes: u64,
    /// Every learned row blocks the items its episode has shown, in training and in every evaluation mode
    /// (each learner's `mask_shown`, `dsrm_agents::shown`). Off, the rows keep their own setting (default: repeats
    /// allowed in training, DORL's protocol, and blocked only by the no-repeat scoring mode); a study that mixes
    /// them is a diagnostic (docs/results/2026-12-07-hrl-session-length.md), not an equal comparison.
    #[serde(default)]
    pub mask_shown: bool,
}

impl Budget {
    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 || self.env_steps < self.epochs as u64 || self.batch_size == 0 {
            bail!("[budget]: needs epochs >= 1, env_steps >= epochs and batch_size >= 1");
        }
        if !(self.updates_per_1k_steps.is_finite() && self.updates_per_1k_steps > 0.0) {
            bail!("[budget] updates_per_1k_steps = {}: needs a number > 0", self.updates_per_1k_steps);
        }
        Ok(())
    }

    /// Environment steps per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        (self.env_steps / self.epochs as u64) as usize
    }

    /// Gradient updates per epoch at the budget's pace.
    pub fn updates_per_epoch(&self) -> usize {
        ((self.steps_per_epoch() as f64 * self.updates_per_1k_steps / 1000.0).floor() as usize).max(1)
    }
}

/// Which update schedule a row trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// The study's (the default).
    Equal,
    /// The method's own passes and batch; labelled in every table.
    Own,
}

/// The `dsrm experiment` method of a study row, the budget applied.
pub fn apply(m: &PaperMethod, budget: &Budget) -> Result<MethodConfig> {
    let mut train = m.train.clone();
    if let Some(t) = &mut train {
        t.epochs = budget.epochs;
        t.episodes = None;
        t.steps_per_epoch = budget.steps_per_epoch();
        let own = m.schedule == Some(ScheduleKind::Own);
        if budget.mask_shown {
            t.algorithm.set_mask_shown(true);
        }
        match &mut t.algorithm {
            Algorithm::Bcq(c) => offline(&mut c.base, &mut t.steps_per_epoch, budget, own),
            Algorithm::Cql(c) => offline(&mut c.base, &mut t.steps_per_epoch, budget, own),
            Algorithm::Crr(c) => offline(&mut c.base, &mut t.steps_per_epoch, budget, own),
            Algorithm::Sqn(c) => offline(&mut c.base, &mut t.steps_per_epoch, budget, own),
            _ if own => {}
            other => {
                if !pace_online(other, budget.batch_size, budget.updates_per_1k_steps) {
                    bail!(
                        "{} has no equal-compute schedule in the study yet (A2C, PPO, FCPO, HRL, TD3, DNaIR, \
                         SAC4IR, MoFIR and the offline learners do); give it `schedule = \"own\"` to run it labelled as such",
                        other.name()
                    )
                }
            }
        }
    }
    Ok(MethodConfig {
        name: m.name.clone(),
        heuristic: m.heuristic,
        train,
        world_model: m.world_model.clone(),
        sweep: m.sweep.clone(),
        loop_settings: None,
    })
}

/// Puts an online learner on the equal-compute schedule: minibatches of `batch_size` and `updates_per_1k_steps`
/// paced gradient updates per 1,000 environment steps (`dsrm_agents` `pace.rs`; HRL splits them evenly between
/// its levels). `false` for a learner with no such schedule (the offline learners, DQN, SAC), left unchanged.
/// The study's rows and the loop's (`[schedule]` of a loop file) both come through here.
pub fn pace_online(algorithm: &mut Algorithm, batch_size: usize, updates_per_1k_steps: f64) -> bool {
    let pace = Some(updates_per_1k_steps);
    match algorithm {
        Algorithm::A2c(c) => (c.batch_size, c.updates_per_1k_steps) = (batch_size, pace),
        Algorithm::Ppo(c) => (c.batch_size, c.updates_per_1k_steps) = (batch_size, pace),
        Algorithm::Fcpo(c) => (c.ppo.batch_size, c.ppo.updates_per_1k_steps) = (batch_size, pace),
        Algorithm::Hrl(c) => (c.batch_size, c.updates_per_1k_steps) = (batch_size, pace),
        Algorithm::Td3(c) => (c.batch_size, c.updates_per_1k_steps) = (batch_size, pace),
        Algorithm::Dnair(c) => (c.batch_size, c.updates_per_1k_steps) = (batch_size, pace),
        Algorithm::Sac4ir(c) => (c.batch_size, c.updates_per_1k_steps) = (batch_size, pace),
        Algorithm::Mofir(c) => (c.batch_size, c.updates_per_1k_steps) = (batch_size, pace),
        _ => return false,
    }
    true
}

/// An offline learner's epoch: the budget's updates per epoch on minibatches of its size, in one iteration
/// (its own schedule: the same number of updates at its own batch size).
fn offline(base: &mut dsrm_agents::replay::OfflineConfig, steps_per_epoch: &mut usize, b: &Budget, own: bool) {
    if !own {
        base.batch_size = b.batch_size;
    }
    base.grad_steps = b.updates_per_epoch();
    *steps_per_epoch = b.updates_per_epoch() * base.batch_size;
}

/// Sets each dotted path of `set` in `m` (a study or loop method) where the path's parent table exists
/// (`[smoke] set`); a value the method's typed config refuses is an error naming the path.
pub fn set_present<M: Serialize + DeserializeOwned>(m: &mut M, set: &BTreeMap<String, toml::Value>) -> Result<()> {
    if set.is_empty() {
        return Ok(());
    }
    let mut value = toml::Value::try_from(&*m).context("serialising the method")?;
    for (path, v) in set {
        let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
        let node = if parent.is_empty() {
            Some(&mut value)
        } else {
            parent.split('.').try_fold(&mut value, |node, k| node.get_mut(k))
        };
        if let Some(table) = node.and_then(toml::Value::as_table_mut) {
            table.insert(key.to_string(), v.clone());
        }
    }
    *m = value.try_into().map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message().trim()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paper::{PaperFile, PAPER_CONFIG};

    #[test]
    fn every_learned_row_of_the_shipped_study_gets_the_same_steps_and_updates() {
        let file = PaperFile::parse(PAPER_CONFIG, "built in").unwrap();
        let b = &file.budget;
        let methods = file.methods_at(30, None).unwrap();
        let mut learned = 0;
        for (m, source) in
            methods.iter().zip(file.methods.iter().filter(|m| m.max_len.as_ref().is_none_or(|l| l.contains(&30))))
        {
            let Some(t) = &m.train else { continue };
            learned += 1;
            assert_eq!(t.epochs, b.epochs, "{}", m.name);
            assert_eq!(t.algorithm.mask_shown(), b.mask_shown, "{}", m.name);
            let own = source.schedule == Some(ScheduleKind::Own);
            match &t.algorithm {
                Algorithm::Bcq(c) => {
                    assert_eq!(
                        c.base.grad_steps * b.epochs,
                        (b.env_steps as f64 * b.updates_per_1k_steps / 1e3) as usize
                    );
                    // An offline epoch counts logged transitions: the updates times their minibatch.
                    assert_eq!(t.steps_per_epoch, c.base.grad_steps * c.base.batch_size);
                    assert_eq!(c.base.batch_size, b.batch_size);
                }
                a => {
                    assert_eq!(t.steps_per_epoch as u64 * t.epochs as u64, b.env_steps, "{}", m.name);
                    let pace = a.updates_per_1k_steps();
                    assert_eq!(pace, (!own).then_some(b.updates_per_1k_steps), "{}", m.name);
                }
            }
        }
        assert!(learned >= 11, "{learned} learned rows");
        // SAC4IR is on the paced arm: the budget's batch and pace.
        let sac4ir = methods.iter().find(|m| m.name == "sac4ir").expect("the sac4ir row");
        let Algorithm::Sac4ir(c) = &sac4ir.train.as_ref().unwrap().algorithm else { panic!("{sac4ir:?}") };
        assert_eq!((c.batch_size, c.updates_per_1k_steps), (b.batch_size, Some(b.updates_per_1k_steps)));
        // DQN has no equal schedule yet: refused unless labelled.
        let mut dqn = file.methods[2].clone();
        dqn.train.as_mut().unwrap().algorithm = Algorithm::Dqn(Default::default());
        assert!(format!("{:#}", apply(&dqn, b).unwrap_err()).contains("no equal-compute schedule"));
        dqn.schedule = Some(ScheduleKind::Own);
        assert!(apply(&dqn, b).is_ok());
        // The budget's switch reaches every row; off, a row keeps its own (a diagnostic's mix).
        let (on, off) = (Budget { mask_shown: true, ..b.clone() }, Budget { mask_shown: false, ..b.clone() });
        let row = &file.methods[2];
        assert!(!row.train.as_ref().unwrap().algorithm.mask_shown());
        assert!(apply(row, &on).unwrap().train.unwrap().algorithm.mask_shown());
        assert!(!apply(row, &off).unwrap().train.unwrap().algorithm.mask_shown());
        let mut masked = row.clone();
        masked.train.as_mut().unwrap().algorithm.set_mask_shown(true);
        assert!(apply(&masked, &off).unwrap().train.unwrap().algorithm.mask_shown());
    }

    #[test]
    fn smoke_settings_reach_only_the_methods_that_have_the_table() {
        let file = PaperFile::parse(PAPER_CONFIG, "built in").unwrap().smoke().unwrap();
        let dsrm = file.methods.iter().find(|m| m.name == "dsrm-hrl").unwrap();
        assert_eq!(dsrm.train.as_ref().unwrap().dsrm.as_ref().unwrap().max_states, 2000);
        let ppo = file.methods.iter().find(|m| m.name == "flat-ppo").unwrap();
        assert!(ppo.train.as_ref().unwrap().dsrm.is_none() && ppo.world_model.is_none());
        let dorl = file.methods.iter().find(|m| m.name == "dorl").unwrap();
        assert_eq!(dorl.world_model.as_ref().unwrap().ensemble.n_models, 2);
        assert_eq!(file.data.synthetic_size, "tiny");
    }
}
