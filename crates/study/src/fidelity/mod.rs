//! `dsrm dsrm fidelity`: on synthetic KuaiRec with a known truth, raw vs purified states across generator noise
//! levels, scored on users the denoiser never saw (see [`FidelityFile`] for the split and the three measures).
//!
//! * `mod.rs`: the config, the run and one noise level;
//! * [`probe`]: the ridge-regression probe;
//! * [`csv`]: the reader of the generator's truth files.

pub mod csv;
pub mod probe;

use crate::config::DataConfig;
use crate::loading;
use crate::progress::{begin, Event, Progress};
use crate::provenance::Provenance;
use crate::stage;
use anyhow::{bail, Context, Result};
use csv::read_truth;
use dsrm_data::synth::SynthConfig;
use dsrm_denoise::stage::DsrmStageConfig;
use dsrm_models::MfConfig;
use dsrm_nn::tch::{Kind, Tensor};
use dsrm_sim::world::WorldConfig;
use dsrm_sim::{EnvConfig, World};
use dsrm_state::TrackerConfig;
use probe::probe;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The `dsrm dsrm fidelity` config. Unknown keys are errors.
///
/// For each noise level m, the synthetic generator runs with `noise_log_sd`, `big_extra_noise_log_sd` and
/// `big_popularity_bias` multiplied by m (the observation noise of both matrices and the big matrix's
/// popularity bias of feedback; exposure is left as configured). On its training log (the big matrix on the
/// catalogue videos) the frozen tracker's states are built (MF item factors as the pretrained table), the DSRM
/// is trained on them, and raw states o_t are compared with purified ŝ_t.
///
/// **Users.** One split, drawn once by the stage with its `seed` and written to `fidelity.json`:
/// `dsrm.holdout_fraction` (> 0, required) of the log's users are held out of the denoiser's training and
/// validation altogether; the probes are fit on the other users' states and scored on the held-out users'
/// (states before any step excluded). Nothing is chosen on the held-out users: the denoiser early-stops on its
/// validation users, and the report only reads.
///
/// * **distance to the clean target**: mean squared difference between the representation and each held-out
///   state's clean per-state target s^(0) (the same window re-encoded with the truth's noise-free, unbiased
///   ratios, `dsrm_denoise::stage::clean`); for representations of the state's width only. Lower is better.
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
    /// Whose states score the representations: `"held-out"` (default: the report; probes fit on the train and
    /// validation users) or `"validation"` (for choosing a setting: probes fit on the train users, scored on
    /// the validation users, and the held-out users' states are never read).
    pub score_on: ScoreOn,
    /// `[[variants]]`: named stages measured with the same file, each a `name` and the tables and keys it
    /// changes (merged over the file), e.g. `{ name = "unconditional", dsrm = { condition_window = 0 } }`.
    /// Chosen with `--variant NAME`; never written to the results.
    #[serde(skip_serializing)]
    pub variants: Vec<toml::Table>,
}

impl Default for FidelityFile {
    fn default() -> Self {
        Self {
            noise_levels: vec![0.5, 1.0, 2.0],
            synth_seed: 0,
            ridge: 1.0,
            synth: SynthConfig::default(),
            env: EnvConfig::default(),
            world: WorldConfig::default(),
            mf: MfConfig::default(),
            tracker: TrackerConfig::default(),
            dsrm: DsrmStageConfig::default(),
            score_on: ScoreOn::HeldOut,
            variants: Vec::new(),
        }
    }
}

/// One (noise level, representation) row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct FidelityRow {
    pub noise_level: f64,
    /// `raw`, `history`, `raw+history` or `purified` (the fidelity report's representations).
    pub representation: String,
    pub pref_cosine: f64,
    pub pref_r2: f64,
    pub pop_corr: f64,
    /// Mean squared difference to the held-out states' clean targets s^(0) (`None` for `raw+history`, which
    /// is twice the state's width).
    pub target_mse: Option<f64>,
    /// Held-out states the probes were scored on.
    pub states: usize,
    /// Held-out users.
    pub users: usize,
}

impl FidelityFile {
    /// Reads and checks a fidelity config; errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_variant(path, None)
    }

    /// [`Self::load`] with the `[[variants]]` entry `variant` merged over the file (`None`: the file as it is).
    pub fn load_variant(path: &Path, variant: Option<&str>) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut file: FidelityFile = toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
        if let Some(name) = variant {
            let names: Vec<&str> = file.variants.iter().filter_map(|v| v.get("name")?.as_str()).collect();
            let Some(chosen) = file.variants.iter().find(|v| v.get("name").and_then(|n| n.as_str()) == Some(name))
            else {
                bail!("{}: no [[variants]] entry named {name:?}; the file has {names:?}", path.display());
            };
            let mut merged: toml::Table = toml::from_str(&text)?;
            merged.remove("variants");
            let mut changes = chosen.clone();
            changes.remove("name");
            merge(&mut merged, changes);
            file = FidelityFile::deserialize(toml::Value::Table(merged))
                .with_context(|| format!("{}: variant {name:?}", path.display()))?;
        }
        if file.noise_levels.is_empty() || file.noise_levels.iter().any(|m| !(*m >= 0.0 && m.is_finite())) {
            bail!("noise_levels: need at least one finite level >= 0");
        }
        file.dsrm.validate().with_context(|| format!("{}: [dsrm]", path.display()))?;
        if file.dsrm.holdout_fraction <= 0.0 {
            bail!(
                "{}: [dsrm] holdout_fraction = {}: the fidelity report scores on users the denoiser never saw, so \
                 it needs holdout_fraction > 0 (e.g. 0.2)",
                path.display(),
                file.dsrm.holdout_fraction
            );
        }
        Ok(file)
    }
}

/// Every noise level of `file`, in order: the report's rows, written to `out/fidelity.csv` and
/// `out/fidelity.json` (with each level's data, denoiser and fit reports, and the provenance).
pub fn run(file: &FidelityFile, out: &Path, progress: Progress) -> Result<Vec<FidelityRow>> {
    dsrm_nn::runtime::init(1, file.dsrm.seed);
    let mut rows = Vec::new();
    let mut levels = Vec::new();
    for &m in &file.noise_levels {
        let (level_rows, info) = fidelity_level(file, m, &loading::cache_dir(), progress)?;
        rows.extend(level_rows);
        levels.push(info);
    }
    let mut csv = String::from("noise_level,representation,pref_cosine,pref_r2,pop_corr,target_mse,states,users\n");
    for r in &rows {
        let mse = r.target_mse.map_or(String::new(), |m| format!("{m:.6e}"));
        csv.push_str(&format!(
            "{},{},{:.6},{:.6},{:.6},{mse},{},{}\n",
            r.noise_level, r.representation, r.pref_cosine, r.pref_r2, r.pop_corr, r.states, r.users
        ));
    }
    dsrm_files::write_atomic(&out.join("fidelity.csv"), csv.as_bytes())?;
    dsrm_files::write_json(
        &out.join("fidelity.json"),
        &json!({
            "rows": rows,
            "levels": levels,
            "label": "SYNTHETIC data in KuaiRec format, not KuaiRec results",
            "provenance": Provenance::new().with_config(file)?.to_value()?,
        }),
    )?;
    Ok(rows)
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
fn synthetic_set(cache: &Path, cfg: &SynthConfig, seed: u64, progress: Progress) -> Result<PathBuf> {
    let key = hex(&Sha256::digest(serde_json::to_vec(&(cfg, seed))?))[..16].to_string();
    let dir = cache.join(format!("fidelity-synthetic-{key}"));
    if !dir.join("synthetic.json").exists() {
        begin(progress, format!("generating {}", dir.display()), None);
        let generated = dsrm_data::synth::generate(cfg, seed, &dir, &mut |_, _, _| {})
            .with_context(|| format!("generating synthetic KuaiRec into {}", dir.display()));
        progress(Event::End);
        generated?;
    }
    crate::cache_usage::mark_used(&dir);
    Ok(dir)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One noise level: the rows of every representation, and the level's record for `fidelity.json`.
fn fidelity_level(
    file: &FidelityFile,
    m: f64,
    cache: &Path,
    progress: Progress,
) -> Result<(Vec<FidelityRow>, serde_json::Value)> {
    let synth = scaled(&file.synth, m);
    let dir = synthetic_set(cache, &synth, file.synth_seed, progress)?;
    let data = DataConfig { dir: Some(dir.clone()), ..Default::default() };
    let world = loading::load_world_from(&data, &file.env, &file.world, progress)?;
    begin(progress, "fitting the MF item table", None);
    let fitted = dsrm_world::MfReward::fit(&world, &file.mf).context("fitting the MF");
    let embeddings = fitted.and_then(|mf| Ok(mf.item_embeddings()?));
    progress(Event::End);
    let embeddings = embeddings?;
    let model = stage::fit(&file.dsrm, &file.tracker, &world, Some(&embeddings), progress)
        .with_context(|| format!("training the DSRM at noise level {m}"))?;

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
    let split = model.split.clone().context("the stage did not record its user split")?;
    if split.held_out.is_empty() {
        bail!("no held-out users: set [dsrm] holdout_fraction > 0");
    }
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
    // The probes fit on the users below the scored side and score on it (`score_on`: held-out or validation users).
    let users: Vec<u32> = keep.iter().map(|&n| replayed.users[n as usize]).collect();
    let (fit_rows, test_rows) = probe_rows(&users, &split, file.score_on);
    if fit_rows.is_empty() || test_rows.is_empty() {
        bail!("the probes need states on both sides of the split ({} fit, {} scored)", fit_rows.len(), test_rows.len());
    }
    // The clean targets of the scored states (the truth's re-encoding; no state of a synthetic log lacks one).
    let held: Vec<usize> = test_rows.iter().map(|&r| keep[r as usize] as usize).collect();
    let (clean, kept, target_report) = model.clean_targets(&world, &replayed, &held, file.dsrm.next_positives)?;
    if kept != held {
        bail!("clean targets: {} of {} held-out states have none", held.len() - kept.len(), held.len());
    }
    let held_index = Tensor::f_from_slice(&held.iter().map(|&n| n as i64).collect::<Vec<_>>())?;
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
    let clean = clean.f_to_kind(Kind::Double)?;
    for (name, states) in representations(&replayed.states, d, purified)? {
        let x = states.f_index_select(0, &keep)?.f_to_kind(Kind::Double)?;
        let pref = probe(&x, &y_pref, &fit_rows, &test_rows, file.ridge)?;
        let pop = probe(&x, &y_pop, &fit_rows, &test_rows, file.ridge)?;
        let target_mse = if states.size()[1] == d {
            let held_states = states.f_index_select(0, &held_index)?.f_to_kind(Kind::Double)?;
            Some(held_states.f_mse_loss(&clean, dsrm_nn::tch::Reduction::Mean)?.f_double_value(&[])?)
        } else {
            None
        };
        rows.push(FidelityRow {
            noise_level: m,
            representation: name.to_string(),
            pref_cosine: pref.cosine,
            pref_r2: pref.r2,
            pop_corr: pop.corr,
            target_mse,
            states: test_rows.len(),
            users: test_users,
        });
    }
    let summary = verdict(&rows);
    let mut info = json!({
        "noise_level": m,
        "synth": { "noise_log_sd": synth.noise_log_sd, "big_extra_noise_log_sd": synth.big_extra_noise_log_sd,
                   "big_popularity_bias": synth.big_popularity_bias, "seed": file.synth_seed, "dir": dir },
        "data": world.provenance,
        "denoiser": denoiser.name(),
        "reports": model.reports,
        "dsrm_rows": { "train": model.rows.0, "valid": model.rows.1 },
        "split": {
            "seed": split.seed,
            "validation_fraction": split.validation_fraction,
            "holdout_fraction": split.holdout_fraction,
            "users": { "train": split.train.len(), "valid": split.valid.len(), "held_out": split.held_out.len() },
            "score_on": file.score_on,
            "probes": file.score_on.describe(),
        },
        "target": model.target,
        "target_report": model.target_report,
        "clean_target_of_the_scores": target_report,
        "verdict": summary,
    });
    if let Some(report) = &model.tracker_pretrain {
        info["tracker_pretrain"] = serde_json::to_value(report)?;
    }
    Ok((rows, info))
}

/// Which users' states score the representations (`score_on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreOn {
    /// The stage's held-out users (the denoiser never saw them): what a report states.
    HeldOut,
    /// The stage's validation users (they early-stopped the denoiser): what a setting is chosen on.
    Validation,
}

impl ScoreOn {
    /// The split side (0 train, 1 validation, 2 held out) whose states are scored.
    fn side(self) -> u8 {
        match self {
            ScoreOn::HeldOut => 2,
            ScoreOn::Validation => 1,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ScoreOn::HeldOut => "fit on the train and validation users' states, scored on the held-out users' states",
            ScoreOn::Validation => {
                "fit on the train users' states, scored on the validation users' states (held-out users not read)"
            }
        }
    }
}

/// Probe rows (indices into `users`): the states of the scored side's users score the probes; those of the users
/// below it (train, or train and validation) fit them; with `score_on = "validation"` the held-out users' states
/// are in neither.
fn probe_rows(users: &[u32], split: &dsrm_denoise::stage::UserSplit, score_on: ScoreOn) -> (Vec<i64>, Vec<i64>) {
    let (mut fit, mut test) = (Vec::new(), Vec::new());
    let scored = score_on.side();
    for (r, &u) in users.iter().enumerate() {
        let side = split.side_of(u);
        if side == scored {
            test.push(r as i64)
        } else if side < scored {
            fit.push(r as i64)
        }
    }
    (fit, test)
}

/// Scores this close count as the same (the probes' sampling noise on a few hundred held-out users).
pub const SAME_SCORE: f64 = 0.01;

/// What the level's rows say about purification, in one sentence: whether `purified` equals `history` (every
/// probe score within [`SAME_SCORE`]), and whether it beats the fair baseline `raw+history` (or `raw` without
/// a history condition) on all three probe scores, on some, or on none.
fn verdict(rows: &[FidelityRow]) -> String {
    let get = |name: &str| rows.iter().find(|r| r.representation == name);
    let Some(purified) = get("purified") else { return "no purified row".into() };
    let same = |a: &FidelityRow, b: &FidelityRow| {
        (a.pref_cosine - b.pref_cosine).abs() <= SAME_SCORE
            && (a.pref_r2 - b.pref_r2).abs() <= SAME_SCORE
            && (a.pop_corr - b.pop_corr).abs() <= SAME_SCORE
    };
    if let Some(history) = get("history") {
        if same(purified, history) {
            return format!(
                "purified equals history (every probe score within {SAME_SCORE}): the denoiser reads the history \
                 summary and adds nothing to it"
            );
        }
    }
    let (name, base) = match get("raw+history") {
        Some(b) => ("raw+history", b),
        None => ("raw", get("raw").expect("a raw row")),
    };
    let wins = [
        purified.pref_cosine > base.pref_cosine + SAME_SCORE,
        purified.pref_r2 > base.pref_r2 + SAME_SCORE,
        purified.pop_corr < base.pop_corr - SAME_SCORE,
    ];
    match wins.iter().filter(|&&w| w).count() {
        3 => format!("purified beats {name} on all three probe scores (by more than {SAME_SCORE})"),
        0 => format!("purified beats {name} on no probe score (by more than {SAME_SCORE})"),
        n => format!("purified beats {name} on {n} of three probe scores (by more than {SAME_SCORE})"),
    }
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

/// Merges `changes` into `base`, table by table (a value replaces the base's; a table merges into it, unless it
/// names another `kind`: then it replaces it, since the base's keys belong to the other kind, e.g. a `flow`
/// denoiser variant over the file's `ddpm` with its `schedule`).
fn merge(base: &mut toml::Table, changes: toml::Table) {
    for (key, value) in changes {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(more))
                if more.get("kind").is_none_or(|kind| inner.get("kind") == Some(kind)) =>
            {
                merge(inner, more)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            holdout_fraction = 0.2
            [dsrm.denoiser]
            kind = "ddpm"
            hidden = [16]
            [dsrm.denoiser.train]
            max_epochs = 2
            lr = 1e-3
        "#;
        let file: FidelityFile = toml::from_str(text).unwrap();
        let (rows, info) = fidelity_level(&file, 1.0, cache.path(), &crate::progress::quiet).unwrap();
        // The default stage reads a history summary, so the report carries its fair baselines.
        let names: Vec<&str> = rows.iter().map(|r| r.representation.as_str()).collect();
        assert_eq!(names, ["raw", "history", "raw+history", "purified"]);
        assert!(rows.iter().all(|r| r.pref_cosine.is_finite() && r.pref_r2.is_finite() && r.pop_corr.abs() <= 1.0));
        assert!(rows[0].pop_corr > 0.1, "raw states carry the popularity of their window: {}", rows[0].pop_corr);
        assert_eq!(info["reports"].as_array().unwrap().len(), 1);
        // Scored on the stage's held-out users only, with the split written out; every representation of the
        // state's width is also scored by its distance to the clean per-state target.
        assert_eq!(info["split"]["seed"], file.dsrm.seed);
        let held = info["split"]["users"]["held_out"].as_u64().unwrap() as usize;
        assert!(held > 0 && rows.iter().all(|r| r.users > 0 && r.users <= held), "{held} {:?}", rows[0].users);
        assert_eq!(info["target"], "clean");
        assert_eq!(info["clean_target_of_the_scores"]["source"], "truth");
        let mse: Vec<Option<f64>> = rows.iter().map(|r| r.target_mse).collect();
        assert!(mse[0].unwrap() > 0.0 && mse[1].unwrap() > 0.0 && mse[2].is_none() && mse[3].unwrap() >= 0.0);
        assert!(info["verdict"].as_str().unwrap().starts_with("purified"));
        println!("tiny fidelity: {:?}", rows);
        // A config without held-out users is refused when it is read.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "[dsrm]\nmax_states = 10\n").unwrap();
        let err = format!("{:#}", FidelityFile::load(&path).unwrap_err());
        assert!(err.contains("holdout_fraction"), "{err}");
    }

    #[test]
    fn probes_fit_on_seen_users_and_score_on_held_out_ones_and_the_verdict_names_a_copy_of_history() {
        let split = dsrm_denoise::stage::split_users(&(0..20).collect::<Vec<u32>>(), 0.1, 0.3, 4).unwrap();
        let users: Vec<u32> = (0..20u32).flat_map(|u| [u, u]).collect();
        let (fit, test) = probe_rows(&users, &split, ScoreOn::HeldOut);
        assert_eq!((fit.len(), test.len()), (28, 12));
        assert!(test.iter().all(|&r| split.held_out.contains(&users[r as usize])));
        assert!(fit.iter().all(|&r| !split.held_out.contains(&users[r as usize])));
        // Choosing a setting: the validation users score, the train users fit, the held-out users are not read.
        let (fit, test) = probe_rows(&users, &split, ScoreOn::Validation);
        assert!(!test.is_empty() && test.iter().all(|&r| split.valid.contains(&users[r as usize])));
        assert!(fit.iter().all(|&r| split.train.contains(&users[r as usize])));
        assert_eq!(fit.len() + test.len(), 28);
        let row = |name: &str, cos: f64, r2: f64, pop: f64| FidelityRow {
            noise_level: 1.0,
            representation: name.into(),
            pref_cosine: cos,
            pref_r2: r2,
            pop_corr: pop,
            target_mse: None,
            states: 10,
            users: 2,
        };
        let copy = [row("raw", 0.2, 0.1, 0.5), row("history", 0.4, 0.3, 0.3), row("raw+history", 0.45, 0.35, 0.3)];
        let mut rows = copy.to_vec();
        rows.push(row("purified", 0.405, 0.295, 0.305));
        assert!(verdict(&rows).starts_with("purified equals history"), "{}", verdict(&rows));
        rows[3] = row("purified", 0.5, 0.4, 0.2);
        assert!(verdict(&rows).contains("beats raw+history on all three"), "{}", verdict(&rows));
        rows[3] = row("purified", 0.3, 0.4, 0.4);
        assert!(verdict(&rows).contains("on 1 of three"), "{}", verdict(&rows));
        let plain = [row("raw", 0.2, 0.1, 0.5), row("purified", 0.1, 0.0, 0.6)];
        assert!(verdict(&plain).contains("beats raw on no probe score"), "{}", verdict(&plain));
    }
}
