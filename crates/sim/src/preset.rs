//! The published settings of the anchors (`docs/protocol.md` §1.5), and user overrides on top of them.

use serde::{Deserialize, Serialize};

/// A named set of environment settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// DORL paper runs (`results_for_paper/results_all`): N 4, θ 0, max_turn 30, legacy window.
    DorlPaper,
    /// EasyRL4Rec paper runs: N 9, θ 1, max_turn 30, legacy window, random initial item.
    Easyrl4recPaper,
    /// CIRS paper runs: N 1, θ 0, max_turn 30.
    CirsPaper,
}

impl Preset {
    /// Every preset, for listings.
    pub const ALL: [Preset; 3] = [Preset::DorlPaper, Preset::Easyrl4recPaper, Preset::CirsPaper];

    /// The preset's name as written in configs.
    pub fn name(self) -> &'static str {
        match self {
            Preset::DorlPaper => "dorl-paper",
            Preset::Easyrl4recPaper => "easyrl4rec-paper",
            Preset::CirsPaper => "cirs-paper",
        }
    }

    /// The preset's settings.
    pub fn settings(self) -> EnvSettings {
        let (num_leave_compute, leave_threshold, random_initial_item) = match self {
            Preset::DorlPaper => (4, 0, false),
            Preset::Easyrl4recPaper => (9, 1, true),
            Preset::CirsPaper => (1, 0, false),
        };
        EnvSettings { num_leave_compute, leave_threshold, max_turn: 30, legacy_window: true, random_initial_item }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            format!("unknown preset {s:?}; expected one of {}", Preset::ALL.map(|p| p.name()).join(", "))
        })
    }
}

/// Fully resolved environment settings, recorded with every result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvSettings {
    /// N: window length of the quit rule.
    pub num_leave_compute: usize,
    /// θ: the user quits when a tag appears on more than θ window items.
    pub leave_threshold: u32,
    /// Episode cap.
    pub max_turn: usize,
    /// Reproduce the anchors' shrinking window (quirk 1).
    pub legacy_window: bool,
    /// EasyRL4Rec's random initial item in the observation.
    pub random_initial_item: bool,
}

/// The `[env]` table of a config: a preset plus optional overrides. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    pub preset: Preset,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_leave_compute: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turn: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_window: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_initial_item: Option<bool>,
}

impl Default for EnvConfig {
    fn default() -> Self {
        Self::from(Preset::DorlPaper)
    }
}

impl From<Preset> for EnvConfig {
    fn from(preset: Preset) -> Self {
        Self {
            preset,
            num_leave_compute: None,
            leave_threshold: None,
            max_turn: None,
            legacy_window: None,
            random_initial_item: None,
        }
    }
}

impl EnvConfig {
    /// The preset's settings with the overrides applied.
    pub fn resolve(&self) -> EnvSettings {
        let p = self.preset.settings();
        EnvSettings {
            num_leave_compute: self.num_leave_compute.unwrap_or(p.num_leave_compute),
            leave_threshold: self.leave_threshold.unwrap_or(p.leave_threshold),
            max_turn: self.max_turn.unwrap_or(p.max_turn),
            legacy_window: self.legacy_window.unwrap_or(p.legacy_window),
            random_initial_item: self.random_initial_item.unwrap_or(p.random_initial_item),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_published_settings() {
        let d = Preset::DorlPaper.settings();
        assert_eq!((d.num_leave_compute, d.leave_threshold, d.max_turn), (4, 0, 30));
        let e = Preset::Easyrl4recPaper.settings();
        assert_eq!((e.num_leave_compute, e.leave_threshold, e.max_turn, e.random_initial_item), (9, 1, 30, true));
        let c = Preset::CirsPaper.settings();
        assert_eq!((c.num_leave_compute, c.leave_threshold), (1, 0));
        assert!([d, e, c].iter().all(|s| s.legacy_window));
    }

    #[test]
    fn overrides_apply_and_unknown_keys_fail() {
        let cfg: EnvConfig = toml::from_str("preset = \"dorl-paper\"\nmax_turn = 100\n").unwrap();
        assert_eq!(cfg.resolve().max_turn, 100);
        assert_eq!(cfg.resolve().num_leave_compute, 4);
        let err = toml::from_str::<EnvConfig>("preset = \"dorl-paper\"\nmax_turns = 100\n").unwrap_err();
        assert!(err.to_string().contains("max_turns"), "{err}");
        assert!("dorl".parse::<Preset>().is_err());
    }
}
