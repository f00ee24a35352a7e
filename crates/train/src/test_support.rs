//! Fixtures for this crate's tests: the agents' small averaging tracker as a tracker builder.

use crate::TrackerBuilder;
use dsrm_agents::test_support::MeanTracker;
use dsrm_state::StateTracker;

/// Builds [`MeanTracker`]s (8-d embeddings, window 3) for the trainer.
pub fn mean_tracker_builder(n_items: usize) -> Box<TrackerBuilder<'static>> {
    Box::new(move || Ok(Box::new(MeanTracker::new(n_items, 8, 3)) as Box<dyn StateTracker>))
}
