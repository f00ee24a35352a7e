//! A tracker's state for one history at a time, without libtorch: what a server asks for on every decision
//! (`StateTracker::batch_one`). At batch one a libtorch call costs microseconds of dispatch whatever its size,
//! and a window of rows takes dozens of them; a batch-one form holds the weights as plain `f32` and fills a
//! caller's buffer. Its states equal the libtorch tracker's to rounding (each tracker's tests compare them).

use crate::StateError;

/// The libtorch-free, one-history form of a tracker (see the module docs).
pub trait BatchOneTracker: Send {
    /// Width of the state (the tracker's `state_dim`).
    fn state_dim(&self) -> usize;
    /// `out = o_t` for the episode so far: `items[j]` consumed with `rewards[j]`, oldest first. An item
    /// outside the catalogue or a wrong `out` width is an error.
    fn state(&mut self, items: &[u32], rewards: &[f64], out: &mut [f32]) -> Result<(), StateError>;
}

/// An error unless `out` has `want` entries.
pub fn check_width(out: &[f32], want: usize) -> Result<(), StateError> {
    if out.len() == want {
        Ok(())
    } else {
        Err(StateError::Batch(format!("a state of {want} values needs a buffer of that size, got {}", out.len())))
    }
}
