//! The typed run configuration of `dsrm eval` / `dsrm demo` (`--config FILE`, TOML), and the `[data]` table every
//! run file shares. Unknown keys are errors, never silently ignored.
//!
//! ```toml
//! seeds = [1, 2, 3, 4, 5]
//! policies = ["random", "most-popular"]
//!
//! [data]
//! dataset = "kuairec"          # kuairec | kuairand-pure | coat
//! dir = "data/KuaiRec 2.0"     # omit for the cached synthetic KuaiRec
//! duplicate_policy = "keep-all"
//!
//! [env]
//! preset = "dorl-paper"        # dorl-paper | easyrl4rec-paper | cirs-paper; any field may be overridden
//!
//! [eval]
//! episodes = 100
//! force_length = 10
//! selections = ["sampled", "argmax"]
//! ```

use anyhow::{Context, Result};
use dsrm_data::{Dataset, DuplicatePolicy};
use dsrm_eval::EvalConfig;
use dsrm_policy::heuristics::{HeuristicConfig, HeuristicKind};
use dsrm_sim::world::WorldConfig;
use dsrm_sim::EnvConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which data a run uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub dataset: Dataset,
    /// Directory with the official files; `None` = the cached synthetic KuaiRec (`synthetic_size`, `synthetic_seed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    #[serde(default)]
    pub duplicate_policy: DuplicatePolicy,
    /// Size of the synthetic set used when `dir` is absent.
    #[serde(default = "default_synthetic_size")]
    pub synthetic_size: String,
    #[serde(default)]
    pub synthetic_seed: u64,
}

fn default_synthetic_size() -> String {
    "full".into()
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: Dataset::KuaiRec,
            dir: None,
            duplicate_policy: DuplicatePolicy::default(),
            synthetic_size: default_synthetic_size(),
            synthetic_seed: 0,
        }
    }
}

/// A whole run: data, environment, evaluation, policies and seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    #[serde(default = "default_policies")]
    pub policies: Vec<HeuristicKind>,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub env: EnvConfig,
    #[serde(default)]
    pub world: WorldConfig,
    #[serde(default)]
    pub eval: EvalConfig,
    #[serde(default)]
    pub heuristics: HeuristicConfig,
}

fn default_seeds() -> Vec<u64> {
    vec![1, 2, 3, 4, 5]
}

fn default_policies() -> Vec<HeuristicKind> {
    dsrm_policy::heuristics::ALL.to_vec()
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            seeds: default_seeds(),
            policies: default_policies(),
            data: DataConfig::default(),
            env: EnvConfig::default(),
            world: WorldConfig::default(),
            eval: EvalConfig::default(),
            heuristics: HeuristicConfig::default(),
        }
    }
}

impl RunConfig {
    /// Reads a TOML config; errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config {}", path.display()))
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// The config as TOML, as recorded in provenance.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# could not serialise config: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for name in ["baselines/kuairec.toml", "baselines/kuairand-pure.toml", "baselines/coat.toml"] {
            RunConfig::load(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
        let demo = RunConfig::load(&dir.join("baselines/kuairec.toml")).unwrap();
        assert_eq!(demo, RunConfig::default(), "configs/baselines/kuairec.toml documents the defaults");
    }

    #[test]
    fn defaults_round_trip_and_unknown_keys_fail() {
        let cfg = RunConfig::default();
        let back = RunConfig::parse(&cfg.to_toml()).unwrap();
        assert_eq!(cfg, back);
        for bad in [
            "sedes = [1]",
            "[env]\npreset = \"dorl-paper\"\nmax_turns = 3",
            "[eval]\nepisode = 3",
            "[data]\ndataset = \"kuairec\"\ndri = \"x\"",
        ] {
            let err = format!("{:#}", RunConfig::parse(bad).unwrap_err());
            assert!(err.contains("unknown field"), "{bad}: {err}");
        }
        let err = format!("{:#}", RunConfig::parse("[env]\npreset = \"dorl\"").unwrap_err());
        assert!(err.contains("line 2"), "{err}");
    }
}
