//! Step 3: the purified tracker every agent reads, behind the ordinary `StateTracker` trait.

use super::frozen::FrozenTracker;
use crate::batch_one::BatchOneDenoiser;
use crate::Denoiser;
use dsrm_nn::tch::{Kind, Tensor};
use dsrm_state::{BatchOneTracker, HistoryBatch, StateError, StateTracker};
use std::collections::HashMap;
use std::sync::Mutex;

// ─────────────────────────────────────── 3. the purified tracker ───────────────────────────────────────

/// The frozen tracker followed by the frozen denoiser: ŝ_t = denoiser(o_t [⊕ summary]). Its variables (the
/// tracker's) are all non-trainable, so the trainer's tracker optimiser has nothing to update. Under joint
/// fine-tuning the denoiser is the trainable `joint` one, and its variables are the tracker's.
pub struct PurifiedTracker {
    pub(super) frozen: FrozenTracker,
    pub(super) denoiser: Box<dyn Denoiser>,
    pub(super) joint: Option<crate::JointDdpm>,
    pub(super) name: &'static str,
    /// Purified rows already computed this epoch, by the bits of their observed row (frozen denoiser only).
    pub(super) memo: Mutex<Memo>,
}

/// The frozen denoiser's outputs remembered by input row. Purification is a pure function of the row (its
/// noise, if any, is keyed by the row: `chain::keyed_normal`), so an update that re-reads the states its
/// collection computed, or a replayed transition, skips the chain instead of running it again (`dsrm train`
/// profile, docs/benchmarks.md §2: the chain was 60% of DSRM-HRL's update time at T = 10, nearly all of it at
/// T = 500). A remembered row is the one first computed; libtorch's matrix products are not bit-identical
/// across batch sizes, so the memo is emptied at every epoch start (`StateTracker::clear_cache`, called by the
/// trainer): the states of an epoch are then a function of that epoch alone and a resumed run computes what an
/// uninterrupted one did. At most [`Memo::CAPACITY`] rows; later ones are computed every time.
///
/// A few rows at a time (evaluation purifies one state per step) go through the denoiser's libtorch-free form
/// where it has one ([`Denoiser::batch_one`], the serving path; equal to libtorch's to rounding): at batch 1 a
/// T-step chain is T small libtorch calls, each costing more in overhead than its arithmetic.
#[derive(Default)]
pub(super) struct Memo {
    rows: HashMap<Box<[u32]>, Box<[f32]>>,
    one: Option<Box<dyn BatchOneDenoiser>>,
}

impl Memo {
    /// Rows kept per epoch (about 400 bytes each at d = 32 with a history condition).
    pub(super) const CAPACITY: usize = 1 << 18;
    /// Up to this many rows to purify go through the batch-one form.
    const FEW: usize = 4;

    pub(super) fn new(denoiser: &dyn Denoiser) -> crate::Result<Self> {
        Ok(Self { rows: HashMap::new(), one: denoiser.batch_one()? })
    }
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
            None => return self.remembered(&observed),
        }
        .map_err(|e| StateError::Batch(format!("{}: {e}", self.denoiser_name())))?;
        Ok(purified.f_to_device(observed.device())?)
    }

    fn clear_cache(&self) {
        self.memo.lock().unwrap_or_else(|p| p.into_inner()).rows.clear();
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

impl PurifiedTracker {
    /// The frozen denoiser's output for `observed` (`[B, width]`), each distinct row not yet in the memo purified
    /// once, in one batch of those rows in their first-seen order.
    fn remembered(&self, observed: &Tensor) -> std::result::Result<Tensor, StateError> {
        let (b, width) = (observed.size()[0] as usize, observed.size()[1] as usize);
        let d = self.denoiser.output_dim() as usize;
        let device = observed.device();
        let bits: Vec<u32> = Vec::<f32>::try_from(observed.f_to_kind(Kind::Float)?.f_contiguous()?.f_view([-1])?)?
            .into_iter()
            .map(f32::to_bits)
            .collect();
        let row = |r: usize| &bits[r * width..(r + 1) * width];
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        // Rows to purify: distinct and not remembered, in first-seen order.
        let mut missing: Vec<usize> = Vec::new();
        let mut first_of: HashMap<&[u32], usize> = HashMap::new();
        for r in 0..b {
            if !memo.rows.contains_key(row(r)) && !first_of.contains_key(row(r)) {
                first_of.insert(row(r), missing.len());
                missing.push(r);
            }
        }
        let few = missing.len() <= Memo::FEW;
        let computed: Vec<f32> = match (missing.is_empty(), memo.one.as_mut().filter(|_| few)) {
            (true, _) => Vec::new(),
            (false, Some(one)) => {
                let mut out = vec![0f32; missing.len() * d];
                for (k, &r) in missing.iter().enumerate() {
                    let input: Vec<f32> = row(r).iter().map(|&b| f32::from_bits(b)).collect();
                    one.purify(&input, &mut out[k * d..(k + 1) * d])
                        .map_err(|e| StateError::Batch(format!("{}: {e}", self.denoiser_name())))?;
                }
                out
            }
            (false, None) => {
                let index = Tensor::f_from_slice(&missing.iter().map(|&r| r as i64).collect::<Vec<_>>())?
                    .f_to_device(device)?;
                let purified = self
                    .denoiser
                    .try_purify(&observed.f_index_select(0, &index)?)
                    .map_err(|e| StateError::Batch(format!("{}: {e}", self.denoiser_name())))?;
                Vec::<f32>::try_from(purified.f_to_kind(Kind::Float)?.f_contiguous()?.f_view([-1])?)?
            }
        };
        let mut out = vec![0f32; b * d];
        for r in 0..b {
            let slot = &mut out[r * d..(r + 1) * d];
            match first_of.get(row(r)) {
                Some(&k) => slot.copy_from_slice(&computed[k * d..(k + 1) * d]),
                None => slot.copy_from_slice(&memo.rows[row(r)]),
            }
        }
        for (k, &r) in missing.iter().enumerate() {
            if memo.rows.len() >= Memo::CAPACITY {
                break;
            }
            memo.rows.insert(row(r).into(), computed[k * d..(k + 1) * d].into());
        }
        Ok(Tensor::f_from_slice(&out)?.f_view([b as i64, d as i64])?.f_to_device(device)?)
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
