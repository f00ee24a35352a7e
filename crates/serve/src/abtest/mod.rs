//! `dsrm abtest`: a simulated A/B test of two trained runs, each served by a live `dsrm serve` and exercised
//! over HTTP by the simulator's users (`docs/serving.md`, "A/B tests").
//!
//! What happens:
//!
//! 1. Each arm is a finished `dsrm train` run. Both must share the data, environment and world settings (one
//!    user population). The harness starts one `dsrm serve` child per arm on an ephemeral loopback port
//!    ([`spawn`]), or uses the arm's `--url`, and waits for `/healthz`, checking that the server serves the
//!    same data set and catalogue.
//! 2. `--users N` distinct users of the ground truth (a seeded permutation of the population, so N is at most
//!    its size) arrive in that order; each is assigned to an arm by a seeded hash of its user id with the
//!    `--traffic` shares ([`assign`]) and plays one session.
//! 3. A session is the simulator's episode driven over HTTP: `POST /v1/recommend` with `k` items; the user
//!    consumes the first (the server masks consumed items, so it is new to the session); the simulator
//!    (`dsrm_sim::Env`, the run's ground truth and its preset's quit rules, popularity-aware abandonment
//!    included where the preset has it) pays the ground-truth reward and decides whether the user quits;
//!    the harness posts `POST /v1/feedback` with that reward (the quitting item too: it was consumed), and
//!    the session goes on until the user quits or the preset's Max Len. With k = 1 this is exactly the
//!    simulator's step; a larger k only changes what the server returns, not what is consumed.
//! 4. After every session, in arrival order, the mixture SPRT of the primary outcome updates
//!    ([`mixture_sprt`]); its always-valid p-value may be read at any point.
//! 5. Outcomes per arm with 95% intervals and B − A ([`outcome`]); `abtest.json`, `abtest.csv`,
//!    `sessions.jsonl` and `provenance.json` in `--out`.
//!
//! Not modelled (said in `abtest.json` too): returning users (each user plays one session, so there is no
//! return rate); EasyRL4Rec's random initial item (a session starts from an empty history, as a new server
//! session does); the feedback-loop mechanisms of `dsrm loop` (conformity changes only the logged reward of a
//! retraining round, drift and satiation move the users between rounds; an A/B test here is one round with
//! the ground truth fixed).
//!
//! Concurrency: up to `concurrency` sessions are in flight at once (the servers' per-session random streams are
//! seeded by the session id, so the answers do not depend on the interleaving); the results are taken in
//! arrival order, so the sequential test and the outputs are the same however the sessions overlapped.

pub mod assign;
pub mod mixture_sprt;
pub mod outcome;
pub mod spawn;

use crate::bench::{base_url, call, http_client, HttpClient};
use anyhow::{bail, Context, Result};
use assign::Traffic;
use dsrm_sim::{Env, World};
use dsrm_study::train::TrainFile;
use hyper::Method;
use mixture_sprt::{Direction, MixtureSprt};
use outcome::Outcome;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One arm: a name, the run it serves and, optionally, a server already running it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmSpec {
    pub name: String,
    pub run: PathBuf,
    /// `http://HOST:PORT` of a running `dsrm serve --run RUN`; `None`: the harness starts one.
    pub url: Option<String>,
}

/// Checks an arm name: 1 to 32 letters, digits, `-` or `_`.
fn check_name(flag: &str, name: &str, item: &str) -> Result<()> {
    if name.is_empty() || name.len() > 32 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("{flag}: {item:?} is not NAME=VALUE with NAME of 1 to 32 letters, digits, '-' or '_'");
    }
    Ok(())
}

/// Parses `NAME=VALUE,NAME=VALUE` (`--arms`, `--url`); the error names `flag` and the bad item.
pub fn parse_pairs(flag: &str, text: &str) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in text.split(',') {
        let Some((name, value)) = item.split_once('=') else {
            bail!("{flag}: {item:?} is not NAME=VALUE (e.g. {flag} A=runs/a,B=runs/b)");
        };
        let name = name.trim();
        check_name(flag, name, item)?;
        if value.trim().is_empty() {
            bail!("{flag}: arm {name} has an empty value");
        }
        if out.iter().any(|(n, _)| n == name) {
            bail!("{flag}: arm {name} is named twice");
        }
        out.push((name.to_string(), value.trim().to_string()));
    }
    Ok(out)
}

/// The arms of `--arms A=RUN_A,B=RUN_B` and `--url A=URL,...` (each URL naming an arm of `--arms`).
pub fn arms_from_flags(arms: &str, urls: Option<&str>) -> Result<Vec<ArmSpec>> {
    let mut specs: Vec<ArmSpec> = parse_pairs("--arms", arms)?
        .into_iter()
        .map(|(name, run)| ArmSpec { name, run: PathBuf::from(run), url: None })
        .collect();
    if specs.len() != 2 {
        bail!("--arms: an A/B test compares exactly two arms (control first), got {}", specs.len());
    }
    if let Some(urls) = urls {
        for (name, url) in parse_pairs("--url", urls)? {
            let Some(arm) = specs.iter_mut().find(|a| a.name == name) else {
                bail!("--url: no arm named {name} in --arms");
            };
            base_url(&url).with_context(|| format!("--url {name}={url}"))?;
            arm.url = Some(url);
        }
    }
    Ok(specs)
}

/// Which per-session outcome the sequential test decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Primary {
    SessionLength,
    CumulativeReward,
}

impl Primary {
    /// The outcome's key in `abtest.json`.
    pub fn key(self) -> &'static str {
        match self {
            Primary::SessionLength => "session_length",
            Primary::CumulativeReward => "cumulative_reward",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Primary::SessionLength => "session length",
            Primary::CumulativeReward => "cumulative reward",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct AbTestConfig {
    /// Exactly two arms, the control first.
    pub arms: Vec<ArmSpec>,
    /// Traffic shares in percent, one per arm, summing to 100.
    pub traffic: Vec<f64>,
    /// Users, one session each; at most the ground truth's population.
    pub users: usize,
    /// Salt of the assignment hash, seed of the user order, of the spawned servers' session streams and of the
    /// bootstrap.
    pub seed: u64,
    /// Items asked per recommendation (the user consumes the first).
    pub k: u64,
    /// Sessions in flight at once.
    pub concurrency: usize,
    /// Level of the sequential test.
    pub alpha: f64,
    /// The mixture's τ in pooled standard deviations of the outcome.
    pub mixture_sd: f64,
    /// Sessions per arm before the sequential test computes a p-value.
    pub min_per_arm: usize,
    pub primary: Primary,
    /// Bootstrap resamples of the exposure outcomes' intervals.
    pub bootstrap: usize,
    /// The `dsrm` binary to start `dsrm serve` with, for arms without a URL.
    pub serve_binary: Option<PathBuf>,
    /// How long a spawned server may take to load its run.
    pub start_timeout: Duration,
}

impl Default for AbTestConfig {
    fn default() -> Self {
        Self {
            arms: Vec::new(),
            traffic: vec![50.0, 50.0],
            users: 0,
            seed: 0,
            k: 1,
            concurrency: 4,
            alpha: 0.05,
            mixture_sd: 0.25,
            min_per_arm: mixture_sprt::DEFAULT_MIN_PER_ARM,
            primary: Primary::SessionLength,
            bootstrap: 200,
            serve_binary: None,
            start_timeout: Duration::from_secs(300),
        }
    }
}

/// One session, as `sessions.jsonl` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Arrival order, from 0.
    pub index: usize,
    pub arm: String,
    /// The data set's user id.
    pub user_id: u64,
    pub session_id: String,
    /// The data set's video ids consumed, in order.
    pub items: Vec<u64>,
    /// The ground-truth reward of each.
    pub rewards: Vec<f64>,
    pub length: usize,
    pub reward: f64,
    /// What ended it: `category`, `distance`, `popularity`, `max_len`, or `exhausted` (no item left to serve).
    pub ending: String,
    /// Popular items among `items` (the fairness metrics' split).
    pub popular_items: usize,
    /// The dense items (not written; the metrics read them).
    #[serde(skip)]
    pub dense: Vec<u32>,
}

/// One arm as run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmInfo {
    pub name: String,
    pub run: PathBuf,
    pub url: String,
    /// True when the harness started the server.
    pub spawned: bool,
    pub traffic_percent: f64,
    pub sessions: usize,
    /// The server's policy and action selection (`/healthz`).
    pub policy: String,
    pub selection: String,
}

/// The sequential test of one outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialResult {
    pub metric: String,
    /// The decision rests on this one; the others are shown, not decided on (one test, one α).
    pub primary: bool,
    pub method: String,
    pub alpha: f64,
    pub mixture_sd: f64,
    pub min_per_arm: usize,
    /// The always-valid p-value after the last session.
    pub p: f64,
    /// The session count at which p first fell to α or below (the test would have stopped there).
    pub decided_after: Option<usize>,
    /// `b_greater` or `a_greater` at that point.
    pub direction: Option<Direction>,
    /// The always-valid p-value after every `trace_every` sessions (for plots), with the count.
    pub trace: Vec<(usize, f64)>,
}

/// Everything `abtest.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbTestReport {
    /// `abtest`.
    pub kind: String,
    pub dataset: String,
    pub synthetic: bool,
    pub preset: String,
    /// Users in the ground truth's population, and catalogue size.
    pub population: usize,
    pub n_items: usize,
    pub users: usize,
    pub seed: u64,
    pub k: u64,
    pub arms: Vec<ArmInfo>,
    pub outcomes: Vec<Outcome>,
    pub sequential: Vec<SequentialResult>,
    /// The one-line decision on the primary outcome.
    pub decision: String,
    /// Always `null`: the simulator does not model returning users; `return_rate_note` says so.
    pub return_rate: Option<f64>,
    pub return_rate_note: String,
    /// What the simulated users do and do not model.
    pub model_notes: Vec<String>,
    /// Version, command, time, data, seeds (as the project's other outputs carry it).
    pub provenance: serde_json::Value,
}

/// The file `run` writes its [`AbTestReport`] to, in its output directory (`dsrm report` reads it).
pub const REPORT_FILE: &str = "abtest.json";

fn check_settings(cfg: &AbTestConfig) -> Result<Traffic> {
    if cfg.arms.len() != 2 {
        bail!("--arms: an A/B test compares exactly two arms (control first), got {}", cfg.arms.len());
    }
    if cfg.arms[0].name == cfg.arms[1].name {
        bail!("--arms: both arms are named {}", cfg.arms[0].name);
    }
    let traffic = Traffic::new(&cfg.traffic, 2).map_err(anyhow::Error::msg)?;
    if cfg.users == 0 {
        bail!("--users must be at least 1");
    }
    if cfg.k == 0 {
        bail!("--k must be at least 1");
    }
    if cfg.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if cfg.bootstrap == 0 {
        bail!("--bootstrap must be at least 1");
    }
    MixtureSprt::new(cfg.alpha, cfg.mixture_sd, cfg.min_per_arm)
        .map_err(|e| anyhow::anyhow!("--alpha / --mixture-sd / --min-per-arm: {e}"))?;
    Ok(traffic)
}

/// Reads an arm's run config after checking it is a finished run this build can serve.
fn arm_run(arm: &ArmSpec) -> Result<TrainFile> {
    let dir = &arm.run;
    if !dir.is_dir() {
        bail!("--arms {}={}: no such run directory", arm.name, dir.display());
    }
    if !dir.join("checkpoint.bin").exists() {
        bail!("--arms {}={}: not a finished dsrm train run (no checkpoint.bin)", arm.name, dir.display());
    }
    crate::loaded::check_run_format(dir).with_context(|| format!("--arms {}", arm.name))?;
    TrainFile::load(&dir.join("config.toml")).with_context(|| format!("--arms {}", arm.name))
}

/// What the harness needs from `/healthz`.
#[derive(Debug, Deserialize)]
struct Health {
    dataset: String,
    policy: String,
    selection: serde_json::Value,
    n_items: usize,
    run: String,
}

async fn health(client: &HttpClient, base: &str, arm: &str, world: &World) -> Result<Health> {
    let (status, body) = call(client, Method::GET, &format!("{base}/healthz"), None)
        .await
        .with_context(|| format!("arm {arm}: {base}/healthz (is dsrm serve running there?)"))?;
    if status != 200 {
        bail!("arm {arm}: {base}/healthz answered {status}");
    }
    let h: Health = serde_json::from_slice(&body).with_context(|| format!("arm {arm}: reading {base}/healthz"))?;
    if h.dataset != world.dataset || h.n_items != world.item_ids.len() {
        bail!(
            "arm {arm}: {base} serves {} with {} items, but the arms' runs use {} with {} items",
            h.dataset,
            h.n_items,
            world.dataset,
            world.item_ids.len()
        );
    }
    Ok(h)
}

/// The simulator and the id maps the sessions share.
struct Shared {
    world: World,
    /// The data set's video id -> dense item.
    items: HashMap<u64, u32>,
    /// Per dense item: in the popular group (the fairness metrics' split).
    popular: Vec<bool>,
    k: u64,
}

/// One user's session against `base`.
async fn play(
    client: HttpClient,
    base: String,
    shared: Arc<Shared>,
    index: usize,
    arm: String,
    user: u32,
    session_id: String,
) -> Result<SessionRecord> {
    let world = &shared.world;
    let user_id = u64::from(world.user_ids[user as usize]);
    let mut env = Env::new(&world.spec);
    env.reset_to(user, None);
    let mut items = Vec::new();
    let ending = loop {
        let body = serde_json::json!({"session_id": session_id, "user_id": user_id, "k": shared.k}).to_string();
        let (status, bytes) = call(&client, Method::POST, &format!("{base}/v1/recommend"), Some(body))
            .await
            .with_context(|| format!("arm {arm}: {base}/v1/recommend"))?;
        if status != 200 {
            bail!("arm {arm}: {base}/v1/recommend answered {status}: {}", String::from_utf8_lossy(&bytes));
        }
        let answer: serde_json::Value =
            serde_json::from_slice(&bytes).with_context(|| format!("arm {arm}: reading a recommendation"))?;
        let served: Vec<u64> =
            answer["items"].as_array().map(|a| a.iter().filter_map(|v| v.as_u64()).collect()).unwrap_or_default();
        // The first item the session has not consumed (the server's NX mask makes that the first).
        let Some((video, dense)) =
            served.iter().filter_map(|v| shared.items.get(v).map(|&d| (*v, d))).find(|(_, d)| !env.items().contains(d))
        else {
            if let Some(v) = served.iter().find(|v| !shared.items.contains_key(v)) {
                bail!("arm {arm}: {base} recommended video {v}, which is not in the run's catalogue");
            }
            break "exhausted".to_string();
        };
        let step = env.step(dense);
        items.push(video);
        let body = serde_json::json!({"session_id": session_id, "video_id": video, "reward": step.reward}).to_string();
        let (status, bytes) = call(&client, Method::POST, &format!("{base}/v1/feedback"), Some(body))
            .await
            .with_context(|| format!("arm {arm}: {base}/v1/feedback"))?;
        if status != 204 {
            bail!("arm {arm}: {base}/v1/feedback answered {status}: {}", String::from_utf8_lossy(&bytes));
        }
        if let Some(e) = step.ending {
            break serde_json::to_value(e)?.as_str().unwrap_or("ended").to_string();
        }
    };
    let dense = env.items().to_vec();
    Ok(SessionRecord {
        index,
        arm,
        user_id,
        session_id,
        length: items.len(),
        reward: env.cumulative_reward(),
        rewards: env.rewards().to_vec(),
        popular_items: dense.iter().filter(|&&d| shared.popular.get(d as usize).copied().unwrap_or(false)).count(),
        items,
        ending,
        dense,
    })
}

/// A server per arm, held for the test's length (spawned children are stopped when this drops).
struct Endpoints {
    urls: Vec<String>,
    _children: Vec<spawn::ChildServer>,
}

fn endpoints(cfg: &AbTestConfig, progress: &dyn Fn(String)) -> Result<Endpoints> {
    let (mut urls, mut children) = (Vec::new(), Vec::new());
    for arm in &cfg.arms {
        match &arm.url {
            Some(url) => urls.push(base_url(url)?),
            None => {
                let Some(binary) = &cfg.serve_binary else {
                    bail!("arm {}: no --url and no dsrm binary to start a server with", arm.name);
                };
                progress(format!("arm {}: starting dsrm serve --run {}", arm.name, arm.run.display()));
                let child = spawn::ChildServer::start(binary, &arm.run, cfg.seed, cfg.start_timeout)
                    .with_context(|| format!("arm {}", arm.name))?;
                progress(format!("arm {}: {} listening on {}", arm.name, arm.run.display(), child.url));
                urls.push(child.url.clone());
                children.push(child);
            }
        }
    }
    Ok(Endpoints { urls, _children: children })
}

/// Runs the A/B test, writes its files into `out` (when given) and returns the report. `progress` gets the
/// progress lines.
pub fn run(cfg: &AbTestConfig, out: Option<&Path>, progress: &dyn Fn(String)) -> Result<AbTestReport> {
    let traffic = check_settings(cfg)?;
    let files: Vec<TrainFile> = cfg.arms.iter().map(arm_run).collect::<Result<_>>()?;
    if (&files[0].data, &files[0].env, &files[0].world) != (&files[1].data, &files[1].env, &files[1].world) {
        bail!(
            "--arms: {} and {} were trained on different data, environment or world settings; an A/B test needs one \
             user population",
            cfg.arms[0].run.display(),
            cfg.arms[1].run.display()
        );
    }
    let file = &files[0];
    progress("loading the simulator's world (ground truth, quit rules)".into());
    let world = dsrm_study::loading::load_world_from(&file.data, &file.env, &file.world, &dsrm_study::progress::quiet)?;
    let population = world.spec.n_users();
    if cfg.users > population {
        bail!(
            "--users {}: the ground truth has {population} users and each plays one session; ask for at most \
             {population}",
            cfg.users
        );
    }
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let endpoints = endpoints(cfg, progress)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = http_client(cfg.concurrency);
    let healths = runtime.block_on(async {
        let mut v = Vec::new();
        for (arm, url) in cfg.arms.iter().zip(&endpoints.urls) {
            v.push(health(&client, url, &arm.name, &world).await?);
        }
        Ok::<_, anyhow::Error>(v)
    })?;
    let mut notes = Vec::new();
    for ((arm, h), url) in cfg.arms.iter().zip(&healths).zip(&endpoints.urls) {
        if arm.url.is_some() && Path::new(&h.run) != arm.run.as_path() {
            notes.push(format!("arm {}: {url} serves {} (given run: {})", arm.name, h.run, arm.run.display()));
        }
    }
    notes.iter().for_each(|n| progress(format!("note: {n}")));

    // Arrival order: a seeded permutation of the population; assignment: the seeded hash of the user id.
    let mut order: Vec<u32> = (0..population as u32).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed));
    order.truncate(cfg.users);
    // Sessions at a `--url` server carry a nonce, so that a rerun does not continue an earlier run's sessions.
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let jobs: Vec<(usize, usize, u32, String)> = order
        .iter()
        .enumerate()
        .map(|(index, &user)| {
            let user_id = u64::from(world.user_ids[user as usize]);
            let arm = traffic.arm(cfg.seed, user_id);
            let id = match cfg.arms[arm].url {
                Some(_) => format!("ab{}-{:x}-{}-{user_id}", cfg.seed, nonce, cfg.arms[arm].name),
                None => format!("ab{}-{}-{user_id}", cfg.seed, cfg.arms[arm].name),
            };
            (index, arm, user, id)
        })
        .collect();
    let items: HashMap<u64, u32> = world.item_ids.iter().enumerate().map(|(d, &v)| (u64::from(v), d as u32)).collect();
    let popular = world.popular();
    let shared = Arc::new(Shared { world, items, popular, k: cfg.k });

    let names: Vec<String> = cfg.arms.iter().map(|a| a.name.clone()).collect();
    // [session length, cumulative reward]; the settings were checked by `check_settings`.
    let mut tests: [MixtureSprt; 2] =
        std::array::from_fn(|_| MixtureSprt::new(cfg.alpha, cfg.mixture_sd, cfg.min_per_arm).expect("checked above"));
    let trace_every = (cfg.users / 100).max(1);
    let mut traces: [Vec<(usize, f64)>; 2] = [Vec::new(), Vec::new()];
    let report_every = (cfg.users / 10).max(1);
    let sessions: Vec<SessionRecord> = runtime.block_on(async {
        let mut done: Vec<SessionRecord> = Vec::with_capacity(jobs.len());
        let mut waiting: BTreeMap<usize, SessionRecord> = BTreeMap::new();
        let mut set = tokio::task::JoinSet::new();
        let mut queue = jobs.into_iter();
        loop {
            while set.len() < cfg.concurrency {
                let Some((index, arm, user, id)) = queue.next() else { break };
                let (client, base, shared) = (client.clone(), endpoints.urls[arm].clone(), Arc::clone(&shared));
                set.spawn(play(client, base, shared, index, names[arm].clone(), user, id));
            }
            let Some(joined) = set.join_next().await else { break };
            let record = joined.context("a session task failed")??;
            waiting.insert(record.index, record);
            // Take finished sessions in arrival order: the sequential test looks after each.
            while let Some(record) = waiting.remove(&done.len()) {
                let second = record.arm == names[1];
                tests[0].push(second, record.length as f64);
                tests[1].push(second, record.reward);
                done.push(record);
                let n = done.len();
                if n.is_multiple_of(trace_every) || n == cfg.users {
                    for (t, trace) in tests.iter().zip(traces.iter_mut()) {
                        trace.push((n, t.p));
                    }
                }
                if n.is_multiple_of(report_every) || n == cfg.users {
                    let t = &tests[if cfg.primary == Primary::SessionLength { 0 } else { 1 }];
                    progress(format!(
                        "sessions {n}/{}: {} {} (mean {} {:.3}), {} {} (mean {:.3}); always-valid p = {:.4}",
                        cfg.users,
                        names[0],
                        t.a.n,
                        cfg.primary.label(),
                        t.a.mean,
                        names[1],
                        t.b.n,
                        t.b.mean,
                        t.p
                    ));
                }
            }
        }
        Ok::<_, anyhow::Error>(done)
    })?;
    drop(endpoints);

    let world = &shared.world;
    let preset = file.env.preset.name();
    let report = summarise(cfg, &traffic, world, &shared.popular, preset, &sessions, &healths, &tests, traces, notes)?;
    if let Some(dir) = out {
        write(dir, &report, &sessions)?;
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    cfg: &AbTestConfig,
    traffic: &Traffic,
    world: &World,
    popular: &[bool],
    preset: &'static str,
    sessions: &[SessionRecord],
    healths: &[Health],
    tests: &[MixtureSprt; 2],
    traces: [Vec<(usize, f64)>; 2],
    notes: Vec<String>,
) -> Result<AbTestReport> {
    let names = [cfg.arms[0].name.as_str(), cfg.arms[1].name.as_str()];
    let of = |arm: &str| sessions.iter().filter(|s| s.arm == arm).collect::<Vec<_>>();
    let by_arm = [of(names[0]), of(names[1])];
    let lengths = by_arm.clone().map(|s| s.iter().map(|r| r.length as f64).collect::<Vec<_>>());
    let rewards = by_arm.clone().map(|s| s.iter().map(|r| r.reward).collect::<Vec<_>>());
    let dense = by_arm.clone().map(|s| s.iter().map(|r| r.dense.as_slice()).collect::<Vec<_>>());
    let mut outcomes = vec![
        outcome::per_session(
            "session_length",
            "session length (items)",
            "higher",
            [(names[0], &lengths[0]), (names[1], &lengths[1])],
        ),
        outcome::per_session(
            "cumulative_reward",
            "cumulative reward per session",
            "higher",
            [(names[0], &rewards[0]), (names[1], &rewards[1])],
        ),
    ];
    outcomes.extend(outcome::exposure(
        [(names[0], &dense[0]), (names[1], &dense[1])],
        world.item_ids.len(),
        popular,
        cfg.bootstrap,
        cfg.seed,
    ));
    let sequential: Vec<SequentialResult> = [Primary::SessionLength, Primary::CumulativeReward]
        .iter()
        .zip(tests)
        .zip(traces)
        .map(|((which, t), trace)| SequentialResult {
            metric: which.key().into(),
            primary: *which == cfg.primary,
            method: "mixture SPRT, normal mixture (Johari, Pekelis, Walsh 2017): always-valid p-value".into(),
            alpha: t.alpha,
            mixture_sd: t.mixture_sd,
            min_per_arm: t.min_per_arm,
            p: t.p,
            decided_after: t.crossing.map(|c| c.at),
            direction: t.crossing.map(|c| c.direction),
            trace,
        })
        .collect();
    let primary = sequential.iter().find(|s| s.primary).expect("one primary");
    let decision = decision_line(primary, names, cfg.primary.label(), sessions.len());
    let provenance = dsrm_study::provenance::Provenance {
        dataset: Some(&world.dataset),
        synthetic: Some(world.is_synthetic()),
        label: Some(dsrm_study::provenance::data_label(world)),
        preset: Some(preset),
        seeds: Some(dsrm_study::provenance::Seeds::List(vec![cfg.seed])),
        env_settings: Some(&world.settings),
        world: Some(dsrm_study::provenance::WorldSummary::size(world)),
        ..dsrm_study::provenance::Provenance::new()
    };
    let mut model_notes = vec![
        format!(
            "users: {} distinct users of the ground truth ({} in all), a seeded permutation, one session each",
            cfg.users,
            world.spec.n_users()
        ),
        format!(
            "rewards and quitting: the simulator (dsrm_sim::Env) with the runs' ground truth and quit rules \
             (preset {}, Max Len {}{})",
            preset,
            world.spec.max_turn,
            if world.spec.popularity.is_some() { ", popularity-aware abandonment on" } else { "" }
        ),
        format!("k = {}: the user consumes the first recommended item not yet consumed", cfg.k),
        "not modelled: returning users (no return rate), EasyRL4Rec's random initial item, the feedback-loop \
         mechanisms (conformity, drift, satiation act between retraining rounds; this is one round)"
            .into(),
        "exposure counts consumed items (one per step, as the simulator's metrics do)".into(),
    ];
    model_notes.extend(notes);
    let arms = cfg
        .arms
        .iter()
        .zip(healths)
        .enumerate()
        .map(|(i, (a, h))| ArmInfo {
            name: a.name.clone(),
            run: a.run.clone(),
            url: a.url.clone().unwrap_or_default(),
            spawned: a.url.is_none(),
            traffic_percent: traffic.percent[i],
            sessions: by_arm[i].len(),
            policy: h.policy.clone(),
            selection: h.selection.as_str().map(String::from).unwrap_or_else(|| h.selection.to_string()),
        })
        .collect();
    Ok(AbTestReport {
        kind: "abtest".into(),
        dataset: world.dataset.clone(),
        synthetic: world.is_synthetic(),
        preset: preset.into(),
        population: world.spec.n_users(),
        n_items: world.item_ids.len(),
        users: cfg.users,
        seed: cfg.seed,
        k: cfg.k,
        arms,
        outcomes,
        sequential,
        decision,
        return_rate: None,
        return_rate_note: "not measured: the simulator does not model returning users (each user plays one session)"
            .into(),
        model_notes,
        provenance: serde_json::to_value(&provenance)?,
    })
}

/// "B > A on session length (always-valid p = 0.003 <= 0.05, after 312 of 1000 sessions)" or "no decision yet".
pub fn decision_line(test: &SequentialResult, names: [&str; 2], label: &str, sessions: usize) -> String {
    match (test.decided_after, test.direction) {
        (Some(at), Some(direction)) => {
            let (hi, lo) = match direction {
                Direction::BGreater => (names[1], names[0]),
                Direction::AGreater => (names[0], names[1]),
            };
            format!(
                "{hi} > {lo} on {label} (always-valid p = {:.4} <= {}, first reached after {at} of {sessions} sessions)",
                test.p, test.alpha
            )
        }
        _ => format!(
            "no decision yet on {label}: always-valid p = {:.4} > {} after {sessions} sessions",
            test.p, test.alpha
        ),
    }
}

fn write(dir: &Path, report: &AbTestReport, sessions: &[SessionRecord]) -> Result<()> {
    dsrm_files::write_json(&dir.join(REPORT_FILE), report)?;
    dsrm_files::write_json(&dir.join("provenance.json"), &report.provenance)?;
    let mut csv = String::from("metric,arm,mean,lo,hi,n,interval\n");
    for o in &report.outcomes {
        for a in &o.arms {
            csv.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                o.metric, a.arm, a.value.mean, a.value.lo, a.value.hi, a.n, o.interval
            ));
        }
        let d = &o.difference;
        let name = format!("{}-{}", report.arms[1].name, report.arms[0].name);
        csv.push_str(&format!("{},{name},{},{},{},,{}\n", o.metric, d.mean, d.lo, d.hi, o.interval));
    }
    dsrm_files::write_atomic(&dir.join("abtest.csv"), csv.as_bytes())?;
    let mut lines = String::new();
    for s in sessions {
        lines.push_str(&serde_json::to_string(s)?);
        lines.push('\n');
    }
    dsrm_files::write_atomic(&dir.join("sessions.jsonl"), lines.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_flags_parse_and_bad_ones_name_the_flag() {
        let arms = arms_from_flags("A=runs/a, B=runs/b", Some("B=http://127.0.0.1:9/")).unwrap();
        assert_eq!(arms[0], ArmSpec { name: "A".into(), run: "runs/a".into(), url: None });
        assert_eq!(arms[1].url.as_deref(), Some("http://127.0.0.1:9/"));
        let err = |arms: &str, urls: Option<&str>| format!("{:#}", arms_from_flags(arms, urls).unwrap_err());
        assert!(err("A:runs/a,B=runs/b", None).contains("--arms: \"A:runs/a\" is not NAME=VALUE"));
        assert!(err("A b=runs/a,B=runs/b", None).contains("NAME of 1 to 32 letters"));
        assert!(err("A=runs/a", None).contains("exactly two arms"));
        assert!(err("A=runs/a,B=runs/b,C=runs/c", None).contains("exactly two arms"));
        assert!(err("A=runs/a,A=runs/b", None).contains("named twice"));
        assert!(err("A=,B=runs/b", None).contains("empty value"));
        assert!(err("A=runs/a,B=runs/b", Some("C=http://x:1")).contains("no arm named C"));
        assert!(err("A=runs/a,B=runs/b", Some("A=ftp://x")).contains("--url A=ftp://x"));
    }

    #[test]
    fn the_decision_line_names_the_winner_or_says_none_yet() {
        let mut t = SequentialResult {
            metric: "session_length".into(),
            primary: true,
            method: String::new(),
            alpha: 0.05,
            mixture_sd: 0.25,
            min_per_arm: 10,
            p: 0.003,
            decided_after: Some(312),
            direction: Some(Direction::BGreater),
            trace: Vec::new(),
        };
        assert_eq!(
            decision_line(&t, ["A", "B"], "session length", 1000),
            "B > A on session length (always-valid p = 0.0030 <= 0.05, first reached after 312 of 1000 sessions)"
        );
        t.direction = Some(Direction::AGreater);
        assert!(decision_line(&t, ["A", "B"], "session length", 1000).starts_with("A > B"));
        (t.decided_after, t.direction, t.p) = (None, None, 0.41);
        assert_eq!(
            decision_line(&t, ["A", "B"], "session length", 1000),
            "no decision yet on session length: always-valid p = 0.4100 > 0.05 after 1000 sessions"
        );
    }
}
