//! The DSRM stage on its own (`dsrm-hrl.md` §4.3): train one from a `dsrm train` config, purify a CSV of
//! states with it, and the progress of its denoiser's epochs.

use crate::loading;
use crate::progress::{begin, Event, Progress};
use crate::provenance::{Provenance, Seeds};
use crate::train::TrainFile;
use crate::world_model::{reward_model, MfCache};
use anyhow::{bail, Context, Result};
use dsrm_denoise::stage::{DsrmModel, DsrmStageConfig, StageEvent};
use dsrm_denoise::Denoiser;
use dsrm_nn::tch::{Kind, Tensor};
use dsrm_sim::World;
use dsrm_state::TrackerConfig;
use serde_json::json;
use std::path::{Path, PathBuf};

/// One line for a progress bar.
pub fn describe(event: &StageEvent) -> String {
    match event {
        StageEvent::Replayed { states, users } => format!("DSRM: {states} states from {users} users"),
        StageEvent::Epoch(e) => format!("DSRM {} epoch {} valid {:.5}", e.phase, e.epoch, e.valid_loss),
        StageEvent::TrackerEpoch(e) => format!(
            "tracker pretraining epoch {} next-item loss train {:.4} valid {:.4} HR@10 {:.3}",
            e.epoch,
            e.train_loss.unwrap_or(f64::NAN),
            e.valid_loss,
            e.valid_hit_at_10
        ),
    }
}

/// The denoiser's training epochs (the length of the stage's progress).
fn epochs(cfg: &DsrmStageConfig) -> usize {
    match &cfg.denoiser {
        dsrm_denoise::DenoiserConfig::Ddpm(c) => c.train.max_epochs,
        dsrm_denoise::DenoiserConfig::Ddim(c) => c.ddpm.train.max_epochs,
        dsrm_denoise::DenoiserConfig::Distilled(c) => c.teacher.train.max_epochs + c.student.train.max_epochs,
        dsrm_denoise::DenoiserConfig::Vae(c) => c.train.max_epochs,
        dsrm_denoise::DenoiserConfig::Flow(c) => c.train.max_epochs,
        dsrm_denoise::DenoiserConfig::Identity(_) => 0,
    }
}

/// Fits a stage ([`DsrmModel::fit`]), reporting the denoiser's epochs as a piece of work.
pub(crate) fn fit(
    cfg: &DsrmStageConfig,
    tracker: &TrackerConfig,
    world: &World,
    embeddings: Option<&Tensor>,
    progress: Progress,
) -> dsrm_denoise::stage::Result<DsrmModel> {
    begin(progress, "DSRM", Some(epochs(cfg) as u64));
    let model = DsrmModel::fit(cfg, tracker, world, embeddings, &mut |e: StageEvent| {
        if matches!(&e, StageEvent::Epoch(l) if l.epoch > 0) {
            progress(Event::Advance(1));
        }
        progress(Event::Message(describe(&e)));
    });
    progress(Event::End);
    model
}

/// A trained stage and where it was saved.
pub struct TrainedStage {
    pub model: DsrmModel,
    /// `OUT/dsrm.bin`.
    pub path: PathBuf,
    /// The denoiser's name.
    pub denoiser: String,
    /// What the denoiser reads: `o_t`, or `o_t` with its history summary.
    pub reads: String,
    /// The clean target it was trained towards.
    pub target: String,
}

/// `dsrm dsrm train`: replays the training log of `file` (a `dsrm train` config; `config` names it in
/// errors) through the frozen tracker, trains the denoiser of its `[train.dsrm]`, and saves `out/dsrm.bin`
/// (config, seeds and data hashes in its metadata) and `out/fit.json` (fit reports, the user split, where the
/// clean targets came from).
pub fn train(file: &TrainFile, config: &Path, out: &Path, progress: Progress) -> Result<TrainedStage> {
    let Some(stage) = &file.train.dsrm else { bail!("{}: no [train.dsrm] table", config.display()) };
    dsrm_nn::runtime::init(1, stage.seed);
    let world = loading::load_world_from(&file.data, &file.env, &file.world, progress)?;
    let (_reward, embeddings) = reward_model(&file.world_model, &world, out, false, true, MfCache::Use, progress)?;
    let mut model =
        fit(stage, &file.train.tracker, &world, embeddings.as_ref(), progress).context("training the DSRM stage")?;
    model.provenance = Provenance {
        seeds: Some(Seeds::Stage { stage: stage.seed, world_model: file.world_model.seed }),
        synthetic: Some(world.is_synthetic()),
        data: Some(&world.provenance),
        ..Provenance::new()
    }
    .with_config(file)?
    .to_value()?;
    let path = out.join(dsrm_denoise::stage::RUN_FILE);
    model.save(&path).with_context(|| format!("saving {}", path.display()))?;
    dsrm_files::write_json(
        &out.join("fit.json"),
        &json!({
            "reports": model.reports,
            "split": model.split,
            "target_report": model.target_report,
            "provenance": model.provenance,
        }),
    )?;
    let reads = match stage.condition_window() {
        0 => "o_t".to_string(),
        w => format!("o_t ⊕ its {w}-step history summary"),
    };
    let target = match &model.target_report {
        Some(r) => format!(
            "{:?}: {} ({} rows, {} dropped without a target)",
            stage.target(),
            r.rule,
            r.rows,
            r.dropped_no_positive
        ),
        None => format!("{:?}", stage.target()),
    };
    let denoiser = model.denoiser()?.name();
    Ok(TrainedStage { model, path, denoiser, reads, target })
}

/// What `purify` did.
#[derive(Debug)]
pub struct Purified {
    /// States purified.
    pub states: usize,
    /// The denoiser's name.
    pub denoiser: String,
}

/// Purifies the states of the CSV `input` (one row of floats per state, optional header) with `model` (a
/// stage, `dsrm.bin`, or a bare denoiser checkpoint) into the CSV `out`. Errors name the file, line and column,
/// and the row form the model expects.
pub fn purify(model: &Path, input: &Path, out: &Path) -> Result<Purified> {
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
    dsrm_files::write_atomic(out, csv.as_bytes())?;
    Ok(Purified { states: rows.len(), denoiser: denoiser.name() })
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

#[cfg(test)]
mod tests {
    use super::*;
    use dsrm_nn::tch::Tensor;

    #[test]
    fn csv_rows_parse_with_a_header_and_report_line_and_column() {
        assert_eq!(parse_rows("a,b\n1,2\n\n3, 4.5\n", 2).unwrap(), vec![vec![1.0, 2.0], vec![3.0, 4.5]]);
        assert_eq!(parse_rows("1,2\n3,x\n", 2).unwrap_err(), "2:2: expected a finite float, found \"x\"");
        assert!(parse_rows("1,2,3\n", 2).unwrap_err().starts_with("1: expected 2"));
        assert!(parse_rows("1,NaN\n", 2).unwrap_err().starts_with("1:2:"));
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
}
