//! `dsrm serve --run RUN [--addr 127.0.0.1:8080] [--admin-token-file F] [--retuned DIR…] [--seed S]
//! [--log-dir D]` (or `--heuristic KIND [--data DIR --dataset D]`): serve a finished `dsrm train` run (or a
//! heuristic baseline) over HTTP until SIGTERM or ctrl-c (`dsrm_serve`;
//! `docs/serving.md` describes the endpoints and settings).

use crate::output;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use dsrm_data::Dataset;
use dsrm_policy::heuristics::HeuristicKind;
use dsrm_policy::Selection;
use dsrm_serve::metrics::Metrics;
use dsrm_serve::rowlog::RowLog;
use dsrm_serve::{Engine, EngineSettings, ServeSettings};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `--selection`.
#[derive(Clone, Copy, ValueEnum)]
pub enum SelectionArg {
    Sampled,
    Argmax,
}

#[derive(Args)]
pub struct ServeArgs {
    /// A finished `dsrm train` run directory (config.toml, checkpoint.bin; dsrm.bin with [train.dsrm]).
    #[arg(long, required_unless_present = "heuristic", conflicts_with = "heuristic")]
    pub run: Option<PathBuf>,
    /// Instead of a run: serve this heuristic baseline fitted on --data's training log (random, most-popular,
    /// mf-greedy; --seed seeds mf-greedy's user model). Default selection: sampled.
    #[arg(long, value_parser = parse_heuristic)]
    pub heuristic: Option<HeuristicKind>,
    /// With --heuristic: the data directory (default: the cached synthetic KuaiRec).
    #[arg(long, requires = "heuristic")]
    pub data: Option<PathBuf>,
    /// With --heuristic: kuairec | kuairand-pure | coat.
    #[arg(long, requires = "heuristic", value_parser = crate::commands::data::parse_dataset)]
    pub dataset: Option<Dataset>,
    /// With --heuristic: the environment preset (default dorl-paper; serving reads the catalogue, users and the
    /// popular split from it).
    #[arg(long, requires = "heuristic")]
    pub preset: Option<dsrm_sim::Preset>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// A file holding the bearer token of PUT /v1/admin/fairness (without it every admin call is refused).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// `dsrm retune --lambda-f` runs of RUN whose high levels PUT /v1/admin/fairness {"lambda_f": λ} may switch to.
    #[arg(long, num_args = 1..)]
    pub retuned: Vec<PathBuf>,
    /// Seed of the sessions' random streams (with each session id): same run, seed and requests, same answers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Append served and consumed rows here (served.csv, consumed.csv in the data set's log layout).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Sampled (softmax draws without replacement) or argmax top k. Default: the run's headline selection.
    #[arg(long, value_enum)]
    pub selection: Option<SelectionArg>,
    /// The largest k a request may ask for.
    #[arg(long, default_value_t = 100)]
    pub max_k: u64,
    /// Sessions held at most (least recently used dropped first).
    #[arg(long, default_value_t = 100_000)]
    pub sessions: usize,
    /// Seconds without a request after which a session is dropped.
    #[arg(long, default_value_t = 1800)]
    pub session_idle_s: u64,
    /// The largest request body accepted, bytes.
    #[arg(long, default_value_t = 4096)]
    pub max_body: usize,
    /// Score with the policy's networks on libtorch (scores bit-identical to evaluation's) instead of their
    /// frozen batch-one copies (the same scores to rounding, faster).
    #[arg(long)]
    pub libtorch_heads: bool,
}

fn parse_heuristic(s: &str) -> std::result::Result<HeuristicKind, String> {
    s.parse()
}

pub fn run(args: ServeArgs) -> Result<()> {
    let admin_token = match &args.admin_token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let token = token.trim().to_string();
            if token.is_empty() {
                bail!("--admin-token-file {} is empty", path.display());
            }
            Some(token)
        }
        None => None,
    };
    let Some(capacity) = NonZeroUsize::new(args.sessions) else { bail!("--sessions must be at least 1") };
    if args.max_k == 0 {
        bail!("--max-k must be at least 1");
    }
    let selection = args.selection.map(|s| match s {
        SelectionArg::Sampled => Selection::Sampled,
        SelectionArg::Argmax => Selection::Argmax,
    });
    let loaded = match (&args.run, args.heuristic) {
        (Some(run), _) => dsrm_serve::loaded::load(run, &args.retuned, selection, &output::progress())?,
        (None, Some(kind)) => {
            if !args.retuned.is_empty() {
                bail!("--retuned needs a hierarchical --run, not a heuristic");
            }
            let mut data = dsrm_study::config::DataConfig::default();
            data.dir = args.data.clone();
            if let Some(dataset) = args.dataset {
                data.dataset = dataset;
            }
            let env = args.preset.map(dsrm_sim::EnvConfig::from).unwrap_or_default();
            let selection = selection.unwrap_or(Selection::Sampled);
            dsrm_serve::loaded::load_heuristic(kind, &data, &env, args.seed, selection, &output::progress())?
        }
        (None, None) => bail!("give --run RUN or --heuristic KIND"),
    };
    let log = match &args.log_dir {
        Some(dir) => {
            Some(RowLog::open(dir, &loaded.dataset).with_context(|| format!("opening the logs in {}", dir.display()))?)
        }
        None => None,
    };
    let metrics = Arc::new(Metrics::new()?);
    let settings = EngineSettings {
        seed: args.seed,
        max_k: args.max_k,
        session_capacity: capacity,
        session_idle: Duration::from_secs(args.session_idle_s),
        libtorch_heads: args.libtorch_heads,
    };
    let engine = Engine::new(loaded, settings, Arc::clone(&metrics), log)?;
    let info = engine.info();
    let listener = std::net::TcpListener::bind(args.addr).with_context(|| format!("binding {}", args.addr))?;
    listener.set_nonblocking(true)?;
    eprintln!(
        "serving {} ({} on {}, {} items, {:?} selection) on http://{}; SIGTERM or ctrl-c stops",
        info.run,
        info.policy,
        info.dataset,
        info.n_items,
        info.selection,
        listener.local_addr()?
    );
    let serve = ServeSettings { max_body: args.max_body, admin_token, ..ServeSettings::default() };
    dsrm_serve::server::serve_blocking(engine, metrics, serve, listener, dsrm_serve::server::termination())?;
    eprintln!("stopped: in-flight requests answered");
    Ok(())
}
