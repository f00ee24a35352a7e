//! Neural-network plumbing on libtorch (tch 0.26 / libtorch 2.13, the kernels the PyTorch anchors run).
//!
//! * [`runtime`]: thread count, seeds and device, set once per process so runs are repeatable.
//! * [`mlp`]: the multi-layer perceptrons every agent head and denoiser is made of.
//! * [`frozen_mlp`]: a frozen copy of one, evaluated one input at a time without libtorch (serving).
//! * [`checkpoint`]: atomic, checksummed save/load of variable stores, so a killed run never loses
//!   finished work.
//!
//! Shapes that come from data go through tch's fallible `f_*` calls; a wrong shape is an error, not a panic.

pub mod checkpoint;
pub mod frozen_mlp;
pub mod mlp;
pub mod optim;
pub mod runtime;

pub use tch;

/// Errors from the neural-network layer.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing a file failed (the message names it).
    #[error("{0}")]
    Write(std::io::Error),
    /// Network sizes or named tensors that do not fit.
    #[error("network: {0}")]
    Shape(String),
    #[error("{path}: checkpoint is corrupt ({detail})")]
    Corrupt { path: std::path::PathBuf, detail: String },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, NnError>;
