//! The HTTP application (axum on tokio): routes, the body limit, the admin token, request metrics and
//! graceful shutdown.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /v1/recommend` | 200 [`RecommendResponse`] |
//! | `POST /v1/feedback` | 204 |
//! | `PUT /v1/admin/fairness` | 200 [`Fairness`]; 401 without `Authorization: Bearer <token>` |
//! | `GET /healthz` | 200 [`RunInfo`] (the server listens only once the run is loaded) |
//! | `GET /metrics` | 200, Prometheus text format |
//!
//! Bodies are read up to `max_body` bytes (413 beyond, naming `body`) and parsed by [`crate::request::parse`];
//! every refusal is a JSON [`ApiError`]. Shutdown stops accepting, lets in-flight requests finish, then stops
//! the policy worker.

use crate::engine::{Engine, RunInfo};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::request::{parse, Fairness, FairnessRequest, FeedbackRequest, RecommendRequest, RecommendResponse};
use crate::worker::{self, WorkerClient};
use anyhow::{Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The server's own settings (the engine has its own).
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// The largest request body accepted, bytes.
    pub max_body: usize,
    /// The bearer token of `/v1/admin/fairness` (`None`: every admin call is refused).
    pub admin_token: Option<String>,
    /// Requests that may wait for the policy worker at once (more wait to be queued).
    pub queue: usize,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self { max_body: 4096, admin_token: None, queue: 1024 }
    }
}

#[derive(Clone)]
struct AppState {
    worker: WorkerClient,
    metrics: Arc<Metrics>,
    info: Arc<RunInfo>,
    token: Option<Arc<str>>,
    max_body: usize,
}

/// The metrics label of a path (a fixed set, so unknown paths cannot grow the label space).
fn endpoint(path: &str) -> &'static str {
    match path {
        "/v1/recommend" => "recommend",
        "/v1/feedback" => "feedback",
        "/v1/admin/fairness" => "admin_fairness",
        "/healthz" => "healthz",
        "/metrics" => "metrics",
        _ => "other",
    }
}

async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let label = endpoint(req.uri().path());
    let started = Instant::now();
    let response = next.run(req).await;
    state.metrics.observe(label, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_long = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>() || s.to_string().contains("length limit"));
        if too_long {
            ApiError::new_status(StatusCode::PAYLOAD_TOO_LARGE, "body", format!("the body exceeds {limit} bytes"))
        } else {
            ApiError::bad_request("body", format!("the body could not be read: {e}"))
        }
    })
}

async fn recommend(State(st): State<AppState>, body: Body) -> Result<Json<RecommendResponse>, ApiError> {
    let req: RecommendRequest = parse(&read_body(body, st.max_body).await?)?;
    Ok(Json(st.worker.recommend(req).await?))
}

async fn feedback(State(st): State<AppState>, body: Body) -> Result<StatusCode, ApiError> {
    let req: FeedbackRequest = parse(&read_body(body, st.max_body).await?)?;
    st.worker.feedback(req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Constant-time comparison of two tokens (the length is not secret).
fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorise(headers: &HeaderMap, token: Option<&str>) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Err(ApiError::unauthorized("no admin token is configured (start dsrm serve with --admin-token-file)"));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
    if same_token(given.trim().as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("the bearer token is not valid"))
    }
}

async fn admin_fairness(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Fairness>, ApiError> {
    authorise(&headers, st.token.as_deref())?;
    let req: FairnessRequest = parse(&read_body(body, st.max_body).await?)?;
    Ok(Json(st.worker.set_fairness(req).await?))
}

async fn healthz(State(st): State<AppState>) -> Json<RunInfo> {
    Json(st.info.as_ref().clone())
}

async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], st.metrics.render())
}

async fn not_found() -> ApiError {
    ApiError::new_status(StatusCode::NOT_FOUND, "path", "no such endpoint (see docs/serving.md)")
}

async fn wrong_method() -> ApiError {
    ApiError::new_status(StatusCode::METHOD_NOT_ALLOWED, "method", "this endpoint does not take that method")
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/recommend", post(recommend))
        .route("/v1/feedback", post(feedback))
        .route("/v1/admin/fairness", put(admin_fairness))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// A server running on background threads (tests, `dsrm serve`).
pub struct Server {
    /// The address it listens on (with port 0 asked, the one the system chose).
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Server {
    /// Binds `addr`, then serves `engine` until [`stop`](Self::stop) (or drop): one tokio I/O thread and one
    /// policy worker thread.
    pub fn start(engine: Engine, metrics: Arc<Metrics>, settings: ServeSettings, addr: SocketAddr) -> Result<Self> {
        let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("dsrm-serve-http".into()).spawn(move || {
            serve_blocking(engine, metrics, settings, listener, async {
                let _ = rx.await;
            })
        })?;
        Ok(Self { addr, shutdown: Some(tx), thread: Some(thread) })
    }

    /// Stops accepting, drains in-flight requests, stops the worker; returns the server's error, if any.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    /// Signals shutdown (once) and joins the server thread, which drains in-flight requests first.
    fn stop_inner(&mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the server thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Serves on `listener` until `shutdown` completes, then drains and stops the worker. Blocks the calling
/// thread (it runs its own single-threaded tokio runtime).
pub fn serve_blocking(
    engine: Engine,
    metrics: Arc<Metrics>,
    settings: ServeSettings,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let info = Arc::new(engine.info());
    let (client, worker) = worker::spawn(engine, settings.queue)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let state = AppState {
            worker: client,
            metrics,
            info,
            token: settings.admin_token.map(|t| Arc::from(t.as_str())),
            max_body: settings.max_body,
        };
        axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
    });
    // Every worker client was in the router's state, dropped with it: the worker's channel closes.
    let joined = worker.join();
    result.context("serving")?;
    joined.map_err(|_| anyhow::anyhow!("the policy worker panicked"))
}

/// Resolves on SIGTERM or ctrl-c (SIGINT).
pub async fn termination() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
