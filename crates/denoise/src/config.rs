//! The `[denoiser]` config table, [`build`] (train what it names) and [`load`] (read back any saved denoiser).
//!
//! ```toml
//! [denoiser]
//! kind = "ddpm"          # "identity" | "ddpm" | "ddim" | "distilled" | "vae" | "flow"; the other keys are its fields
//! t_prime = 5            # T' (default T)
//!
//! [denoiser.schedule]
//! steps = 10             # T
//! noise_scale = 1.0      # s
//! ```
//!
//! `ddim` nests the DSRM under `[denoiser.ddpm]`, `distilled` under `[denoiser.teacher]` (and the student under
//! `[denoiser.student]`). Missing keys take the defaults documented on each field; unknown keys are errors, so a
//! misspelt sweep axis fails loudly instead of silently running the default.

use crate::ddim::{Ddim, DdimConfig};
use crate::ddpm::{Ddpm, DdpmConfig};
use crate::distilled::{Distilled, DistilledConfig};
use crate::flow::{Flow, FlowConfig};
use crate::identity::{Identity, IdentityConfig};
use crate::train::{EpochLog, FitReport};
use crate::vae::{Vae, VaeConfig};
use crate::{DenoiseError, Denoiser, Result, CHECKPOINT_FORMAT};
use dsrm_nn::tch::Tensor;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which denoiser to build, with its settings. The default is the DSRM (`ddpm`) with `docs/design.md` §6 defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DenoiserConfig {
    Identity(IdentityConfig),
    Ddpm(DdpmConfig),
    Ddim(DdimConfig),
    Distilled(DistilledConfig),
    Vae(VaeConfig),
    Flow(FlowConfig),
}

impl Default for DenoiserConfig {
    fn default() -> Self {
        Self::Ddpm(DdpmConfig::default())
    }
}

impl DenoiserConfig {
    /// This config with its network trained for `max_epochs` epochs from the training seed `seed` (the DDPM of
    /// ddim, the teacher of distilled; identity has no training): what a per-round [`refit`] runs.
    pub fn with_training(&self, max_epochs: usize, seed: u64) -> Self {
        let mut cfg = self.clone();
        if let Some(train) = cfg.train_mut() {
            (train.max_epochs, train.seed) = (max_epochs, seed);
        }
        cfg
    }

    /// This config with its network's training seed `seed` (initialisation, minibatch order and training noise;
    /// the DDPM of ddim, the teacher of distilled): to repeat a denoiser's training over seeds.
    pub fn with_seed(&self, seed: u64) -> Self {
        let mut cfg = self.clone();
        if let Some(train) = cfg.train_mut() {
            train.seed = seed;
        }
        cfg
    }

    /// The training settings of the network this kind trains first (none for identity).
    fn train_mut(&mut self) -> Option<&mut crate::TrainConfig> {
        match self {
            Self::Identity(_) => None,
            Self::Ddpm(c) => Some(&mut c.train),
            Self::Ddim(c) => Some(&mut c.ddpm.train),
            Self::Distilled(c) => Some(&mut c.teacher.train),
            Self::Vae(c) => Some(&mut c.train),
            Self::Flow(c) => Some(&mut c.train),
        }
    }

    /// The `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Identity(_) => "identity",
            Self::Ddpm(_) => "ddpm",
            Self::Ddim(_) => "ddim",
            Self::Distilled(_) => "distilled",
            Self::Vae(_) => "vae",
            Self::Flow(_) => "flow",
        }
    }

    /// Width of the history-summary condition the caller must append to each state (0: none).
    pub fn cond_dim(&self) -> i64 {
        match self {
            Self::Ddpm(c)
            | Self::Ddim(DdimConfig { ddpm: c, .. })
            | Self::Distilled(DistilledConfig { teacher: c, .. }) => c.cond_dim,
            Self::Flow(c) => c.cond_dim,
            Self::Identity(_) | Self::Vae(_) => 0,
        }
    }
}

/// A built denoiser and the reports of what was trained for it (teacher first for `distilled`).
#[derive(Debug)]
pub struct Built {
    pub denoiser: Box<dyn Denoiser>,
    pub reports: Vec<FitReport>,
}

/// Trains the configured denoiser on `train` and early-stops on `valid` (`[N, d + cond_dim]` observed states,
/// see each kind's `fit`). `progress` sees every epoch of every model trained. Seeds libtorch's generator.
pub fn build(
    cfg: &DenoiserConfig,
    train: &Tensor,
    valid: &Tensor,
    progress: &mut dyn FnMut(&EpochLog),
) -> Result<Built> {
    build_with(cfg, train, valid, None, None, progress)
}

/// [`build`] towards explicit clean targets (`[N, d]` rows, one per training / validation state): option B of
/// `docs/design.md` §6 row 3. The diffusion kinds learn it: `ddpm` directly, `ddim` samples the DDPM so trained,
/// and the `distilled` student matches that teacher's output (which already points at the target); `flow`
/// learns the velocity of the straight path to it.
pub fn build_towards(
    cfg: &DenoiserConfig,
    train: &Tensor,
    train_targets: &Tensor,
    valid: &Tensor,
    valid_targets: &Tensor,
    progress: &mut dyn FnMut(&EpochLog),
) -> Result<Built> {
    if matches!(cfg, DenoiserConfig::Identity(_) | DenoiserConfig::Vae(_)) {
        return Err(DenoiseError::Config(format!(
            "a clean target other than the observed state needs a diffusion or flow denoiser (ddpm, ddim, distilled, \
             flow), not {}",
            cfg.kind()
        )));
    }
    build_with(cfg, train, valid, Some((train_targets, valid_targets)), None, progress)
}

/// [`build`] / [`build_towards`] (`targets`: training and validation rows of s^(0), or `None` for the observed
/// state) continuing from a trained denoiser (`init`: its [`Denoiser::checkpoint`]) instead of a fresh
/// initialisation: the same kind and shapes, trained for `cfg`'s epochs on new data (the feedback loop's
/// per-round refit of the DSRM stage). The kinds whose whole trained state is one network carry it over: ddpm,
/// ddim (its DDPM) and flow; `identity` has nothing to refit; `distilled` (its checkpoint holds the student, not
/// the teacher it was distilled from) and `vae` are refused.
pub fn refit(
    cfg: &DenoiserConfig,
    init: (&[(String, Tensor)], &serde_json::Value),
    train: &Tensor,
    valid: &Tensor,
    targets: Option<(&Tensor, &Tensor)>,
    progress: &mut dyn FnMut(&EpochLog),
) -> Result<Built> {
    let (tensors, meta) = init;
    if meta["kind"].as_str() != Some(cfg.kind()) {
        return Err(DenoiseError::Config(format!(
            "refit: the trained denoiser is {}, the config asks for {}",
            meta["kind"],
            cfg.kind()
        )));
    }
    match cfg {
        DenoiserConfig::Ddpm(_) | DenoiserConfig::Ddim(_) | DenoiserConfig::Flow(_) => {
            build_with(cfg, train, valid, targets, Some(tensors), progress)
        }
        DenoiserConfig::Identity(_) => build_with(cfg, train, valid, targets, None, progress),
        DenoiserConfig::Distilled(_) | DenoiserConfig::Vae(_) => Err(DenoiseError::Config(format!(
            "refit: a {} denoiser cannot continue from its checkpoint (ddpm, ddim, flow and identity can)",
            cfg.kind()
        ))),
    }
}

/// The one place each kind is assembled; `targets` (train, valid) replace the observed states as the DDPM's x_0;
/// `init` (ddpm, ddim, flow) is the network training starts from.
fn build_with(
    cfg: &DenoiserConfig,
    train: &Tensor,
    valid: &Tensor,
    targets: Option<(&Tensor, &Tensor)>,
    init: Option<&[(String, Tensor)]>,
    progress: &mut dyn FnMut(&EpochLog),
) -> Result<Built> {
    let ddpm = |c: &DdpmConfig, progress: &mut dyn FnMut(&EpochLog)| {
        Ddpm::fit_from(train, targets.map(|t| t.0), valid, targets.map(|t| t.1), c, init, progress)
    };
    let (denoiser, reports): (Box<dyn Denoiser>, Vec<FitReport>) = match cfg {
        DenoiserConfig::Identity(_) => {
            let dim = crate::train::data_width("train", train)?;
            if dim < 1 {
                return Err(DenoiseError::Data("train: states have no columns".into()));
            }
            (Box::new(Identity::new(dim)), vec![])
        }
        DenoiserConfig::Ddpm(c) => {
            let (model, report) = ddpm(c, progress)?;
            (Box::new(model), vec![report])
        }
        DenoiserConfig::Ddim(c) => {
            let (model, report) = ddpm(&c.ddpm, progress)?;
            (Box::new(Ddim::new(&model, c.k)?), vec![report])
        }
        DenoiserConfig::Distilled(c) => {
            let (teacher, teacher_report) = ddpm(&c.teacher, progress)?;
            let (student, report) = Distilled::fit(&teacher, train, valid, &c.student, progress)?;
            (Box::new(student), vec![teacher_report, report])
        }
        DenoiserConfig::Vae(c) => {
            let (model, report) = Vae::fit(train, valid, c, progress)?;
            (Box::new(model), vec![report])
        }
        DenoiserConfig::Flow(c) => {
            let (model, report) =
                Flow::fit_from(train, targets.map(|t| t.0), valid, targets.map(|t| t.1), c, init, progress)?;
            (Box::new(model), vec![report])
        }
    };
    Ok(Built { denoiser, reports })
}

/// Reads back any denoiser written by [`Denoiser::save`], whatever its kind.
pub fn load(path: &Path) -> Result<Box<dyn Denoiser>> {
    let (tensors, meta) = dsrm_nn::checkpoint::load(path)?;
    from_checkpoint(&tensors, &meta).map_err(|e| crate::at_path(path, e))
}

/// Rebuilds any denoiser from the parts of [`Denoiser::checkpoint`] (no random draws).
pub fn from_checkpoint(tensors: &[(String, Tensor)], meta: &serde_json::Value) -> Result<Box<dyn Denoiser>> {
    match meta["kind"].as_str() {
        _ if meta["format"] != CHECKPOINT_FORMAT => {
            Err(DenoiseError::Config(format!("not a {CHECKPOINT_FORMAT} checkpoint (format {})", meta["format"])))
        }
        Some("identity") => Identity::from_meta(meta).map(|d| Box::new(d) as Box<dyn Denoiser>),
        Some("ddpm") => Ddpm::from_checkpoint(tensors, meta).map(|d| Box::new(d) as Box<dyn Denoiser>),
        Some("ddim") => Ddim::from_checkpoint(tensors, meta).map(|d| Box::new(d) as Box<dyn Denoiser>),
        Some("distilled") => Distilled::from_checkpoint(tensors, meta).map(|d| Box::new(d) as Box<dyn Denoiser>),
        Some("vae") => Vae::from_checkpoint(tensors, meta).map(|d| Box::new(d) as Box<dyn Denoiser>),
        Some("flow") => Flow::from_checkpoint(tensors, meta).map(|d| Box::new(d) as Box<dyn Denoiser>),
        other => Err(DenoiseError::Config(format!("unknown denoiser kind {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleKind;

    #[test]
    fn defaults_are_the_dsrm_of_section_6() {
        let DenoiserConfig::Ddpm(c) = DenoiserConfig::default() else { panic!("default must be ddpm") };
        assert_eq!(c.schedule.kind, ScheduleKind::LinearVar);
        assert_eq!((c.schedule.steps, c.schedule.noise_scale), (10, 1.0));
        assert_eq!((c.schedule.noise_min, c.schedule.noise_max, c.schedule.beta1), (1e-4, 0.02, 1e-5));
        assert!(c.schedule.beta_fixed);
        assert_eq!(c.t_prime, None);
        assert_eq!(c.mean_type, crate::MeanType::X0);
        assert_eq!((c.time_emb_dim, c.hidden.clone(), c.dropout, c.cond_dim), (10, vec![256], 0.0, 0));
        assert_eq!((c.train.lr, c.train.batch_size, c.train.max_epochs, c.train.patience), (1e-4, 400, 100, 10));
        assert_eq!((c.purify_noise, c.diffrec_compat, c.reweight), (0.0, false, false));
        assert_eq!(DdimConfig::default().k, 2);
    }

    #[test]
    fn a_seed_or_a_training_length_lands_in_the_network_each_kind_trains_first() {
        let seed_of = |c: &DenoiserConfig| -> Option<(u64, usize)> {
            let mut c = c.clone();
            c.train_mut().map(|t| (t.seed, t.max_epochs))
        };
        let kinds = [
            DenoiserConfig::Ddpm(DdpmConfig::default()),
            DenoiserConfig::Ddim(DdimConfig::default()),
            DenoiserConfig::Distilled(DistilledConfig::default()),
            DenoiserConfig::Flow(FlowConfig::default()),
        ];
        for c in kinds {
            let epochs = seed_of(&c).unwrap().1;
            assert_eq!(seed_of(&c.with_seed(7)), Some((7, epochs)), "{}", c.kind());
            assert_eq!(seed_of(&c.with_training(3, 9)), Some((9, 3)), "{}", c.kind());
        }
        let identity = DenoiserConfig::Identity(IdentityConfig::default());
        assert_eq!(identity.with_seed(7), identity, "identity trains nothing");
    }

    #[test]
    fn the_documented_toml_parses() {
        #[derive(Debug, Deserialize)]
        struct File {
            denoiser: DenoiserConfig,
        }
        let doc = r#"
            [denoiser]
            kind = "ddpm"
            t_prime = 5

            [denoiser.schedule]
            steps = 10
            noise_scale = 0.1
        "#;
        let DenoiserConfig::Ddpm(c) = toml::from_str::<File>(doc).unwrap().denoiser else { panic!("ddpm") };
        assert_eq!((c.t_prime, c.schedule.steps, c.schedule.noise_scale), (Some(5), 10, 0.1));
        let doc = r#"
            [denoiser]
            kind = "distilled"
            [denoiser.teacher]
            cond_dim = 4
            [denoiser.teacher.schedule]
            kind = "cosine"
            [denoiser.student.train]
            lr = 1e-3
        "#;
        let cfg = toml::from_str::<File>(doc).unwrap().denoiser;
        let DenoiserConfig::Distilled(c) = &cfg else { panic!("distilled") };
        assert_eq!((cfg.cond_dim(), c.teacher.schedule.kind, c.student.train.lr), (4, ScheduleKind::Cosine, 1e-3));
        assert!(toml::from_str::<File>("[denoiser]\nkind = \"vae\"\nlatent = 3\n").is_err(), "unknown key");
    }

    #[test]
    fn json_round_trip_defaults_and_unknown_keys() {
        let all = [
            DenoiserConfig::Identity(IdentityConfig::default()),
            DenoiserConfig::default(),
            DenoiserConfig::Ddim(DdimConfig::default()),
            DenoiserConfig::Distilled(DistilledConfig::default()),
            DenoiserConfig::Vae(VaeConfig::default()),
            DenoiserConfig::Flow(FlowConfig::default()),
        ];
        for cfg in all {
            let json = serde_json::to_string(&cfg).unwrap();
            assert_eq!(serde_json::from_str::<DenoiserConfig>(&json).unwrap(), cfg, "{json}");
            let minimal = format!(r#"{{"kind": "{}"}}"#, cfg.kind());
            assert_eq!(serde_json::from_str::<DenoiserConfig>(&minimal).unwrap(), cfg, "missing keys take defaults");
        }
        let sweep: DenoiserConfig =
            serde_json::from_str(r#"{"kind": "ddim", "k": 3, "ddpm": {"t_prime": 4, "schedule": {"steps": 20}}}"#)
                .unwrap();
        let DenoiserConfig::Ddim(c) = &sweep else { panic!() };
        assert_eq!((c.k, c.ddpm.t_prime, c.ddpm.schedule.steps, c.ddpm.schedule.noise_scale), (3, Some(4), 20, 1.0));
        assert_eq!(sweep.cond_dim(), 0);
        for bad in [
            r#"{"kind": "ddpm", "t_primee": 3}"#,
            r#"{"kind": "ddpm", "schedule": {"stepz": 3}}"#,
            r#"{"kind": "identity", "x": 1}"#,
            r#"{"kind": "vae", "train": {"lr": 1e-3, "epochs": 5}}"#,
            r#"{"kind": "ddpm", "schedule": {"kind": "quadratic"}}"#,
            r#"{"kind": "gan"}"#,
        ] {
            assert!(serde_json::from_str::<DenoiserConfig>(bad).is_err(), "{bad}");
        }
        let cfg: DenoiserConfig =
            serde_json::from_str(r#"{"kind": "distilled", "teacher": {"cond_dim": 3, "mean_type": "eps"}}"#).unwrap();
        assert_eq!(cfg.cond_dim(), 3);
    }
}
