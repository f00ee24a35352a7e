//! Step 3: the purified tracker every agent reads, behind the ordinary `StateTracker` trait.

use super::frozen::FrozenTracker;
use crate::batch_one::BatchOneDenoiser;
use crate::Denoiser;
use dsrm_nn::tch::Tensor;
use dsrm_state::{BatchOneTracker, HistoryBatch, StateError, StateTracker};

// ─────────────────────────────────────── 3. the purified tracker ───────────────────────────────────────

/// The frozen tracker followed by the frozen denoiser: ŝ_t = denoiser(o_t [⊕ summary]). Its variables (the
/// tracker's) are all non-trainable, so the trainer's tracker optimiser has nothing to update. Under joint
/// fine-tuning the denoiser is the trainable `joint` one, and its variables are the tracker's.
pub struct PurifiedTracker {
    pub(super) frozen: FrozenTracker,
    pub(super) denoiser: Box<dyn Denoiser>,
    pub(super) joint: Option<crate::JointDdpm>,
    pub(super) name: &'static str,
}

impl PurifiedTracker {
    /// The denoiser's name (with its settings).
    pub fn denoiser_name(&self) -> String {
        match &self.joint {
            Some(joint) => joint.name(),
            None => self.denoiser.name(),
        }
    }

    /// The denoiser as it is now (fine-tuned weights under joint fine-tuning), as checkpoint parts.
    pub fn denoiser_checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        match &self.joint {
            Some(joint) => joint.checkpoint(),
            None => self.denoiser.checkpoint(),
        }
    }

    /// The unpurified observation o_t (⊕ the summary): the denoiser's input.
    pub fn observed(&self, batch: &HistoryBatch) -> std::result::Result<Tensor, StateError> {
        self.frozen.observe(batch)
    }
}

impl StateTracker for PurifiedTracker {
    fn state_dim(&self) -> i64 {
        self.denoiser.output_dim()
    }

    fn window(&self) -> usize {
        self.frozen.window()
    }

    fn states(&self, batch: &HistoryBatch) -> Tensor {
        self.try_states(batch).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    fn try_states(&self, batch: &HistoryBatch) -> std::result::Result<Tensor, StateError> {
        let observed = self.frozen.observe(batch)?;
        let purified = match &self.joint {
            Some(joint) => joint.purify_differentiable(&observed),
            None => self.denoiser.try_purify(&observed),
        }
        .map_err(|e| StateError::Batch(format!("{}: {e}", self.denoiser_name())))?;
        Ok(purified.f_to_device(observed.device())?)
    }

    /// λ_D · L_DSRM on the batch's observed states under joint fine-tuning; none otherwise.
    fn auxiliary_loss(&self, batch: &HistoryBatch) -> std::result::Result<Option<Tensor>, StateError> {
        let Some(joint) = &self.joint else { return Ok(None) };
        let observed = self.frozen.observe(batch)?;
        let loss = joint.loss(&observed).map_err(|e| StateError::Batch(format!("{}: {e}", joint.name())))?;
        Ok(Some(loss))
    }

    /// The frozen tracker's variables, or under joint fine-tuning the denoiser's (the ones that train).
    fn var_store(&self) -> &dsrm_nn::tch::nn::VarStore {
        match &self.joint {
            Some(joint) => joint.var_store(),
            None => self.frozen.tracker.var_store(),
        }
    }

    fn var_store_mut(&mut self) -> &mut dsrm_nn::tch::nn::VarStore {
        match &mut self.joint {
            Some(joint) => joint.var_store_mut(),
            None => self.frozen.tracker.var_store_mut(),
        }
    }

    fn name(&self) -> &'static str {
        self.name
    }

    /// Frozen: train-only behaviour (SASRec's dropout) stays off, so the states match the denoiser's data.
    fn set_training(&mut self, _training: bool) {}

    fn set_reward_range(&mut self, r_min: f64, r_max: f64) -> std::result::Result<(), StateError> {
        self.frozen.set_reward_range(r_min, r_max)
    }

    /// Where the tracker, the summary and the denoiser all have one (not under joint fine-tuning).
    fn batch_one(&self) -> std::result::Result<Option<Box<dyn BatchOneTracker>>, StateError> {
        if self.joint.is_some() {
            return Ok(None);
        }
        let Some(tracker) = self.frozen.tracker.batch_one()? else { return Ok(None) };
        let summary = match &self.frozen.summary {
            None => None,
            Some(s) => match s.batch_one()? {
                Some(s) => Some(s),
                None => return Ok(None),
            },
        };
        let denoiser = self.denoiser.batch_one().map_err(|e| StateError::Batch(format!("{}: {e}", self.name)))?;
        let Some(denoiser) = denoiser else { return Ok(None) };
        let width = tracker.state_dim() + summary.as_ref().map_or(0, |s| s.state_dim());
        if width != denoiser.input_dim() {
            return Err(StateError::Batch(format!(
                "{}: the denoiser reads {} values, the tracker gives {width}",
                self.name,
                denoiser.input_dim()
            )));
        }
        Ok(Some(Box::new(PurifiedBatchOne { tracker, summary, denoiser, observed: vec![0.0; width] })))
    }
}

/// [`PurifiedTracker`] one state at a time without libtorch: o_t (⊕ the summary), then the denoiser.
struct PurifiedBatchOne {
    tracker: Box<dyn BatchOneTracker>,
    summary: Option<Box<dyn BatchOneTracker>>,
    denoiser: Box<dyn BatchOneDenoiser>,
    observed: Vec<f32>,
}

impl BatchOneTracker for PurifiedBatchOne {
    fn state_dim(&self) -> usize {
        self.denoiser.output_dim()
    }

    fn state(&mut self, items: &[u32], rewards: &[f64], out: &mut [f32]) -> std::result::Result<(), StateError> {
        let d = self.tracker.state_dim();
        self.tracker.state(items, rewards, &mut self.observed[..d])?;
        if let Some(s) = &mut self.summary {
            s.state(items, rewards, &mut self.observed[d..])?;
        }
        self.denoiser.purify(&self.observed, out).map_err(|e| StateError::Batch(e.to_string()))
    }
}
