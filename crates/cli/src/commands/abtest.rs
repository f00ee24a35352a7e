//! `dsrm abtest --arms A=RUN_A,B=RUN_B [--traffic 50,50] --users N [--out DIR] [--url A=URL,...] [--seed S]`:
//! a simulated A/B test of two trained runs, each served by a live `dsrm serve` (started here on a loopback
//! port, or given with `--url`) and driven over HTTP by the simulator's users. `dsrm_serve::abtest` does the
//! work; this parses the flags and prints the table and the decision (`docs/serving.md`, "A/B tests").

use crate::output;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use dsrm_serve::abtest::{self, AbTestConfig, AbTestReport, Primary};
use std::path::PathBuf;
use std::time::Duration;

/// `--primary`.
#[derive(Clone, Copy, ValueEnum)]
pub enum PrimaryArg {
    /// Items consumed per session.
    Length,
    /// Ground-truth reward summed over the session.
    Reward,
}

#[derive(Args)]
pub struct AbTestArgs {
    /// The two arms, control first: NAME=RUN,NAME=RUN (finished `dsrm train` runs on the same data and preset).
    #[arg(long)]
    pub arms: String,
    /// Traffic shares in percent, one per arm in --arms order, summing to 100.
    #[arg(long, value_delimiter = ',', default_values_t = vec![50.0, 50.0])]
    pub traffic: Vec<f64>,
    /// Users (one session each), at most the ground truth's population.
    #[arg(long)]
    pub users: usize,
    /// Where abtest.json, abtest.csv, sessions.jsonl and provenance.json go.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Servers already running an arm's run, NAME=http://HOST:PORT,...; the other arms get a server started here.
    #[arg(long)]
    pub url: Option<String>,
    /// Salt of the arm assignment hash, seed of the user order, the started servers and the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Items per recommendation (the user consumes the first; 1 is the simulator's step).
    #[arg(long, default_value_t = 1)]
    pub k: u64,
    /// Sessions in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// The outcome the sequential test decides on.
    #[arg(long, value_enum, default_value = "length")]
    pub primary: PrimaryArg,
    /// Level of the sequential test.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Scale τ of the mSPRT's normal mixture, in pooled standard deviations (the effect size it is tuned for).
    #[arg(long, default_value_t = 0.25)]
    pub mixture_sd: f64,
    /// Sessions per arm before the sequential test reports a p-value (a burn-in: variances are estimated).
    #[arg(long, default_value_t = abtest::mixture_sprt::DEFAULT_MIN_PER_ARM)]
    pub min_per_arm: usize,
    /// Bootstrap resamples for the exposure outcomes' intervals.
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Seconds a started server may take to load its run.
    #[arg(long, default_value_t = 300)]
    pub start_timeout_s: u64,
}

pub fn run(args: AbTestArgs) -> Result<()> {
    let arms = abtest::arms_from_flags(&args.arms, args.url.as_deref())?;
    let binary = std::env::current_exe().context("locating the dsrm binary to start dsrm serve with")?;
    let cfg = AbTestConfig {
        arms,
        traffic: args.traffic,
        users: args.users,
        seed: args.seed,
        k: args.k,
        concurrency: args.concurrency,
        alpha: args.alpha,
        mixture_sd: args.mixture_sd,
        min_per_arm: args.min_per_arm,
        primary: match args.primary {
            PrimaryArg::Length => Primary::SessionLength,
            PrimaryArg::Reward => Primary::CumulativeReward,
        },
        bootstrap: args.bootstrap,
        serve_binary: Some(binary),
        start_timeout: Duration::from_secs(args.start_timeout_s),
    };
    let report = abtest::run(&cfg, args.out.as_deref(), &|line| eprintln!("abtest: {line}"))?;
    print(&report);
    if let Some(out) = &args.out {
        eprintln!(
            "wrote {0}/abtest.json, {0}/abtest.csv, {0}/sessions.jsonl, {0}/provenance.json (dsrm report {0} adds \
             the A/B section)",
            out.display()
        );
    }
    Ok(())
}

/// The outcomes table, the sequential tests and the decision line.
fn print(r: &AbTestReport) {
    let (a, b) = (&r.arms[0], &r.arms[1]);
    let label = if r.synthetic { format!("{} — SYNTHETIC data", r.dataset) } else { r.dataset.clone() };
    println!(
        "A/B test on {label}, preset {}: {} users (seed {}); {} = {} ({}, {} sessions, {}%), {} = {} ({}, {} sessions, {}%)",
        r.preset,
        r.users,
        r.seed,
        a.name,
        a.run.display(),
        a.policy,
        a.sessions,
        a.traffic_percent,
        b.name,
        b.run.display(),
        b.policy,
        b.sessions,
        b.traffic_percent
    );
    let diff = format!("{} − {} [95% CI]", b.name, a.name);
    let mut t = output::table(&["outcome", &a.name, &b.name, &diff, "interval", "better"]);
    let cell = |v: &dsrm_serve::abtest::outcome::Interval| format!("{:.4} [{:.4}, {:.4}]", v.mean, v.lo, v.hi);
    for o in &r.outcomes {
        t.add_row(vec![
            o.label.clone(),
            cell(&o.arms[0].value),
            cell(&o.arms[1].value),
            cell(&o.difference),
            o.interval.clone(),
            o.better.clone(),
        ]);
    }
    t.add_row(vec![
        "return rate".to_string(),
        "—".into(),
        "—".into(),
        "—".into(),
        "not modelled".into(),
        String::new(),
    ]);
    println!("{t}");
    for s in &r.sequential {
        println!(
            "{}{}: always-valid p = {:.4}{}",
            s.metric,
            if s.primary { " (primary)" } else { " (secondary, not decided on)" },
            s.p,
            s.decided_after.map(|n| format!(", p <= {} first after {n} sessions", s.alpha)).unwrap_or_default()
        );
    }
    println!("decision: {}", r.decision);
}
