//! The concurrency design: one worker thread owns the [`Engine`] (the policy's libtorch modules and tensors
//! are not `Sync`, and the decision path is a few small matrix products where one thread is fastest). HTTP
//! handlers on the tokio runtime send it jobs over a bounded channel and await the answer on a oneshot
//! channel. The worker runs libtorch on one intra-op thread, so the server uses about two cores: the tokio
//! I/O thread and this one. A panic inside a job (which no input should cause) is caught and answered 500;
//! the worker goes on.

use crate::engine::Engine;
use crate::error::ApiError;
use crate::request::{Fairness, FairnessRequest, FeedbackRequest, RecommendRequest, RecommendResponse};
use std::panic::AssertUnwindSafe;
use tokio::sync::{mpsc, oneshot};

type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// One request for the engine.
enum Job {
    Recommend(RecommendRequest, Reply<RecommendResponse>),
    Feedback(FeedbackRequest, Reply<()>),
    Fairness(FairnessRequest, Reply<Fairness>),
}

/// The handlers' side of the channel (cheap to clone).
#[derive(Clone)]
pub struct WorkerClient {
    tx: mpsc::Sender<Job>,
}

/// Runs `f` on the engine, answering 500 instead of unwinding.
fn guarded<T>(f: impl FnOnce() -> Result<T, ApiError>) -> Result<T, ApiError> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(ApiError::internal("the policy worker panicked on this request")))
}

/// Starts the worker thread, which owns `engine` until every [`WorkerClient`] is dropped, and returns the
/// client and the thread (join it after the server has stopped).
pub fn spawn(mut engine: Engine, queue: usize) -> std::io::Result<(WorkerClient, std::thread::JoinHandle<()>)> {
    let (tx, mut rx) = mpsc::channel::<Job>(queue.max(1));
    let thread = std::thread::Builder::new().name("dsrm-serve-policy".into()).spawn(move || {
        // libtorch's intra-op threads are per thread: this one scores on one core.
        dsrm_nn::tch::set_num_threads(1);
        while let Some(job) = rx.blocking_recv() {
            // A requester that gave up (its connection closed) no longer waits: a failed send is fine.
            match job {
                Job::Recommend(req, reply) => {
                    let _ = reply.send(guarded(|| engine.recommend(&req)));
                }
                Job::Feedback(req, reply) => {
                    let _ = reply.send(guarded(|| engine.feedback(&req)));
                }
                Job::Fairness(req, reply) => {
                    let _ = reply.send(guarded(|| engine.set_fairness(&req)));
                }
            }
        }
    })?;
    Ok((WorkerClient { tx }, thread))
}

impl WorkerClient {
    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(job(reply)).await.map_err(|_| ApiError::unavailable("the server is shutting down"))?;
        answer.await.map_err(|_| ApiError::unavailable("the server is shutting down"))?
    }

    /// A recommendation.
    pub async fn recommend(&self, req: RecommendRequest) -> Result<RecommendResponse, ApiError> {
        self.ask(|r| Job::Recommend(req, r)).await
    }

    /// A feedback.
    pub async fn feedback(&self, req: FeedbackRequest) -> Result<(), ApiError> {
        self.ask(|r| Job::Feedback(req, r)).await
    }

    /// A fairness change (already authorised).
    pub async fn set_fairness(&self, req: FairnessRequest) -> Result<Fairness, ApiError> {
        self.ask(|r| Job::Fairness(req, r)).await
    }
}
