//! What produced a result: the one provenance record every run writes (`provenance.json`, and the
//! `provenance` of `fit.json`, `fidelity.json` and a DSRM stage's metadata).
//!
//! Every record carries the version, the command line and the time; the other fields are set by the runs
//! they concern and left out of the file otherwise. Files are written through a JSON value, so their keys
//! are in alphabetical order at every depth, as they have always been.

use anyhow::{Context, Result};
use dsrm_eval::summary::MethodInfo;
use dsrm_eval::MetricInputs;
use dsrm_sim::World;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The label of KuaiRand-Pure results whose training log is not the official one ([`data_label`]).
pub const KUAIRAND_SAMPLE_LABEL: &str = "real data, KuaiRand-Pure WITHOUT its official training log: the standard \
     log read is another file (the shipped sample is one day, 2022-04-25, from inside the official test period \
     04-22..05-08), so these are not results of the paper's KuaiRand-Pure setting";

/// The label of results on synthetic data (every artefact must say so) or on real data.
pub fn data_label(world: &World) -> &'static str {
    if world.is_synthetic() {
        "SYNTHETIC data in KuaiRec format, not KuaiRec results"
    } else if kuairand_without_its_training_log(world) {
        // The shipped sample (../shared/data) is one day of the standard log from inside the test period.
        KUAIRAND_SAMPLE_LABEL
    } else {
        "real data"
    }
}

/// A KuaiRand-Pure world whose standard training log is not the official `log_standard_4_08_to_4_21_pure.csv`
/// (the loader then reads the other `log_standard_*.csv` files beside the features, and warns).
fn kuairand_without_its_training_log(world: &World) -> bool {
    without_official_log(&world.dataset, world.provenance.files.iter().map(|f| f.path.as_str()))
}

/// [`kuairand_without_its_training_log`] on the data set's name and the paths of the files it read.
pub(crate) fn without_official_log<'p>(dataset: &str, mut paths: impl Iterator<Item = &'p str>) -> bool {
    let official = dsrm_data::kuairand::STANDARD_TRAIN;
    dataset == "kuairand-pure" && !paths.any(|p| Path::new(p).file_name().is_some_and(|n| n == official))
}

/// The provenance record. Build it with [`Provenance::new`] and struct-update syntax.
#[derive(Debug, Clone, Serialize)]
pub struct Provenance<'a> {
    /// The version of the package that ran.
    pub dsrm_version: &'static str,
    /// The code version (`dsrm_train::CODE_VERSION`: a hash of the sources that decide results).
    pub code_version: &'static str,
    /// The process's command line.
    pub command: Vec<String>,
    /// When the record was made (RFC 3339, UTC).
    pub created_at: String,
    /// The data set of the world the run used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<&'a str>,
    /// Whether the data were synthetic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<bool>,
    /// [`data_label`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'static str>,
    /// The environment preset (experiments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<&'static str>,
    /// The seeds the run used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Seeds>,
    /// The evaluation mode of the tracked metrics (the feedback loop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The action selection of the tracked metrics (the feedback loop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<&'static str>,
    /// The action selections evaluated, headline first (experiments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selections: Option<Vec<&'static str>>,
    /// The forced length of the NX_k mode (experiments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_length: Option<usize>,
    /// Episodes per evaluation mode (experiments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episodes: Option<usize>,
    /// Each swept method's family and parameters (experiments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<&'a BTreeMap<String, MethodInfo>>,
    /// The run a retune started from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retune_of: Option<RetuneOf>,
    /// The run's config file, as parsed (defaults filled in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// The same config as TOML (`dsrm eval`, `dsrm demo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_toml: Option<String>,
    /// What the agent was trained on instead of the ground truth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_reward: Option<String>,
    /// The environment's resolved settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_settings: Option<&'a dsrm_sim::preset::EnvSettings>,
    /// The size of the world (and how it was built).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub world: Option<WorldSummary<'a>>,
    /// The inputs of the metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSummary<'a>>,
    /// The data's files, hashes and differences from the official counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a dsrm_data::provenance::Provenance>,
}

/// The seeds of a run: a list, or the two seeds of a DSRM stage.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Seeds {
    /// The run's seeds.
    List(Vec<u64>),
    /// A DSRM stage: the stage's seed and its world model's.
    Stage { stage: u64, world_model: u64 },
}

/// The run a retune started from.
#[derive(Debug, Clone, Serialize)]
pub struct RetuneOf {
    pub run: PathBuf,
    pub checkpoint: PathBuf,
    /// The original run's `provenance.json` (null when unreadable).
    pub provenance: serde_json::Value,
}

/// The size of a world; `training_rows` and `notes` where the run records how it was built.
#[derive(Debug, Clone, Serialize)]
pub struct WorldSummary<'a> {
    pub dataset: &'a str,
    pub n_users: usize,
    pub n_items: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_rows: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<&'a [String]>,
}

impl<'a> WorldSummary<'a> {
    /// Data set and size.
    pub fn size(world: &'a World) -> Self {
        Self {
            dataset: &world.dataset,
            n_users: world.spec.n_users(),
            n_items: world.spec.n_items(),
            training_rows: None,
            notes: None,
        }
    }

    /// Data set, size, training rows and the notes on how the world was built.
    pub fn built(world: &'a World) -> Self {
        Self { training_rows: Some(world.train.len()), notes: Some(&world.notes), ..Self::size(world) }
    }
}

/// The inputs of the metrics; the popularity split where the run reports novelty-style metrics.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsSummary<'a> {
    pub dominant_tags: &'a [i32],
    pub dominant_source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub popular_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub popular_items: Option<usize>,
}

impl<'a> MetricsSummary<'a> {
    /// The MCD's dominant categories.
    pub fn dominant(inputs: &'a MetricInputs) -> Self {
        Self {
            dominant_tags: &inputs.dominant_tags,
            dominant_source: &inputs.dominant_source,
            similarity: None,
            popular_fraction: None,
            popular_items: None,
        }
    }

    /// Every input: dominant categories, similarity and the popular items.
    pub fn all(inputs: &'a MetricInputs) -> Self {
        Self {
            similarity: Some(&inputs.similarity_name),
            popular_fraction: Some(inputs.popular_fraction),
            popular_items: Some(inputs.popular.iter().filter(|p| **p).count()),
            ..Self::dominant(inputs)
        }
    }
}

impl<'a> Provenance<'a> {
    /// Version, command line and time; nothing else.
    pub fn new() -> Self {
        Self {
            dsrm_version: env!("CARGO_PKG_VERSION"),
            code_version: dsrm_train::CODE_VERSION,
            command: std::env::args().collect(),
            created_at: chrono::Utc::now().to_rfc3339(),
            dataset: None,
            synthetic: None,
            label: None,
            preset: None,
            seeds: None,
            mode: None,
            selection: None,
            selections: None,
            force_length: None,
            episodes: None,
            methods: None,
            retune_of: None,
            config: None,
            config_toml: None,
            training_reward: None,
            env_settings: None,
            world: None,
            metrics: None,
            data: None,
        }
    }

    /// The record with a run file's config.
    pub fn with_config(self, config: &impl Serialize) -> Result<Self> {
        Ok(Self { config: Some(serde_json::to_value(config).context("recording the config")?), ..self })
    }

    /// The record as a JSON value (keys in alphabetical order).
    pub fn to_value(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).context("recording the provenance")
    }

    /// Writes the record as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        Ok(dsrm_files::write_json(path, &self.to_value()?)?)
    }
}

impl Default for Provenance<'_> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::without_official_log;

    #[test]
    fn kuairand_results_without_the_official_training_log_are_labelled() {
        let sample =
            ["d/user_features_pure.csv", "d/video_features_basic_pure.csv", "d/log_standard_2022-04-25_sample.csv"];
        assert!(without_official_log("kuairand-pure", sample.into_iter()));
        let official = ["d/user_features_pure.csv", "d/log_standard_4_08_to_4_21_pure.csv"];
        assert!(!without_official_log("kuairand-pure", official.into_iter()));
        assert!(!without_official_log("coat", ["d/train.ascii"].into_iter()), "only KuaiRand-Pure has the rule");
    }
}
