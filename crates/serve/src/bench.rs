//! `dsrm bench serve`: an open-loop load generator for a running `dsrm serve`.
//!
//! Open loop: request i is due at start + i / rps, whatever happened to the earlier ones, and its latency is
//! measured from that scheduled time to the end of its answer, so a slow server cannot hide its queue (no
//! coordinated omission). At most `concurrency` requests are in flight; a due request waiting for a slot
//! keeps counting. The traffic is sessions: each session (a known user from `/healthz`) asks
//! `/v1/recommend` (k = 10), then sends `/v1/feedback` for the first item with a uniform reward in the data
//! set's range, and so on for `session_length` items; every scheduled request belongs to a session not
//! already waiting. Errors: transport failures and non-2xx answers. The generator runs on one thread (a
//! current-thread tokio runtime with the hyper client) that spins for the last 1–2 ms before each due time (the
//! tokio timer's resolution is 1 ms), so it needs a core of its own: against a server on the same 2-core
//! machine, pin each to one core (`taskset -c 0 dsrm serve …`, `taskset -c 1 dsrm bench serve …`).

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The HTTP client of the load generator and the A/B harness (hyper's pooled client).
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The server's base URL (`http://127.0.0.1:8080`).
    pub url: String,
    /// Offered requests per second (the starting rate of a ramp).
    pub rps: f64,
    /// Length of a measurement (each step of a ramp).
    pub duration: Duration,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Consumed items per session before it ends.
    pub session_length: usize,
    /// Seed of users, rewards and session ids.
    pub seed: u64,
}

/// One measurement.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchReport {
    /// Offered rate.
    pub offered_rps: f64,
    /// Achieved rate: answered requests (errors included) per second over the measurement.
    pub rps: f64,
    pub requests: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub duration_s: f64,
}

/// A ramp: each rate measured, and the highest held.
#[derive(Debug, Clone, Serialize)]
pub struct RampReport {
    pub steps: Vec<BenchReport>,
    /// The highest step with no error, p99 within the limit and ≥ 95% of the offered rate achieved.
    pub held: Option<BenchReport>,
    pub p99_limit_us: u64,
}

/// What the generator needs to know about the served run (from `/healthz`).
#[derive(Debug, Clone, serde::Deserialize)]
struct Target {
    reward_range: (f64, f64),
    sample_user_ids: Vec<u64>,
}

struct SimSession {
    id: String,
    user: u64,
    pending: Option<u64>,
    consumed: usize,
}

struct Shared {
    pool: Vec<SimSession>,
    next_id: u64,
    /// Distinguishes this measurement's session ids from every earlier one's on the same server.
    nonce: u128,
    rng: ChaCha8Rng,
}

/// Checks a server URL (`http://HOST:PORT`) and drops a trailing slash.
pub(crate) fn base_url(url: &str) -> Result<String> {
    let uri: Uri = url.parse().with_context(|| format!("--url {url:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        bail!("--url {url:?}: give http://HOST:PORT (the server speaks plain HTTP/1.1)");
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// A pooled client keeping up to `concurrency` idle connections, with TCP_NODELAY.
pub(crate) fn http_client(concurrency: usize) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(concurrency.max(1)).build(connector)
}

/// One request; the status and the body.
pub(crate) async fn call(client: &HttpClient, method: Method, url: &str, body: Option<String>) -> Result<(u16, Bytes)> {
    let mut req = Request::builder().method(method).uri(url);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let response = client.request(req).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

async fn target(client: &HttpClient, base: &str) -> Result<Target> {
    let (status, body) = call(client, Method::GET, &format!("{base}/healthz"), None)
        .await
        .with_context(|| format!("{base}/healthz: is dsrm serve running there?"))?;
    if status != 200 {
        bail!("{base}/healthz answered {status}");
    }
    let t: Target = serde_json::from_slice(&body).context("reading /healthz")?;
    if t.sample_user_ids.is_empty() {
        bail!("{base}/healthz lists no user ids");
    }
    Ok(t)
}

/// One request of one session; returns true on a 2xx answer.
async fn session_step(client: &HttpClient, base: &str, target: &Target, shared: &Mutex<Shared>, length: usize) -> bool {
    let (mut session, reward) = {
        let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
        let (lo, hi) = target.reward_range;
        let reward = lo + (hi - lo) * g.rng.gen::<f64>();
        let s = match g.pool.pop() {
            Some(s) => s,
            None => {
                g.next_id += 1;
                let user = target.sample_user_ids[g.rng.gen_range(0..target.sample_user_ids.len())];
                SimSession { id: format!("bench-{:x}-{}", g.nonce, g.next_id), user, pending: None, consumed: 0 }
            }
        };
        (s, reward)
    };
    let ok = match session.pending.take() {
        Some(video) => {
            let body = serde_json::json!({"session_id": session.id, "video_id": video, "reward": reward}).to_string();
            let answer = call(client, Method::POST, &format!("{base}/v1/feedback"), Some(body)).await;
            session.consumed += 1;
            matches!(answer, Ok((204, _)))
        }
        None => {
            let body = serde_json::json!({"session_id": session.id, "user_id": session.user, "k": 10}).to_string();
            match call(client, Method::POST, &format!("{base}/v1/recommend"), Some(body)).await {
                Ok((200, bytes)) => {
                    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    session.pending = v["items"].get(0).and_then(|i| i.as_u64());
                    // A session whose catalogue ran out ends.
                    if session.pending.is_none() {
                        session.consumed = length;
                    }
                    true
                }
                _ => false,
            }
        }
    };
    if session.consumed < length {
        shared.lock().unwrap_or_else(|e| e.into_inner()).pool.push(session);
    }
    ok
}

/// Waits until `due` to within microseconds: tokio's timer has 1 ms resolution, which would add up to a
/// millisecond of the generator's own lateness to every latency; the last stretch yields to the runtime
/// (answers keep being read) instead of sleeping. The generator's thread spins for it: give it its own core.
async fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > Duration::from_millis(2) {
            tokio::time::sleep(left - Duration::from_millis(1)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

async fn measure(
    client: &HttpClient,
    base: &str,
    target: &Arc<Target>,
    cfg: &BenchConfig,
    rps: f64,
) -> Result<BenchReport> {
    if !(rps.is_finite() && rps > 0.0) {
        bail!("the request rate must be positive, got {rps}");
    }
    let n = (rps * cfg.duration.as_secs_f64()).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rps);
    let shared = Arc::new(Mutex::new(Shared {
        pool: Vec::new(),
        next_id: 0,
        nonce: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0),
        rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ rps.to_bits()),
    }));
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for i in 0..n {
        let due = start + interval.mul_f64(i as f64);
        wait_until(due).await;
        let (client, base, target) = (client.clone(), base.to_string(), Arc::clone(target));
        let (shared, histogram, errors, slots) =
            (Arc::clone(&shared), Arc::clone(&histogram), Arc::clone(&errors), Arc::clone(&slots));
        let length = cfg.session_length;
        tasks.spawn(async move {
            let ok = match slots.acquire_owned().await {
                Ok(_permit) => session_step(&client, &base, &target, &shared, length).await,
                Err(_) => false,
            };
            let us = due.elapsed().as_micros().max(1) as u64;
            let _ = histogram.lock().unwrap_or_else(|e| e.into_inner()).record(us.min(600_000_000));
            if !ok {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        // Reap finished tasks as we go, so the set does not grow with the run.
        while tasks.try_join_next().is_some() {}
    }
    // Whatever is still in flight gets 30 s more; then it counts as an error.
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            _ = &mut deadline => {
                errors.fetch_add(tasks.len() as u64, std::sync::atomic::Ordering::Relaxed);
                tasks.abort_all();
                break;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let h = histogram.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(BenchReport {
        offered_rps: rps,
        rps: h.len() as f64 / elapsed,
        requests: n,
        errors: errors.load(std::sync::atomic::Ordering::Relaxed),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
        duration_s: elapsed,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// One measurement at `cfg.rps`.
pub fn run(cfg: &BenchConfig) -> Result<BenchReport> {
    let base = base_url(&cfg.url)?;
    runtime()?.block_on(async {
        let client = http_client(cfg.concurrency);
        let target = Arc::new(target(&client, &base).await?);
        measure(&client, &base, &target, cfg, cfg.rps).await
    })
}

/// Raises the rate from `cfg.rps` by `factor` each step until a step has errors, a p99 above `p99_limit_us`
/// or achieves under 95% of its offered rate (or `max_steps` steps ran).
pub fn ramp(cfg: &BenchConfig, factor: f64, p99_limit_us: u64, max_steps: usize) -> Result<RampReport> {
    if factor.is_nan() || factor <= 1.0 {
        bail!("the ramp factor must exceed 1, got {factor}");
    }
    let base = base_url(&cfg.url)?;
    runtime()?.block_on(async {
        let client = http_client(cfg.concurrency);
        let target = Arc::new(target(&client, &base).await?);
        let (mut steps, mut held) = (Vec::new(), None);
        let mut rps = cfg.rps;
        for _ in 0..max_steps.max(1) {
            let r = measure(&client, &base, &target, cfg, rps).await?;
            let ok = r.errors == 0 && r.p99_us <= p99_limit_us && r.rps >= 0.95 * r.offered_rps;
            steps.push(r.clone());
            if !ok {
                break;
            }
            held = Some(r);
            rps *= factor;
        }
        Ok(RampReport { steps, held, p99_limit_us })
    })
}

/// The JSON line of a measurement: `{"rps", "p50_us", "p99_us", "p999_us", "errors"}` and the rest.
pub fn summary_json(r: &BenchReport) -> serde_json::Value {
    serde_json::json!({
        "rps": r.rps,
        "p50_us": r.p50_us,
        "p99_us": r.p99_us,
        "p999_us": r.p999_us,
        "errors": r.errors,
        "offered_rps": r.offered_rps,
        "requests": r.requests,
        "max_us": r.max_us,
        "duration_s": r.duration_s,
    })
}

/// The decision path in process, without HTTP: `n` recommendations (k = 10) on `engine` from the calling
/// thread, sessions as in the open-loop run (each recommendation followed by a feedback on its first item,
/// not timed), `session_length` items per session. Latency is each `Engine::recommend` call: the tracker (and
/// the DSRM stage), the policy's scores over the whole catalogue, masking and the top k.
pub fn in_process(engine: &mut crate::Engine, n: u64, session_length: usize, seed: u64) -> Result<BenchReport> {
    use crate::request::{FeedbackRequest, RecommendRequest};
    let info = engine.info();
    if info.sample_user_ids.is_empty() {
        bail!("the run has no users");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let (lo, hi) = info.reward_range;
    let (mut session, mut consumed, mut user) = (0u64, 0usize, info.sample_user_ids[0]);
    let started = std::time::Instant::now();
    for _ in 0..n {
        if consumed >= session_length.max(1) || (consumed == 0 && session == 0) {
            session += 1;
            consumed = 0;
            user = info.sample_user_ids[rng.gen_range(0..info.sample_user_ids.len())];
        }
        let req = RecommendRequest { session_id: format!("p{session}"), user_id: user, k: 10 };
        let t = std::time::Instant::now();
        let r = engine.recommend(&req).map_err(|e| anyhow::anyhow!("{e}"))?;
        h.record((t.elapsed().as_micros() as u64).max(1))?;
        let Some(&video) = r.items.first() else {
            consumed = session_length;
            continue;
        };
        let reward = lo + (hi - lo) * rng.gen::<f64>();
        engine
            .feedback(&FeedbackRequest { session_id: req.session_id, video_id: video, reward })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        consumed += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(BenchReport {
        offered_rps: 0.0,
        rps: n as f64 / elapsed,
        requests: n,
        errors: 0,
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
        duration_s: elapsed,
    })
}
