//! Fixtures: a tiny synthetic KuaiRec, an HRL run and a flat A2C run trained on it once per test binary (a
//! few hundred steps; the numbers do not matter, the files do), a server started on an ephemeral loopback
//! port, and a small blocking HTTP client (hyper, via the load generator's dependencies).

#![allow(dead_code)]

use dsrm_serve::loaded;
use dsrm_serve::metrics::Metrics;
use dsrm_serve::{Engine, EngineSettings, ServeSettings, Server};
use dsrm_study::train::TrainFile;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub struct Runs {
    _dir: tempfile::TempDir,
    /// The tiny synthetic data set the runs were trained on.
    pub data: PathBuf,
    pub hrl: PathBuf,
    pub a2c: PathBuf,
}

fn train(data: &Path, out: &Path, algorithm: &str) {
    let text = format!(
        "[data]\ndataset = \"kuairec\"\ndir = {data:?}\n[eval]\nepisodes = 5\n[world_model]\nreward = \"mf\"\n\
         [train]\nepochs = 1\nsteps_per_epoch = 200\nparallel_envs = 10\nthreads = 1\ntorch_threads = 1\nseed = 3\n\
         [train.algorithm]\n{algorithm}\nhidden = [16]\n"
    );
    let file = TrainFile::parse(&text).unwrap();
    dsrm_study::train::run(&file, out, false, &dsrm_study::progress::quiet).unwrap_or_else(|e| panic!("{e:#}"));
}

/// The runs, trained on first use.
pub fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let _torch = dsrm_nn::runtime::exclusive();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("tiny");
        let cfg = dsrm_data::synth::SynthConfig::for_size(dsrm_data::synth::SynthSize::Tiny);
        dsrm_data::synth::generate(&cfg, 0, &data, &mut |_, _, _| {}).unwrap();
        let (hrl, a2c) = (dir.path().join("hrl"), dir.path().join("a2c"));
        train(&data, &hrl, "kind = \"hrl\"\nbatch_size = 64");
        train(&data, &a2c, "kind = \"a2c\"\nbatch_size = 64");
        Runs { _dir: dir, data, hrl, a2c }
    })
}

pub const TOKEN: &str = "s3cret-token";

/// Starts a server for `run` on 127.0.0.1:0.
pub fn start(run: &Path, engine: EngineSettings, log_dir: Option<&Path>) -> Server {
    let loaded = {
        let _torch = dsrm_nn::runtime::exclusive();
        loaded::load(run, &[], None, &dsrm_study::progress::quiet).unwrap_or_else(|e| panic!("{e:#}"))
    };
    let log = log_dir.map(|d| dsrm_serve::rowlog::RowLog::open(d, &loaded.dataset).unwrap());
    let metrics = Arc::new(Metrics::new().unwrap());
    let engine = Engine::new(loaded, engine, Arc::clone(&metrics), log).unwrap();
    let settings = ServeSettings { max_body: 1024, admin_token: Some(TOKEN.into()), ..ServeSettings::default() };
    Server::start(engine, metrics, settings, "127.0.0.1:0".parse().unwrap()).unwrap()
}

/// An answer: status, body text, and the body as JSON (Null when it is not JSON).
pub struct Answer {
    pub status: u16,
    pub text: String,
    pub json: serde_json::Value,
}

impl Answer {
    /// The `field` of a JSON error answer.
    pub fn field(&self) -> &str {
        self.json["field"].as_str().unwrap_or("")
    }
}

/// One HTTP request (blocking; a fresh current-thread runtime and client per call keeps tests simple).
pub fn http(server: &Server, method: &str, path: &str, body: &[u8], token: Option<&str>) -> Answer {
    use http_body_util::{BodyExt, Full};
    let url = format!("http://{}{path}", server.addr);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<bytes::Bytes>>();
        let mut req = hyper::Request::builder().method(method).uri(url).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = client.request(req.body(Full::new(bytes::Bytes::copy_from_slice(body))).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Answer { status, text, json }
    })
}

pub fn post(server: &Server, path: &str, body: serde_json::Value) -> Answer {
    http(server, "POST", path, body.to_string().as_bytes(), None)
}
