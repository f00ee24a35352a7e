//! Biased matrix factorisation (being written).
