//! The `[tracker]` config table and [`build`], which turns it into a tracker behind the [`StateTracker`] trait.
//!
//! ```toml
//! [tracker]
//! kind = "avg"              # "avg" | "gru" | "sasrec"; the other keys are that tracker's config fields
//! freeze_embeddings = true  # DSRM-HRL
//! ```
//!
//! Missing keys take the tracker's defaults; unknown keys are errors.

use crate::avg::{AvgConfig, AvgTracker};
use crate::gru::{GruConfig, GruTracker};
use crate::sasrec::{SasRecConfig, SasRecTracker};
use crate::{StateError, StateTracker};
use dsrm_nn::tch::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Which state tracker to build, with its settings. The default is DORL's `avg`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TrackerConfig {
    Avg(AvgConfig),
    Gru(GruConfig),
    Sasrec(SasRecConfig),
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self::Avg(AvgConfig::default())
    }
}

impl TrackerConfig {
    /// The tracker's log name (`avg`, `gru`, `sasrec`), without building it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Avg(_) => "avg",
            Self::Gru(_) => "gru",
            Self::Sasrec(_) => "sasrec",
        }
    }

    /// The window W the tracker will read (the `HistoryBatch` window to build).
    pub fn window(&self) -> usize {
        match self {
            Self::Avg(c) => c.window,
            Self::Gru(c) => c.window,
            Self::Sasrec(c) => c.window,
        }
    }

    /// Sets the window W.
    pub fn set_window(&mut self, window: usize) {
        match self {
            Self::Avg(c) => c.window = window,
            Self::Gru(c) => c.window = window,
            Self::Sasrec(c) => c.window = window,
        }
    }

    /// Whether the item embedding table is frozen.
    pub fn set_freeze_embeddings(&mut self, freeze: bool) {
        match self {
            Self::Avg(c) => c.freeze_embeddings = freeze,
            Self::Gru(c) => c.freeze_embeddings = freeze,
            Self::Sasrec(c) => c.freeze_embeddings = freeze,
        }
    }

    /// Whether it reads the world model's pretrained item embeddings when there are some.
    pub fn uses_pretrained(&self) -> bool {
        match self {
            Self::Avg(c) => c.use_pretrained,
            Self::Gru(c) => c.use_pretrained,
            Self::Sasrec(c) => c.use_pretrained,
        }
    }

    /// Whether it has weights beyond its item table (a GRU's cells, SASRec's blocks); `avg` has none.
    pub fn has_own_weights(&self) -> bool {
        !matches!(self, Self::Avg(_))
    }
}

/// Builds the configured tracker with its own var store on `vs_device`.
///
/// `pretrained` is the world model's `[n_items, d]` item embedding table, when there is one; each tracker reads
/// it only if its `use_pretrained` is set (defaults: `avg` yes, as DORL; `gru` / `sasrec` no, as DORL-codes),
/// and otherwise learns its own `embedding_dim`-sized table.
pub fn build(
    cfg: &TrackerConfig,
    n_items: usize,
    pretrained: Option<Tensor>,
    vs_device: Device,
) -> Result<Box<dyn StateTracker>, StateError> {
    let pretrained = pretrained.as_ref();
    Ok(match cfg {
        TrackerConfig::Avg(c) => Box::new(AvgTracker::new(c, n_items, pretrained, vs_device)?),
        TrackerConfig::Gru(c) => Box::new(GruTracker::new(c, n_items, pretrained, vs_device)?),
        TrackerConfig::Sasrec(c) => Box::new(SasRecTracker::new(c, n_items, pretrained, vs_device)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        tracker: TrackerConfig,
    }

    fn parse(text: &str) -> Result<TrackerConfig, toml::de::Error> {
        toml::from_str::<File>(text).map(|f| f.tracker)
    }

    #[test]
    fn parses_each_kind_with_defaults_and_overrides() {
        assert_eq!(parse("[tracker]\nkind = \"avg\"").unwrap(), TrackerConfig::default());
        let gru = parse("[tracker]\nkind = \"gru\"\nwindow = 5\nreward_range = [0.0, 5.0]").unwrap();
        assert_eq!(gru, TrackerConfig::Gru(GruConfig { window: 5, reward_range: (0.0, 5.0), ..GruConfig::default() }));
        let sasrec = parse("[tracker]\nkind = \"sasrec\"\ndropout = 0.2\nfreeze_embeddings = true").unwrap();
        assert_eq!(sasrec.name(), "sasrec");
        assert_eq!(sasrec.window(), 3);
    }

    #[test]
    fn unknown_keys_and_kinds_are_errors() {
        assert!(parse("[tracker]\nkind = \"avg\"\nwindw = 3").is_err());
        assert!(parse("[tracker]\nkind = \"gru\"\ndropout = 0.1").is_err(), "dropout is a sasrec key");
        assert!(parse("[tracker]\nkind = \"caser\"").is_err());
        assert!(parse("[tracker]\nwindow = 3").is_err(), "kind is required");
    }

    #[test]
    fn round_trips_through_json() {
        let cfg = TrackerConfig::Sasrec(SasRecConfig { dropout: 0.3, ..SasRecConfig::default() });
        let text = serde_json::to_string(&cfg).unwrap();
        assert!(text.contains("\"kind\":\"sasrec\""), "{text}");
        assert_eq!(serde_json::from_str::<TrackerConfig>(&text).unwrap(), cfg);
    }

    #[test]
    fn builds_each_kind() {
        let pretrained = Tensor::randn([10, 41], (dsrm_nn::tch::Kind::Float, Device::Cpu));
        for (cfg, dim) in [
            (TrackerConfig::default(), 42),
            (TrackerConfig::Gru(GruConfig::default()), 33),
            (TrackerConfig::Sasrec(SasRecConfig { use_pretrained: true, ..SasRecConfig::default() }), 42),
        ] {
            let tracker = build(&cfg, 10, Some(pretrained.shallow_clone()), Device::Cpu).unwrap();
            assert_eq!((tracker.name(), tracker.state_dim(), tracker.window()), (cfg.name(), dim, 3));
        }
        let bad = TrackerConfig::Avg(AvgConfig { reward_range: (1.0, 0.0), ..AvgConfig::default() });
        assert!(matches!(build(&bad, 10, None, Device::Cpu), Err(StateError::RewardRange { .. })));
    }
}
