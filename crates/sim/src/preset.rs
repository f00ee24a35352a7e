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
    /// The DSRM-HRL paper's environment (`docs/protocol.md` §12): DORL's category rule as `dorl-paper`, plus
    /// popularity-aware abandonment (N_p 4, θ_p 1, the top 20% popular), Max Len 30.
    DsrmHrlPaper,
    /// `dsrm-hrl-paper` with Max Len 50.
    DsrmHrlPaper50,
}

impl Preset {
    /// Every preset, for listings.
    pub const ALL: [Preset; 5] =
        [Preset::DorlPaper, Preset::Easyrl4recPaper, Preset::CirsPaper, Preset::DsrmHrlPaper, Preset::DsrmHrlPaper50];

    /// The preset's name as written in configs.
    pub fn name(self) -> &'static str {
        match self {
            Preset::DorlPaper => "dorl-paper",
            Preset::Easyrl4recPaper => "easyrl4rec-paper",
            Preset::CirsPaper => "cirs-paper",
            Preset::DsrmHrlPaper => "dsrm-hrl-paper",
            Preset::DsrmHrlPaper50 => "dsrm-hrl-paper-50",
        }
    }

    /// The preset's settings.
    pub fn settings(self) -> EnvSettings {
        let (num_leave_compute, leave_threshold, random_initial_item) = match self {
            Preset::DorlPaper | Preset::DsrmHrlPaper | Preset::DsrmHrlPaper50 => (4, 0, false),
            Preset::Easyrl4recPaper => (9, 1, true),
            Preset::CirsPaper => (1, 0, false),
        };
        let popularity_rule =
            matches!(self, Preset::DsrmHrlPaper | Preset::DsrmHrlPaper50).then(PopularityRule::default);
        let max_turn = if self == Preset::DsrmHrlPaper50 { 50 } else { 30 };
        EnvSettings {
            num_leave_compute,
            leave_threshold,
            max_turn,
            legacy_window: true,
            random_initial_item,
            category_rule: true,
            popularity_rule,
        }
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

/// The paper's popularity-aware abandonment (`docs/protocol.md` §12; the exact rule is not public, this is its
/// natural reading in DORL's window form): at step t > 0 the user leaves when the new item is popular and more
/// than `threshold` of the last `window` recommended items are popular (the intended window `h[max(0, t-N)..t]`,
/// not the anchors' shrinking one). Popular: the top `popular_fraction` of the catalogue by distinct training
/// (user, item) pairs, ties broken by the smaller item id (`dsrm_metrics::popular_set`). Defaults fixed before
/// any result: N_p 4, θ_p 1, 20%.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopularityRule {
    /// N_p: how many of the last recommended items are inspected.
    pub window: usize,
    /// θ_p: the user leaves when more than this many of them are popular (and the new item is).
    pub threshold: u32,
    /// Share of the catalogue that is popular.
    pub popular_fraction: f64,
}

impl Default for PopularityRule {
    fn default() -> Self {
        Self { window: 4, threshold: 1, popular_fraction: 0.2 }
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}

/// Fully resolved environment settings, recorded with every result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
    /// The data set's own quit rule (KuaiRec / KuaiRand-Pure: the category rule; Coat: the distance rule) is on.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub category_rule: bool,
    /// The paper's popularity-aware abandonment, when on (`null` in provenance when off).
    #[serde(default)]
    pub popularity_rule: Option<PopularityRule>,
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
    /// Switch the data set's own quit rule (category / distance) on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_rule: Option<bool>,
    /// Switch popularity-aware abandonment on (with the preset's or the default settings) or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub popularity_rule: Option<bool>,
    /// N_p of popularity-aware abandonment (setting it switches the rule on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub popularity_window: Option<usize>,
    /// θ_p of popularity-aware abandonment (setting it switches the rule on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub popularity_threshold: Option<u32>,
    /// The popular share of the catalogue for popularity-aware abandonment (setting it switches the rule on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub popular_fraction: Option<f64>,
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
            category_rule: None,
            popularity_rule: None,
            popularity_window: None,
            popularity_threshold: None,
            popular_fraction: None,
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
            category_rule: self.category_rule.unwrap_or(p.category_rule),
            popularity_rule: self.popularity(p.popularity_rule),
        }
    }

    /// The preset's popularity rule with the overrides: `popularity_rule = false` switches it off; any other
    /// popularity key switches it on (from the preset's settings or the defaults) and sets that value.
    fn popularity(&self, preset: Option<PopularityRule>) -> Option<PopularityRule> {
        let tuned =
            self.popularity_window.is_some() || self.popularity_threshold.is_some() || self.popular_fraction.is_some();
        let on = self.popularity_rule.unwrap_or(preset.is_some() || tuned);
        on.then(|| {
            let base = preset.unwrap_or_default();
            PopularityRule {
                window: self.popularity_window.unwrap_or(base.window),
                threshold: self.popularity_threshold.unwrap_or(base.threshold),
                popular_fraction: self.popular_fraction.unwrap_or(base.popular_fraction),
            }
        })
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

    #[test]
    fn the_paper_presets_add_popularity_abandonment_and_each_rule_switches() {
        let p = Preset::DsrmHrlPaper.settings();
        assert_eq!((p.num_leave_compute, p.leave_threshold, p.max_turn, p.category_rule), (4, 0, 30, true));
        assert_eq!(p.popularity_rule, Some(PopularityRule { window: 4, threshold: 1, popular_fraction: 0.2 }));
        assert_eq!(Preset::DsrmHrlPaper50.settings().max_turn, 50);
        assert_eq!(Preset::DorlPaper.settings().popularity_rule, None);
        let off: EnvConfig = toml::from_str("preset = \"dsrm-hrl-paper\"\npopularity_rule = false\n").unwrap();
        assert_eq!(off.resolve().popularity_rule, None);
        let on: EnvConfig =
            toml::from_str("preset = \"dorl-paper\"\npopularity_threshold = 2\ncategory_rule = false\n").unwrap();
        let s = on.resolve();
        assert_eq!(s.popularity_rule, Some(PopularityRule { window: 4, threshold: 2, popular_fraction: 0.2 }));
        assert!(!s.category_rule);
        assert_eq!("dsrm-hrl-paper-50".parse::<Preset>(), Ok(Preset::DsrmHrlPaper50));
    }
}
