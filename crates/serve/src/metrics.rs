//! The server's Prometheus metrics (`GET /metrics`, text format): requests and errors per endpoint, a
//! latency histogram, sessions held and evicted, cold starts, the fairness setting and exposure by popularity
//! group.

use prometheus::{Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric, registered in one registry.
pub struct Metrics {
    registry: Registry,
    /// `dsrm_serve_requests_total{endpoint, status}`.
    pub requests: IntCounterVec,
    /// `dsrm_serve_errors_total{endpoint, status}`: the 4xx and 5xx answers.
    pub errors: IntCounterVec,
    /// `dsrm_serve_request_seconds{endpoint}`: handling time, from the request's arrival to its answer.
    pub latency: HistogramVec,
    /// `dsrm_serve_sessions`: sessions held.
    pub sessions: IntGauge,
    /// `dsrm_serve_sessions_evicted_total{reason="capacity"|"idle"}`.
    pub evicted: IntCounterVec,
    /// `dsrm_serve_cold_starts_total`: sessions opened for a user the run does not know.
    pub cold_starts: IntCounter,
    /// `dsrm_serve_exposure_total{group="popular"|"long_tail"}`: recommended items by popularity group.
    pub exposure: IntCounterVec,
    /// `dsrm_serve_consumed_total{group}`: consumed items (feedback) by popularity group.
    pub consumed: IntCounterVec,
    /// `dsrm_serve_fairness_lambda_f`: λ_f of the high level in use (NaN: a flat policy).
    pub lambda_f: Gauge,
    /// `dsrm_serve_fairness_target_ratio`: the fixed ρ* in use (NaN: the learned high level or a flat policy).
    pub target_ratio: Gauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("dsrm_serve_requests_total", "HTTP requests answered"),
            &["endpoint", "status"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new("dsrm_serve_errors_total", "HTTP requests answered with a 4xx or 5xx"),
            &["endpoint", "status"],
        )?;
        let buckets = vec![
            50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 750e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1.0,
        ];
        let latency = HistogramVec::new(
            HistogramOpts::new("dsrm_serve_request_seconds", "Time from a request's arrival to its answer")
                .buckets(buckets),
            &["endpoint"],
        )?;
        let sessions = IntGauge::new("dsrm_serve_sessions", "Sessions held")?;
        let evicted = IntCounterVec::new(
            Opts::new("dsrm_serve_sessions_evicted_total", "Sessions dropped, by reason (capacity, idle)"),
            &["reason"],
        )?;
        let cold_starts =
            IntCounter::new("dsrm_serve_cold_starts_total", "Sessions opened for a user the run does not know")?;
        let exposure = IntCounterVec::new(
            Opts::new("dsrm_serve_exposure_total", "Recommended items by popularity group"),
            &["group"],
        )?;
        let consumed = IntCounterVec::new(
            Opts::new("dsrm_serve_consumed_total", "Consumed items by popularity group"),
            &["group"],
        )?;
        let lambda_f = Gauge::new("dsrm_serve_fairness_lambda_f", "λ_f of the high level in use (NaN: flat policy)")?;
        let target_ratio =
            Gauge::new("dsrm_serve_fairness_target_ratio", "The fixed target long-tail ratio in use (NaN: none)")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(sessions.clone()))?;
        registry.register(Box::new(evicted.clone()))?;
        registry.register(Box::new(cold_starts.clone()))?;
        registry.register(Box::new(exposure.clone()))?;
        registry.register(Box::new(consumed.clone()))?;
        registry.register(Box::new(lambda_f.clone()))?;
        registry.register(Box::new(target_ratio.clone()))?;
        for group in ["popular", "long_tail"] {
            exposure.with_label_values(&[group]);
            consumed.with_label_values(&[group]);
        }
        for reason in ["capacity", "idle"] {
            evicted.with_label_values(&[reason]);
        }
        Ok(Self {
            registry,
            requests,
            errors,
            latency,
            sessions,
            evicted,
            cold_starts,
            exposure,
            consumed,
            lambda_f,
            target_ratio,
        })
    }

    /// Records one answered request.
    pub fn observe(&self, endpoint: &str, status: u16, seconds: f64) {
        let code = status.to_string();
        self.requests.with_label_values(&[endpoint, &code]).inc();
        if status >= 400 {
            self.errors.with_label_values(&[endpoint, &code]).inc();
        }
        self.latency.with_label_values(&[endpoint]).observe(seconds);
    }

    /// Records the fairness setting in use.
    pub fn set_fairness(&self, lambda_f: Option<f64>, target_ratio: Option<f64>) {
        self.lambda_f.set(lambda_f.unwrap_or(f64::NAN));
        self.target_ratio.set(target_ratio.unwrap_or(f64::NAN));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on metrics the text format cannot hold, which this registry has none of.
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            return format!("# encoding failed: {e}\n");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// `popular` or `long_tail`.
pub fn group(popular: bool) -> &'static str {
    if popular {
        "popular"
    } else {
        "long_tail"
    }
}
