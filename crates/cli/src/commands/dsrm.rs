//! `dsrm dsrm …`: the DSRM stage on its own (`docs/design.md` §4.3).
//!
//! * `dsrm dsrm train --config F --out DIR`: replay the training log through the frozen tracker, train the
//!   denoiser of `[train.dsrm]` (a `dsrm train` config), save `DIR/dsrm.bin` with the config, seeds and data
//!   hashes in its metadata. `[train.dsrm] checkpoint = "DIR/dsrm.bin"` then reuses it in training runs.
//! * `dsrm dsrm purify --model M --input states.csv --out purified.csv`: purify CSV rows of floats with a
//!   stage (`dsrm.bin`) or a bare denoiser checkpoint.
//! * `dsrm dsrm fidelity --config F [--out DIR]`: on synthetic KuaiRec with a known truth, raw vs purified
//!   states across generator noise levels (see [`FidelityFile`] for the two measures).

use super::train::TrainFile;
use crate::config::DataConfig;
use crate::{loading, output};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use dsrm_data::synth::SynthConfig;
use dsrm_denoise::stage::{DsrmModel, DsrmStageConfig, StageEvent};
use dsrm_denoise::{Denoiser, FitReport};
use dsrm_models::MfConfig;
use dsrm_nn::tch::{Kind, Tensor};
use dsrm_sim::world::WorldConfig;
use dsrm_sim::{EnvConfig, World};
use dsrm_state::TrackerConfig;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum DsrmCommand {
    /// Train the DSRM stage of a `dsrm train` config (its [train.dsrm], [train.tracker], [world_model]).
    Train {
        #[arg(long)]
        config: PathBuf,
        /// Output directory: dsrm.bin, fit.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// Purify a CSV of states (one row of floats per state, optional header) with a trained model.
    Purify {
        /// A stage (dsrm.bin) or a denoiser checkpoint.
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Raw vs purified states on synthetic data across generator noise levels (probe of the true preference,
    /// popularity probe).
    Fidelity(FidelityArgs),
}

pub fn run(command: DsrmCommand) -> Result<()> {
    match command {
        DsrmCommand::Train { config, out } => train(&config, &out),
        DsrmCommand::Purify { model, input, out } => purify(&model, &input, &out),
        DsrmCommand::Fidelity(args) => fidelity(args),
    }
}

/// One line for a progress bar.
pub fn describe(event: &StageEvent) -> String {
    match event {
        StageEvent::Replayed { states, users } => format!("DSRM: {states} states from {users} users"),
        StageEvent::Epoch(e) => format!("DSRM {} epoch {} valid {:.5}", e.phase, e.epoch, e.valid_loss),
    }
}

/// A progress bar over the denoiser's epochs.
fn stage_progress(cfg: &DsrmStageConfig) -> (indicatif::ProgressBar, impl FnMut(StageEvent)) {
    let epochs = match &cfg.denoiser {
        dsrm_denoise::DenoiserConfig::Ddpm(c) => c.train.max_epochs,
        dsrm_denoise::DenoiserConfig::Ddim(c) => c.ddpm.train.max_epochs,
        dsrm_denoise::DenoiserConfig::Distilled(c) => c.teacher.train.max_epochs + c.student.train.max_epochs,
        dsrm_denoise::DenoiserConfig::Vae(c) => c.train.max_epochs,
        dsrm_denoise::DenoiserConfig::Identity(_) => 0,
    };
    let pb = output::bar(epochs as u64, "DSRM");
    let bar = pb.clone();
    (pb, move |e: StageEvent| {
        if matches!(&e, StageEvent::Epoch(l) if l.epoch > 0) {
            bar.inc(1);
        }
        bar.set_message(describe(&e));
    })
}

/// The fit reports as a terminal table.
fn print_reports(reports: &[FitReport], rows: (i64, i64)) {
    let header = ["model", "epochs", "best epoch", "best valid loss", "stopped early", "train rows", "valid rows"];
    let mut t = output::table(header.map(String::from).to_vec());
    for r in reports {
        t.add_row(vec![
            r.phase.clone(),
            r.epochs.to_string(),
            r.best_epoch.to_string(),
            format!("{:.6}", r.best_valid_loss),
            r.stopped_early.to_string(),
            r.train_rows.to_string(),
            r.valid_rows.to_string(),
        ]);
    }
    if reports.is_empty() {
        t.add_row(vec![
            "identity (nothing to train)".into(),
            "".into(),
            "".into(),
            "".into(),
            "".into(),
            rows.0.to_string(),
            rows.1.to_string(),
        ]);
    }
    println!("{t}");
}

// ─────────────────────────────────────────────── train ───────────────────────────────────────────────

fn train(config: &Path, out: &Path) -> Result<()> {
    let file = TrainFile::load(config)?;
    let Some(stage) = &file.train.dsrm else { bail!("{}: no [train.dsrm] table", config.display()) };
    dsrm_nn::runtime::init(1, stage.seed);
    let world = loading::load_world_from(&file.data, &file.env, &file.world)?;
    let (_reward, embeddings) = super::train::reward_model(&file.world_model, &world, out, false, true)?;
    let (pb, mut progress) = stage_progress(stage);
    let mut model = DsrmModel::fit(stage, &file.train.tracker, &world, embeddings.as_ref(), &mut progress)
        .context("training the DSRM stage")?;
    pb.finish_and_clear();
    model.provenance = json!({
        "dsrm_version": env!("CARGO_PKG_VERSION"),
        "command": std::env::args().collect::<Vec<_>>(),
        "created_at": chrono::Utc::now().to_rfc3339(),
        "config": file,
        "seeds": { "stage": stage.seed, "world_model": file.world_model.seed },
        "synthetic": world.is_synthetic(),
        "data": world.provenance,
    });
    let path = out.join(dsrm_denoise::stage::RUN_FILE);
    model.save(&path).with_context(|| format!("saving {}", path.display()))?;
    output::write_json(&out.join("fit.json"), &json!({ "reports": model.reports, "provenance": model.provenance }))?;
    print_reports(&model.reports, model.rows);
    let reads = match stage.condition_window() {
        0 => "o_t".to_string(),
        w => format!("o_t ⊕ its {w}-step history summary"),
    };
    eprintln!(
        "wrote {} ({}; reads {reads}; clean target: {:?})",
        path.display(),
        model.denoiser()?.name(),
        stage.target()
    );
    Ok(())
}

// ─────────────────────────────────────────────── purify ───────────────────────────────────────────────

fn purify(model: &Path, input: &Path, out: &Path) -> Result<()> {
    let denoiser: Box<dyn Denoiser> = match DsrmModel::load(model) {
        Ok(stage) => stage.denoiser()?,
        Err(_) => dsrm_denoise::load(model)
            .with_context(|| format!("{}: neither a DSRM stage nor a denoiser checkpoint", model.display()))?,
    };
    let text = std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let width = denoiser.input_dim() as usize;
    let form = match denoiser.cond_dim() {
        0 => format!("each row a {width}-d state"),
        c => format!("each row a {}-d state followed by its {c}-d history summary", denoiser.output_dim()),
    };
    let rows = parse_rows(&text, width).map_err(|e| anyhow::anyhow!("{}:{e} ({form})", input.display()))?;
    if rows.is_empty() {
        bail!("{}: no states", input.display());
    }
    let flat: Vec<f32> = rows.concat();
    let states = Tensor::f_from_slice(&flat)?.f_reshape([rows.len() as i64, width as i64])?;
    let purified = denoiser.try_purify(&states)?.f_to_kind(Kind::Float)?.f_contiguous()?;
    let values = Vec::<f32>::try_from(purified.f_reshape([-1])?)?;
    let mut csv = String::new();
    for row in values.chunks(denoiser.output_dim() as usize) {
        csv.push_str(&row.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","));
        csv.push('\n');
    }
    output::write_atomic(out, csv.as_bytes())?;
    eprintln!("purified {} states with {} -> {}", rows.len(), denoiser.name(), out.display());
    Ok(())
}

/// Rows of `width` finite floats; a first line whose first field is not a number is a header. Errors read
/// `LINE:COLUMN: problem` (1-based; the caller prefixes the file).
fn parse_rows(text: &str, width: usize) -> std::result::Result<Vec<Vec<f32>>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if i == 0 && fields[0].parse::<f32>().is_err() {
            continue; // header
        }
        if fields.len() != width {
            return Err(format!("{}: expected {width} comma-separated floats, found {} fields", i + 1, fields.len()));
        }
        let row = fields
            .iter()
            .enumerate()
            .map(|(c, f)| match f.parse::<f32>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(format!("{}:{}: expected a finite float, found {f:?}", i + 1, c + 1)),
            })
            .collect::<std::result::Result<Vec<f32>, String>>()?;
        rows.push(row);
    }
    Ok(rows)
}

// ────────────────────────────────────────────── fidelity ──────────────────────────────────────────────

#[derive(Args)]
pub struct FidelityArgs {
    /// Fidelity config (configs/fidelity.toml).
    #[arg(long)]
    config: PathBuf,
    /// Output directory (fidelity.csv, fidelity.json). Default: runs/fidelity.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The `dsrm dsrm fidelity` config. Unknown keys are errors.
///
/// For each noise level m, the synthetic generator runs with `noise_log_sd`, `big_extra_noise_log_sd` and
/// `big_popularity_bias` multiplied by m (the observation noise of both matrices and the big matrix's
/// popularity bias of feedback; exposure is left as configured). On its training log (the big matrix on the
/// catalogue videos) the frozen tracker's states are built (MF item factors as the pretrained table), the DSRM
/// is trained on them, and raw states o_t are compared with purified ŝ_t, both on the users held out of the
/// probes (a `probe_fraction` of users fit each probe, the others score it; states before any step excluded):
///
/// * **preference probe**: ridge regression (penalty `ridge`, intercept) from the state to the user's true
///   preference y_u = [affinity_0..30, factor_0..7, bias] from `truth/user_preferences.csv`, each column
///   z-scored over the probe-fit users. Reported: the mean cosine between predicted and true y_u over held-out
///   states, and R² = 1 − Σ‖y − ŷ‖² / Σ‖y − ȳ‖² pooled over columns. Higher is better.
/// * **popularity probe**: the popularity direction of a representation is the ridge regression vector w from
///   the state to p = the mean true log-popularity l_v (`truth/item_truth.csv`) of the items in the state's
///   tracker window; reported is the Pearson correlation between ⟨s, w⟩ and p on held-out states, i.e. how
///   strongly the state lies along the popularity of what was shown. Lower is better: popularity comes from
///   exposure and conformity bias, not from the user's preference.
///
/// With `dsrm.condition_window` W_c > 0 the denoiser also reads a W_c-step history summary, so two more rows
/// separate history from purification: `history` (the summary alone) and `raw+history` (o_t ⊕ summary, the
/// denoiser's exact input). Purification adds something only where `purified` beats `raw+history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FidelityFile {
    /// Multipliers of the generator's noise knobs (see above).
    pub noise_levels: Vec<f64>,
    /// Seed of the generator.
    pub synth_seed: u64,
    /// Share of users that fit the probes (the rest score them).
    pub probe_fraction: f64,
    /// Ridge penalty of both probes (on z-scored states).
    pub ridge: f64,
    /// The generator's settings at level 1 (missing keys: the `full` defaults).
    pub synth: SynthConfig,
    pub env: EnvConfig,
    pub world: WorldConfig,
    /// The MF whose item factors are the tracker's pretrained table.
    pub mf: MfConfig,
    pub tracker: TrackerConfig,
    /// The stage (denoiser, its training, condition).
    pub dsrm: DsrmStageConfig,
}

impl Default for FidelityFile {
    fn default() -> Self {
        Self {
            noise_levels: vec![0.5, 1.0, 2.0],
            synth_seed: 0,
            probe_fraction: 0.5,
            ridge: 1.0,
            synth: SynthConfig::default(),
            env: EnvConfig::default(),
            world: WorldConfig::default(),
            mf: MfConfig::default(),
            tracker: TrackerConfig::default(),
            dsrm: DsrmStageConfig::default(),
        }
    }
}

/// One (noise level, representation) row of the report.
#[derive(Debug, Clone, Serialize)]
struct FidelityRow {
    noise_level: f64,
    representation: String,
    pref_cosine: f64,
    pref_r2: f64,
    pop_corr: f64,
    states: usize,
    users: usize,
}

fn fidelity(args: FidelityArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let file: FidelityFile = toml::from_str(&text).with_context(|| format!("config {}", args.config.display()))?;
    if file.noise_levels.is_empty() || file.noise_levels.iter().any(|m| !(*m >= 0.0 && m.is_finite())) {
        bail!("noise_levels: need at least one finite level >= 0");
    }
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs/fidelity"));
    dsrm_nn::runtime::init(1, file.dsrm.seed);
    let mut rows = Vec::new();
    let mut levels = Vec::new();
    for &m in &file.noise_levels {
        let (level_rows, info) = fidelity_level(&file, m, &loading::cache_dir())?;
        rows.extend(level_rows);
        levels.push(info);
    }
    print_fidelity(&rows);
    let mut csv = String::from("noise_level,representation,pref_cosine,pref_r2,pop_corr,states,users\n");
    for r in &rows {
        csv.push_str(&format!(
            "{},{},{:.6},{:.6},{:.6},{},{}\n",
            r.noise_level, r.representation, r.pref_cosine, r.pref_r2, r.pop_corr, r.states, r.users
        ));
    }
    output::write_atomic(&out.join("fidelity.csv"), csv.as_bytes())?;
    output::write_json(
        &out.join("fidelity.json"),
        &json!({
            "rows": rows,
            "levels": levels,
            "label": "SYNTHETIC data in KuaiRec format, not KuaiRec results",
            "provenance": {
                "dsrm_version": env!("CARGO_PKG_VERSION"),
                "command": std::env::args().collect::<Vec<_>>(),
                "created_at": chrono::Utc::now().to_rfc3339(),
                "config": file,
            },
        }),
    )?;
    eprintln!("wrote {}/{{fidelity.csv, fidelity.json}}", out.display());
    Ok(())
}

fn print_fidelity(rows: &[FidelityRow]) {
    let header = ["noise level", "states", "pref cosine ↑", "pref R² ↑", "popularity corr ↓", "test states"];
    let mut t = output::table(header.map(String::from).to_vec());
    for r in rows {
        t.add_row(vec![
            format!("{}", r.noise_level),
            r.representation.clone(),
            format!("{:.4}", r.pref_cosine),
            format!("{:.4}", r.pref_r2),
            format!("{:.4}", r.pop_corr),
            r.states.to_string(),
        ]);
    }
    println!("{t}");
}

/// The generator config at noise level `m`.
fn scaled(cfg: &SynthConfig, m: f64) -> SynthConfig {
    SynthConfig {
        noise_log_sd: cfg.noise_log_sd * m,
        big_extra_noise_log_sd: cfg.big_extra_noise_log_sd * m,
        big_popularity_bias: cfg.big_popularity_bias * m,
        ..cfg.clone()
    }
}

/// Generates (or reuses) the set of one level: cached under the hash of its settings and seed.
fn synthetic_set(cache: &Path, cfg: &SynthConfig, seed: u64) -> Result<PathBuf> {
    let key = hex(&Sha256::digest(serde_json::to_vec(&(cfg, seed))?))[..16].to_string();
    let dir = cache.join(format!("fidelity-synthetic-{key}"));
    if !dir.join("synthetic.json").exists() {
        let pb = output::spinner(&format!("generating {}", dir.display()));
        dsrm_data::synth::generate(cfg, seed, &dir, &mut |_, _, _| {})
            .with_context(|| format!("generating synthetic KuaiRec into {}", dir.display()))?;
        pb.finish_and_clear();
    }
    Ok(dir)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fidelity_level(file: &FidelityFile, m: f64, cache: &Path) -> Result<(Vec<FidelityRow>, serde_json::Value)> {
    let synth = scaled(&file.synth, m);
    let dir = synthetic_set(cache, &synth, file.synth_seed)?;
    let data = DataConfig { dir: Some(dir.clone()), ..Default::default() };
    let world = loading::load_world_from(&data, &file.env, &file.world)?;
    let pb = output::spinner("fitting the MF item table");
    let mf = dsrm_world::MfReward::fit(&world, &file.mf).context("fitting the MF")?;
    let embeddings = mf.item_embeddings()?;
    pb.finish_and_clear();
    let (pb, mut progress) = stage_progress(&file.dsrm);
    let model = DsrmModel::fit(&file.dsrm, &file.tracker, &world, Some(&embeddings), &mut progress)
        .with_context(|| format!("training the DSRM at noise level {m}"))?;
    pb.finish_and_clear();

    // Raw and purified states of every replayed step.
    let replayed = model.replay(&world)?;
    let d = model.state_dim()?;
    let denoiser = model.denoiser()?;
    let mut parts = Vec::new();
    for start in (0..replayed.states.size()[0]).step_by(8192) {
        let len = 8192.min(replayed.states.size()[0] - start);
        parts.push(denoiser.try_purify(&replayed.states.f_narrow(0, start, len)?)?);
    }
    let purified = Tensor::f_cat(&parts, 0)?;

    // Truth: preferences per user, popularity per item, and the popularity of each state's window.
    let prefs = read_truth(&dir.join("truth/user_preferences.csv"), "user_id", |h| {
        h.starts_with("affinity_") || h.starts_with("factor_") || h == "bias"
    })?;
    let pops = read_truth(&dir.join("truth/item_truth.csv"), "video_id", |h| h == "log_popularity")?;
    let user_ids = log_user_ids(&world, &dir)?;
    let window = file.tracker.window();
    let (mut keep, mut pref_rows, mut pop_values) = (Vec::new(), Vec::new(), Vec::new());
    for (n, (&u, &t)) in replayed.users.iter().zip(&replayed.steps).enumerate() {
        if t == 0 {
            continue;
        }
        let user_id = user_ids[u as usize];
        let pref = prefs.get(&user_id).with_context(|| format!("user {user_id} missing from the truth"))?;
        let row = replayed.log_rows[n];
        let items = &world.train.item[row - (t as usize).min(window)..row];
        let mut pop = 0.0;
        for &i in items {
            let video = world.item_ids[i as usize];
            pop += pops.get(&video).with_context(|| format!("video {video} missing from the truth"))?[0];
        }
        keep.push(n as i64);
        pref_rows.push(pref.clone());
        pop_values.push(pop / items.len() as f64);
    }
    let users: Vec<u32> = keep.iter().map(|&n| replayed.users[n as usize]).collect();
    let (fit_rows, test_rows) =
        dsrm_denoise::stage::split_by_user(&users, file.probe_fraction, file.dsrm.seed ^ 0x5eed)?;
    let keep = Tensor::f_from_slice(&keep)?;
    let k = pref_rows[0].len() as i64;
    let y_pref = Tensor::f_from_slice(&pref_rows.concat())?.f_reshape([-1, k])?;
    let y_pop = Tensor::f_from_slice(&pop_values)?.f_reshape([-1, 1])?;
    let mut rows = Vec::new();
    let test_users = {
        let mut u: Vec<u32> = test_rows.iter().map(|&r| users[r as usize]).collect();
        u.sort_unstable();
        u.dedup();
        u.len()
    };
    for (name, states) in representations(&replayed.states, d, purified)? {
        let x = states.f_index_select(0, &keep)?.f_to_kind(Kind::Double)?;
        let pref = probe(&x, &y_pref, &fit_rows, &test_rows, file.ridge)?;
        let pop = probe(&x, &y_pop, &fit_rows, &test_rows, file.ridge)?;
        rows.push(FidelityRow {
            noise_level: m,
            representation: name.to_string(),
            pref_cosine: pref.cosine,
            pref_r2: pref.r2,
            pop_corr: pop.corr,
            states: test_rows.len(),
            users: test_users,
        });
    }
    let info = json!({
        "noise_level": m,
        "synth": { "noise_log_sd": synth.noise_log_sd, "big_extra_noise_log_sd": synth.big_extra_noise_log_sd,
                   "big_popularity_bias": synth.big_popularity_bias, "seed": file.synth_seed, "dir": dir },
        "data": world.provenance,
        "denoiser": denoiser.name(),
        "reports": model.reports,
        "dsrm_rows": { "train": model.rows.0, "valid": model.rows.1 },
    });
    Ok((rows, info))
}

/// The states the probes compare, by name: `raw` o_t; with a history-summary condition (input wider than
/// `d`) also `history` (the summary alone) and `raw+history` (o_t ⊕ summary, exactly the denoiser's input, so
/// the fair baseline: a linear probe that sees the same history the denoiser sees); then `purified` ŝ_t.
fn representations(input: &Tensor, d: i64, purified: Tensor) -> Result<Vec<(&'static str, Tensor)>> {
    let mut reps = vec![("raw", input.f_narrow(1, 0, d)?)];
    if input.size()[1] > d {
        reps.push(("history", input.f_narrow(1, d, input.size()[1] - d)?));
        reps.push(("raw+history", input.shallow_clone()));
    }
    reps.push(("purified", purified));
    Ok(reps)
}

/// The data-set `user_id` of every dense log user. `World::kuairec` numbers the environment (small-matrix)
/// users first (`world.user_ids`), then the other big-matrix users in increasing `user_id`; the truth's
/// `in_big` / `in_small` flags give that list, checked against the log's user count.
fn log_user_ids(world: &World, dir: &Path) -> Result<Vec<u32>> {
    let flags = read_truth(&dir.join("truth/user_preferences.csv"), "user_id", |h| h == "in_big" || h == "in_small")?;
    let mut others: Vec<u32> = flags
        .iter()
        .filter(|(id, f)| f[0] == 1.0 && f[1] == 0.0 && !world.user_ids.contains(id))
        .map(|(id, _)| *id)
        .collect();
    others.sort_unstable();
    let mut ids = world.user_ids.clone();
    ids.extend(others);
    if ids.len() != world.train_full.n_users {
        bail!("cannot map log users to the truth: {} ids for {} log users", ids.len(), world.train_full.n_users);
    }
    Ok(ids)
}

/// `key column -> selected columns` of a truth CSV.
fn read_truth(path: &Path, key: &str, select: impl Fn(&str) -> bool) -> Result<HashMap<u32, Vec<f64>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("empty truth file")?.split(',').collect();
    let key_col =
        header.iter().position(|h| *h == key).with_context(|| format!("{}: no {key} column", path.display()))?;
    let cols: Vec<usize> = (0..header.len()).filter(|&c| select(header[c])).collect();
    let mut out = HashMap::new();
    for (i, line) in lines.enumerate() {
        let fields = split_quoted(line);
        let at = |c: usize| fields.get(c).copied();
        let bad = |c: usize| anyhow::anyhow!("{}:{}:{}: expected a number", path.display(), i + 2, c + 1);
        let id: u32 = at(key_col).and_then(|f| f.parse().ok()).ok_or_else(|| bad(key_col))?;
        let values = cols
            .iter()
            .map(|&c| at(c).and_then(|f| f.parse::<f64>().ok()).ok_or_else(|| bad(c)))
            .collect::<Result<Vec<_>>>()?;
        out.insert(id, values);
    }
    Ok(out)
}

/// Splits a CSV line on commas outside double quotes (the truth files quote tag lists such as "[1, 2]").
fn split_quoted(line: &str) -> Vec<&str> {
    let (mut fields, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                fields.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&line[start..]);
    fields
}

struct ProbeScore {
    cosine: f64,
    r2: f64,
    /// Pearson correlation of prediction and target (first column).
    corr: f64,
}

/// Ridge regression (intercept, z-scored inputs and targets from the fit rows) fit on `fit`, scored on `test`.
fn probe(x: &Tensor, y: &Tensor, fit: &[i64], test: &[i64], ridge: f64) -> Result<ProbeScore> {
    let y = y.f_to_kind(Kind::Double)?;
    let rows = |t: &Tensor, r: &[i64]| -> Result<Tensor> { Ok(t.f_index_select(0, &Tensor::f_from_slice(r)?)?) };
    let (xf, yf, xt, yt) = (rows(x, fit)?, rows(&y, fit)?, rows(x, test)?, rows(&y, test)?);
    let zs = |t: &Tensor| -> Result<(Tensor, Tensor)> {
        let mean = t.f_mean_dim(0, true, Kind::Double)?;
        let sd = t.f_std_dim(0, true, true)?.f_clamp_min(1e-9)?;
        Ok((mean, sd))
    };
    let (xm, xs) = zs(&xf)?;
    let (ym, ys) = zs(&yf)?;
    let norm = |t: &Tensor, m: &Tensor, s: &Tensor| -> Result<Tensor> { Ok(t.f_sub(m)?.f_div(s)?) };
    let (xf, xt, yf, yt) = (norm(&xf, &xm, &xs)?, norm(&xt, &xm, &xs)?, norm(&yf, &ym, &ys)?, norm(&yt, &ym, &ys)?);
    let d = xf.size()[1];
    let gram = xf.f_tr()?.f_matmul(&xf)?.f_add(&Tensor::f_eye(d, (Kind::Double, xf.device()))?.f_mul_scalar(ridge)?)?;
    let w = Tensor::f_linalg_solve(&gram, &xf.f_tr()?.f_matmul(&yf)?, true)?;
    let pred = xt.f_matmul(&w)?;
    let value = |t: Tensor| t.f_double_value(&[]);
    let sse = value(pred.f_sub(&yt)?.f_square()?.f_sum(Kind::Double)?)?;
    let sst = value(yt.f_sub(&yt.f_mean_dim(0, true, Kind::Double)?)?.f_square()?.f_sum(Kind::Double)?)?;
    let dot = pred.f_mul(&yt)?.f_sum_dim_intlist(1, false, Kind::Double)?;
    let norms =
        pred.f_norm_scalaropt_dim(2, 1, false)?.f_mul(&yt.f_norm_scalaropt_dim(2, 1, false)?)?.f_clamp_min(1e-12)?;
    let cosine = value(dot.f_div(&norms)?.f_mean(Kind::Double)?)?;
    let (p, q) = (pred.f_select(1, 0)?, yt.f_select(1, 0)?);
    let (p, q) = (p.f_sub(&p.f_mean(Kind::Double)?)?, q.f_sub(&q.f_mean(Kind::Double)?)?);
    let corr = value(p.f_mul(&q)?.f_sum(Kind::Double)?)?
        / (value(p.f_square()?.f_sum(Kind::Double)?)? * value(q.f_square()?.f_sum(Kind::Double)?)?).sqrt().max(1e-12);
    Ok(ProbeScore { cosine, r2: 1.0 - sse / sst.max(1e-12), corr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_parse_with_a_header_and_report_line_and_column() {
        assert_eq!(parse_rows("a,b\n1,2\n\n3, 4.5\n", 2).unwrap(), vec![vec![1.0, 2.0], vec![3.0, 4.5]]);
        assert_eq!(parse_rows("1,2\n3,x\n", 2).unwrap_err(), "2:2: expected a finite float, found \"x\"");
        assert!(parse_rows("1,2,3\n", 2).unwrap_err().starts_with("1: expected 2"));
        assert!(parse_rows("1,NaN\n", 2).unwrap_err().starts_with("1:2:"));
    }

    #[test]
    fn probe_recovers_a_linear_target_and_not_noise() {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_nn::runtime::seed(1);
        let x = Tensor::randn([400, 3], (Kind::Double, dsrm_nn::tch::Device::Cpu));
        let y = x.matmul(&Tensor::from_slice(&[1.0f64, -2.0, 0.5]).view([3, 1]));
        let (fit, test): (Vec<i64>, Vec<i64>) = (0..400).partition(|i| i % 2 == 0);
        let s = probe(&x, &y, &fit, &test, 1e-3).unwrap();
        assert!(s.r2 > 0.999 && s.corr > 0.999, "{} {}", s.r2, s.corr);
        let noise = Tensor::randn([400, 1], (Kind::Double, dsrm_nn::tch::Device::Cpu));
        assert!(probe(&x, &noise, &fit, &test, 1.0).unwrap().r2 < 0.05);
    }

    #[test]
    fn a_history_condition_adds_the_fair_baselines() {
        let _torch = dsrm_nn::runtime::exclusive();
        let input = Tensor::arange(24, (Kind::Float, dsrm_nn::tch::Device::Cpu)).view([2, 12]);
        let purified = Tensor::zeros([2, 6], (Kind::Float, dsrm_nn::tch::Device::Cpu));
        let reps = representations(&input, 6, purified.shallow_clone()).unwrap();
        let names: Vec<&str> = reps.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["raw", "history", "raw+history", "purified"]);
        assert!(reps[0].1.equal(&input.narrow(1, 0, 6)) && reps[1].1.equal(&input.narrow(1, 6, 6)));
        assert!(reps[2].1.equal(&input), "the fair baseline is the denoiser's whole input");
        let plain = representations(&input.narrow(1, 0, 6), 6, purified).unwrap();
        assert_eq!(plain.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["raw", "purified"]);
    }

    #[test]
    fn purify_reads_state_and_summary_rows_and_names_the_expected_form() {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_nn::tch::set_num_threads(1);
        dsrm_nn::runtime::seed(3);
        let data = Tensor::randn([200, 6], (Kind::Float, dsrm_nn::tch::Device::Cpu)) * 0.1;
        let cfg = dsrm_denoise::DdpmConfig {
            cond_dim: 3,
            hidden: vec![8],
            train: dsrm_denoise::TrainConfig { max_epochs: 1, ..Default::default() },
            ..Default::default()
        };
        let (model, _) = dsrm_denoise::Ddpm::fit(&data, &data, &cfg, &mut |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ddpm.bin");
        model.save(&path).unwrap();
        let (good, bad, out) = (dir.path().join("good.csv"), dir.path().join("bad.csv"), dir.path().join("out.csv"));
        std::fs::write(&good, "0.1,0.2,0.3,0.0,0.1,0.2\n0.3,0.2,0.1,0.2,0.1,0.0\n").unwrap();
        std::fs::write(&bad, "0.1,0.2,0.3\n").unwrap();
        purify(&path, &good, &out).unwrap();
        let written = std::fs::read_to_string(&out).unwrap();
        assert!(written.lines().count() == 2 && written.lines().all(|l| l.split(',').count() == 3), "{written}");
        let err = purify(&path, &bad, &out).unwrap_err().to_string();
        assert!(err.contains("bad.csv:1") && err.contains("3-d state followed by its 3-d history summary"), "{err}");
    }

    #[test]
    fn fidelity_runs_end_to_end_on_tiny_data() {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_nn::tch::set_num_threads(1);
        let cache = tempfile::tempdir().unwrap();
        let text = r#"
            noise_levels = [1.0]
            [synth]
            size = "tiny"
            n_big_users = 400
            n_big_videos = 1000
            n_small_users = 60
            n_small_videos = 200
            duplicate_heavy_rows = 2
            [dsrm]
            max_states = 3000
            [dsrm.denoiser]
            kind = "ddpm"
            hidden = [16]
            [dsrm.denoiser.train]
            max_epochs = 2
            lr = 1e-3
        "#;
        let file: FidelityFile = toml::from_str(text).unwrap();
        let (rows, info) = fidelity_level(&file, 1.0, cache.path()).unwrap();
        // The default stage reads a history summary, so the report carries its fair baselines.
        let names: Vec<&str> = rows.iter().map(|r| r.representation.as_str()).collect();
        assert_eq!(names, ["raw", "history", "raw+history", "purified"]);
        assert!(rows.iter().all(|r| r.pref_cosine.is_finite() && r.pref_r2.is_finite() && r.pop_corr.abs() <= 1.0));
        assert!(rows[0].pop_corr > 0.1, "raw states carry the popularity of their window: {}", rows[0].pop_corr);
        assert_eq!(info["reports"].as_array().unwrap().len(), 1);
        assert_eq!(split_quoted("1,\"[2, 3]\",4"), vec!["1", "\"[2, 3]\"", "4"]);
    }
}
