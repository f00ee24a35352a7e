//! `dsrm-serve`: a trained `dsrm train` run served over HTTP, and the open-loop load generator that measures
//! it. Where it sits: above the study library (`dsrm-study`, which loads runs and worlds) and the trainer;
//! only the `dsrm` binary depends on it. `docs/serving.md` is the user's guide.
//!
//! Modules, by purpose:
//!
//! * [`loaded`]: a finished run (and its retuned high levels) loaded for serving; the run-format check;
//! * [`engine`]: the serving core without HTTP: sessions, the top k of the policy's scores, feedback, fairness;
//! * [`sessions`]: the session store, bounded by an LRU capacity and an idle timeout;
//! * [`worker`]: the one thread that owns the engine (libtorch modules are not `Sync`) and its request channel;
//! * [`server`]: the axum application: routes, body limits, the admin token, metrics, graceful shutdown;
//! * [`request`]: the JSON bodies and their parser (unknown fields refused, errors name the field);
//! * [`error`]: the JSON error answer;
//! * [`metrics`]: the Prometheus metrics;
//! * [`rowlog`]: `--log-dir`'s served and consumed rows;
//! * [`bench`]: `dsrm bench serve`, the open-loop load generator;
//! * [`abtest`]: `dsrm abtest`, a simulated A/B test of two runs, each served live and driven over HTTP by the
//!   simulator's users, with a sequential test valid under peeking.

pub mod abtest;
pub mod bench;
pub mod engine;
pub mod error;
pub mod loaded;
pub mod metrics;
pub mod request;
pub mod rowlog;
pub mod server;
pub mod sessions;
pub mod worker;

pub use engine::{Engine, EngineSettings, RunInfo};
pub use error::ApiError;
pub use server::{ServeSettings, Server};
