//! Heuristic baselines (being written).
