//! The flags every running command shares; they override the config file (`dsrm_study::config::RunConfig`).

use anyhow::Result;
use dsrm_data::Dataset;
use dsrm_study::config::RunConfig;
use std::path::PathBuf;

/// The flags every running command shares; they override the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// TOML config; the flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (official file names, flat or official layout). Default: cached synthetic KuaiRec.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// kuairec | kuairand-pure | coat
    #[arg(long, value_parser = crate::commands::data::parse_dataset)]
    pub dataset: Option<Dataset>,
    /// dorl-paper | easyrl4rec-paper | cirs-paper
    #[arg(long)]
    pub preset: Option<dsrm_sim::Preset>,
    /// Episodes per evaluation mode.
    #[arg(long)]
    pub episodes: Option<usize>,
}

impl RunArgs {
    /// The config file (or the defaults) with the flags applied.
    pub fn resolve(&self) -> Result<RunConfig> {
        let mut cfg = match &self.config {
            Some(path) => RunConfig::load(path)?,
            None => RunConfig::default(),
        };
        if let Some(dir) = &self.data {
            cfg.data.dir = Some(dir.clone());
        }
        if let Some(dataset) = self.dataset {
            cfg.data.dataset = dataset;
        }
        if let Some(preset) = self.preset {
            cfg.env = preset.into();
        }
        if let Some(n) = self.episodes {
            cfg.eval.episodes = n;
        }
        Ok(cfg)
    }
}
