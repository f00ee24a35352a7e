//! Evaluation modes (`docs/protocol.md` §2).

use serde::{Deserialize, Serialize};

/// How an evaluation episode runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Mode {
    /// Free: repeats allowed; ends on the quit rule or `max_turn`.
    Free,
    /// No overlapping: items already shown are masked; ends on the quit rule or `max_turn`.
    NoRepeat,
    /// No overlapping, forced length k: masked; done is ignored and the episode has exactly k steps
    /// (the environment keeps paying rewards after a would-be quit).
    ForcedLength(usize),
}

impl Mode {
    /// The anchors' three modes with `force_length` k.
    pub fn standard(k: usize) -> [Mode; 3] {
        [Mode::Free, Mode::NoRepeat, Mode::ForcedLength(k)]
    }

    /// The log prefix the anchors use: `FB`, `NX_0`, `NX_10`.
    pub fn key(self) -> String {
        match self {
            Mode::Free => "FB".into(),
            Mode::NoRepeat => "NX_0".into(),
            Mode::ForcedLength(k) => format!("NX_{k}"),
        }
    }

    /// Items already shown are blocked.
    pub fn masks_repeats(self) -> bool {
        !matches!(self, Mode::Free)
    }
}

/// A mode as an `[eval] modes` entry names it: `FB`, `NX_0` or `NX_k` (k = `force_length`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ModeName {
    #[serde(rename = "FB")]
    Free,
    #[serde(rename = "NX_0")]
    NoRepeat,
    #[serde(rename = "NX_k")]
    ForcedLength,
}

impl ModeName {
    /// The anchors' three modes, in their order (the default of `[eval] modes`).
    pub const ALL: [ModeName; 3] = [ModeName::Free, ModeName::NoRepeat, ModeName::ForcedLength];

    /// The mode this name stands for, with `force_length` k.
    pub fn mode(self, k: usize) -> Mode {
        match self {
            ModeName::Free => Mode::Free,
            ModeName::NoRepeat => Mode::NoRepeat,
            ModeName::ForcedLength => Mode::ForcedLength(k),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}
