//! Noise schedules of the DDPM forward process (`docs/design.md` §4.3), with every quantity the training loss and
//! the reverse chain read, precomputed once as `f64` scalars.
//!
//! * One step: q(x_t | x_{t−1}) = N(√(1−β_t) · x_{t−1}, β_t · I), for t = 1..T.
//! * Closed form: q(x_t | x_0) = N(√ᾱ_t · x_0, (1−ᾱ_t) · I), with α_t = 1 − β_t, ᾱ_t = ∏_{s≤t} α_s, ᾱ_0 = 1.
//! * Posterior: q(x_{t−1} | x_t, x_0) = N(c1_t · x_0 + c2_t · x_t, β̃_t · I), with
//!   c1_t = β_t √ᾱ_{t−1} / (1−ᾱ_t), c2_t = (1−ᾱ_{t−1}) √α_t / (1−ᾱ_t), β̃_t = β_t (1−ᾱ_{t−1}) / (1−ᾱ_t).
//!
//! The β's follow DiffRec's `GaussianDiffusion.get_betas` (`DiffRec/models/gaussian_diffusion.py`, §5.4) so
//! that a DSRM trained here is at parity with DiffRec for the same settings:
//!
//! * `linear-var` (the default): target variances v = linspace(s·m_min, s·m_max, T), then β_1 = v_1 and
//!   β_t = min(1 − (1−v_t)/(1−v_{t−1}), 0.999) (`betas_from_linear_variance`), so 1 − ᾱ_t grows linearly.
//! * `linear`: β = linspace(s·m_min, s·m_max, T) (Ho et al.'s schedule, scaled).
//! * `cosine`: Nichol & Dhariwal's ᾱ(τ) = cos²((τ + 0.008)/1.008 · π/2) (`betas_for_alpha_bar`, max 0.999).
//!   As in DiffRec it ignores s, m_min and m_max, and it reaches pure noise at t = T: purification with it
//!   needs a forward level T' well below T.
//!
//! Then, with `beta_fixed` (DiffRec's default), β_1 is overwritten with `beta1` = 1e-5 ("the variance of the
//! first step is fixed to a small constant to prevent overfitting", DiffRec citing Sohl-Dickstein et al. 2015
//! §2.4.1) and ᾱ is recomputed as the running product of 1 − β, so ᾱ_t is not exactly 1 − v_t.

use crate::{DenoiseError, Result};
use dsrm_nn::tch::Tensor;
use serde::{Deserialize, Serialize};

/// How the β's are laid out over the T steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// DiffRec's `linear-var`: 1 − ᾱ_t linear in t (the DSRM default, `docs/design.md` §6 row 4).
    #[default]
    LinearVar,
    /// β_t linear in t.
    Linear,
    /// Nichol & Dhariwal's cosine ᾱ (reaches pure noise at T; ignores the scale and range).
    Cosine,
}

impl ScheduleKind {
    /// The config spelling (`linear-var`, `linear`, `cosine`), for names and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::LinearVar => "linear-var",
            Self::Linear => "linear",
            Self::Cosine => "cosine",
        }
    }
}

/// Settings of the noise schedule. Defaults: `docs/design.md` §4.3 table (DiffRec's code defaults, except T).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Schedule shape (default `linear-var`).
    pub kind: ScheduleKind,
    /// T, the number of diffusion steps (default 10; DiffRec's code uses 100). Small on purpose: the denoiser
    /// runs T' ≤ T times per decision. Sweep {2, 5, 10, 20, 50}.
    pub steps: usize,
    /// s, the noise scale multiplying both ends of the range (default 1, chosen for the DSRM stage on validation
    /// users, `docs/design.md` §6 row 4; DiffRec's `noise_scale` was 0.1, our default until 2026-12-06); it sets
    /// how far purification pushes a state off the manifold before pulling it back. Sweep {1e-4 … 1}.
    pub noise_scale: f64,
    /// m_min, the lower end of the variance (or β) range before scaling (default 1e-4, DiffRec's `noise_min`).
    pub noise_min: f64,
    /// m_max, the upper end (default 0.02, DiffRec's `noise_max`). With the defaults √(1−ᾱ_T) ≈ 0.14.
    pub noise_max: f64,
    /// Overwrite β_1 with [`beta1`](Self::beta1) (default true, DiffRec's `beta_fixed`).
    pub beta_fixed: bool,
    /// The value β_1 is fixed to (default 1e-5, DiffRec's hard-coded constant).
    pub beta1: f64,
    /// Upper clip of every β (default 0.999, DiffRec's `max_beta`); keeps α_t > 0.
    pub max_beta: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::LinearVar,
            steps: 10,
            noise_scale: 1.0,
            noise_min: 1e-4,
            noise_max: 0.02,
            beta_fixed: true,
            beta1: 1e-5,
            max_beta: 0.999,
        }
    }
}

/// A built schedule: β_t, α_t, ᾱ_t and the posterior coefficients, indexed by t = 0..=T (index 0 is the clean
/// level: β_0 = 0, ᾱ_0 = 1), so code reads like the equations.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    config: ScheduleConfig,
    beta: Vec<f64>,
    alpha_bar: Vec<f64>,
    /// 1 − ᾱ_t as −expm1(Σ log1p(−β_s)): exact to rounding even when ᾱ_t is within 1e-5 of 1, where 1 − ᾱ_t
    /// would lose six digits (and c1_1 would miss 1).
    one_minus_alpha_bar: Vec<f64>,
}

impl Schedule {
    /// Builds the β's of `config` (module docs) and checks them: every β in (0, 1), so ᾱ is strictly decreasing
    /// in (0, 1] and every coefficient is finite.
    pub fn new(config: &ScheduleConfig) -> Result<Self> {
        let bad = |msg: String| Err(DenoiseError::Config(format!("schedule: {msg}")));
        let t_max = config.steps;
        if t_max == 0 {
            return bad("steps (T) must be at least 1".into());
        }
        if !(config.max_beta > 0.0 && config.max_beta < 1.0) {
            return bad(format!("max_beta {} must lie in (0, 1)", config.max_beta));
        }
        let (start, end) = (config.noise_scale * config.noise_min, config.noise_scale * config.noise_max);
        if config.kind != ScheduleKind::Cosine && !(start > 0.0 && start <= end && end < 1.0) {
            return bad(format!(
                "need 0 < noise_scale·noise_min <= noise_scale·noise_max < 1, got {start} and {end} \
                 (noise_scale {}, noise_min {}, noise_max {})",
                config.noise_scale, config.noise_min, config.noise_max
            ));
        }
        // numpy.linspace(start, end, T), both ends included (T = 1 gives [start]).
        let linspace: Vec<f64> = (0..t_max)
            .map(|i| if t_max == 1 { start } else { start + (end - start) * i as f64 / (t_max - 1) as f64 })
            .collect();
        let mut betas: Vec<f64> =
            match config.kind {
                ScheduleKind::Linear => linspace,
                ScheduleKind::LinearVar => {
                    // betas_from_linear_variance: ᾱ target = 1 − v; β_t = 1 − ᾱ_t/ᾱ_{t−1}, clipped.
                    let target: Vec<f64> = linspace.iter().map(|v| 1.0 - v).collect();
                    (0..t_max)
                        .map(|i| {
                            if i == 0 {
                                1.0 - target[0]
                            } else {
                                (1.0 - target[i] / target[i - 1]).min(config.max_beta)
                            }
                        })
                        .collect()
                }
                ScheduleKind::Cosine => {
                    let f = |tau: f64| ((tau + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
                    (0..t_max)
                        .map(|i| {
                            let (t1, t2) = (i as f64 / t_max as f64, (i + 1) as f64 / t_max as f64);
                            (1.0 - f(t2) / f(t1)).min(config.max_beta)
                        })
                        .collect()
                }
            };
        if config.beta_fixed {
            betas[0] = config.beta1;
        }
        if let Some((i, b)) = betas.iter().enumerate().find(|(_, b)| !(**b > 0.0 && **b < 1.0)) {
            return bad(format!("beta_{} = {b} is outside (0, 1)", i + 1));
        }
        let mut beta = vec![0.0];
        let mut alpha_bar = vec![1.0];
        let mut one_minus_alpha_bar = vec![0.0];
        let mut log_alpha_bar = 0.0f64;
        for b in betas {
            beta.push(b);
            alpha_bar.push(alpha_bar.last().copied().unwrap_or(1.0) * (1.0 - b));
            log_alpha_bar += (-b).ln_1p();
            one_minus_alpha_bar.push(-log_alpha_bar.exp_m1());
        }
        Ok(Self { config: config.clone(), beta, alpha_bar, one_minus_alpha_bar })
    }

    /// The settings this schedule was built from.
    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    /// T.
    pub fn steps(&self) -> usize {
        self.beta.len() - 1
    }

    /// β_t (β_0 = 0). Panics for t > T, like slice indexing: t comes from code, not data.
    pub fn beta(&self, t: usize) -> f64 {
        self.beta[t]
    }

    /// α_t = 1 − β_t.
    pub fn alpha(&self, t: usize) -> f64 {
        1.0 - self.beta[t]
    }

    /// ᾱ_t = ∏_{s≤t} α_s (ᾱ_0 = 1).
    pub fn alpha_bar(&self, t: usize) -> f64 {
        self.alpha_bar[t]
    }

    /// Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) (infinite at t = 0).
    pub fn snr(&self, t: usize) -> f64 {
        self.alpha_bar[t] / self.one_minus_alpha_bar[t]
    }

    /// 1 − ᾱ_t, the variance of q(x_t | x_0), computed without cancellation.
    pub fn one_minus_alpha_bar(&self, t: usize) -> f64 {
        self.one_minus_alpha_bar[t]
    }

    /// (c1_t, c2_t): the posterior mean of q(x_{t−1} | x_t, x_0) is c1_t · x_0 + c2_t · x_t. For t = 1,
    /// (1, 0): the last reverse step returns the x_0 estimate itself. Requires 1 ≤ t ≤ T.
    pub fn posterior_mean_coefs(&self, t: usize) -> (f64, f64) {
        assert!(t >= 1, "the posterior is defined for t >= 1");
        let (var, var_prev) = (self.one_minus_alpha_bar[t], self.one_minus_alpha_bar[t - 1]);
        let c1 = self.beta[t] * self.alpha_bar[t - 1].sqrt() / var;
        let c2 = var_prev * self.alpha(t).sqrt() / var;
        (c1, c2)
    }

    /// β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), the posterior variance (0 at t = 1). Requires 1 ≤ t ≤ T.
    pub fn posterior_variance(&self, t: usize) -> f64 {
        assert!(t >= 1, "the posterior is defined for t >= 1");
        self.beta[t] * self.one_minus_alpha_bar[t - 1] / self.one_minus_alpha_bar[t]
    }

    /// A sample of q(x_t | x_0) in closed form: √ᾱ_t · x_0 + √(1−ᾱ_t) · ε, for a given ε of x_0's shape.
    pub fn q_sample(&self, x0: &Tensor, t: usize, eps: &Tensor) -> Result<Tensor> {
        self.check_t(t, 0)?;
        Ok(x0.f_mul_scalar(self.alpha_bar[t].sqrt())?.f_add(&eps.f_mul_scalar(self.one_minus_alpha_bar[t].sqrt())?)?)
    }

    /// One forward step, a sample of q(x_t | x_{t−1}): √(1−β_t) · x_{t−1} + √β_t · ε (t ≥ 1).
    pub fn q_step(&self, x_prev: &Tensor, t: usize, eps: &Tensor) -> Result<Tensor> {
        self.check_t(t, 1)?;
        Ok(x_prev.f_mul_scalar(self.alpha(t).sqrt())?.f_add(&eps.f_mul_scalar(self.beta[t].sqrt())?)?)
    }

    /// The posterior mean c1_t · x̂_0 + c2_t · x_t (t ≥ 1).
    pub fn posterior_mean(&self, x0_hat: &Tensor, x_t: &Tensor, t: usize) -> Result<Tensor> {
        self.check_t(t, 1)?;
        let (c1, c2) = self.posterior_mean_coefs(t);
        Ok(x0_hat.f_mul_scalar(c1)?.f_add(&x_t.f_mul_scalar(c2)?)?)
    }

    fn check_t(&self, t: usize, min: usize) -> Result<()> {
        if t < min || t > self.steps() {
            return Err(DenoiseError::Config(format!("timestep {t} outside {min}..={}", self.steps())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsrm_nn::tch::{self, Device, Kind};

    fn all_kinds() -> Vec<ScheduleConfig> {
        let mut out = Vec::new();
        for kind in [ScheduleKind::LinearVar, ScheduleKind::Linear, ScheduleKind::Cosine] {
            for steps in [1, 2, 5, 10, 50] {
                for noise_scale in [1e-4, 0.1, 1.0] {
                    out.push(ScheduleConfig { kind, steps, noise_scale, ..Default::default() });
                }
            }
        }
        out
    }

    #[test]
    fn schedules_are_monotone_with_alpha_bar_in_unit_interval() {
        for cfg in all_kinds() {
            let s = Schedule::new(&cfg).unwrap();
            assert_eq!(s.alpha_bar(0), 1.0);
            for t in 1..=s.steps() {
                let (ab, prev) = (s.alpha_bar(t), s.alpha_bar(t - 1));
                assert!(ab > 0.0 && ab <= 1.0, "{cfg:?}: ᾱ_{t} = {ab}");
                assert!(ab < prev, "{cfg:?}: ᾱ must decrease strictly at t = {t}");
                assert!(s.snr(t) < s.snr(t - 1));
                let (c1, c2) = s.posterior_mean_coefs(t);
                assert!(c1.is_finite() && c2.is_finite() && c1 > 0.0 && c2 >= 0.0);
            }
            let (c1, c2) = s.posterior_mean_coefs(1);
            assert!((c1 - 1.0).abs() < 1e-12 && c2 == 0.0, "the last reverse step returns x̂_0");
            assert_eq!(s.posterior_variance(1), 0.0);
        }
    }

    #[test]
    fn linear_var_follows_diffrec() {
        // DiffRec's settings (s = 0.1): v = linspace(1e-5, 2e-3, 10); β_1 = 1e-5 (= v_1 here, and the override);
        // β_t = 1 − (1 − v_t)/(1 − v_{t−1}); ᾱ = cumprod(1 − β) telescopes to 1 − v_t.
        let s = Schedule::new(&ScheduleConfig { noise_scale: 0.1, ..Default::default() }).unwrap();
        assert_eq!(s.steps(), 10);
        assert_eq!(s.beta(1), 1e-5);
        for t in 1..=10 {
            let v = 1e-5 + (2e-3 - 1e-5) * (t - 1) as f64 / 9.0;
            assert!((s.alpha_bar(t) - (1.0 - v)).abs() < 1e-12, "t = {t}");
        }
        assert!(((1.0 - s.alpha_bar(10)).sqrt() - 0.0447).abs() < 1e-3, "max noise std ≈ 0.045 (§4.3)");
        // With the default scale (s = 1) the override changes β_1 and ᾱ is no longer exactly 1 − v.
        let cfg = ScheduleConfig::default();
        let s = Schedule::new(&cfg).unwrap();
        assert_eq!(s.beta(1), 1e-5);
        let v2 = 1e-4 + (0.02 - 1e-4) / 9.0;
        let beta2 = 1.0 - (1.0 - v2) / (1.0 - 1e-4);
        assert!((s.beta(2) - beta2).abs() < 1e-15);
        assert!((s.alpha_bar(2) - (1.0 - 1e-5) * (1.0 - beta2)).abs() < 1e-15);
        let off = Schedule::new(&ScheduleConfig { beta_fixed: false, ..cfg }).unwrap();
        assert!((off.beta(1) - 1e-4).abs() < 1e-15);
    }

    #[test]
    fn linear_and_cosine_betas() {
        let diffrec = ScheduleConfig { kind: ScheduleKind::Linear, noise_scale: 0.1, ..Default::default() };
        let lin = Schedule::new(&diffrec).unwrap();
        assert!(
            (lin.beta(10) - 2e-3).abs() < 1e-15 && (lin.beta(5) - (1e-5 + (2e-3 - 1e-5) * 4.0 / 9.0)).abs() < 1e-15
        );
        let cos =
            Schedule::new(&ScheduleConfig { kind: ScheduleKind::Cosine, beta_fixed: false, ..Default::default() })
                .unwrap();
        let f = |tau: f64| ((tau + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
        for t in 1..=9 {
            assert!((cos.alpha_bar(t) - f(t as f64 / 10.0) / f(0.0)).abs() < 1e-12, "t = {t}");
        }
        assert_eq!(cos.beta(10), 0.999, "the last cosine β is clipped");
    }

    #[test]
    fn bad_settings_are_errors() {
        for cfg in [
            ScheduleConfig { steps: 0, ..Default::default() },
            ScheduleConfig { noise_scale: 0.0, ..Default::default() },
            ScheduleConfig { noise_scale: 100.0, ..Default::default() },
            ScheduleConfig { noise_min: 0.5, noise_max: 0.1, ..Default::default() },
            ScheduleConfig { beta1: 0.0, ..Default::default() },
        ] {
            assert!(matches!(Schedule::new(&cfg), Err(DenoiseError::Config(_))), "{cfg:?}");
        }
        let s = Schedule::new(&ScheduleConfig::default()).unwrap();
        let x = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
        assert!(s.q_sample(&x, 11, &x).is_err());
        assert!(s.q_step(&x, 0, &x).is_err());
        assert!(s.q_sample(&x, 3, &Tensor::zeros([2, 4], (Kind::Float, Device::Cpu))).is_err(), "shape mismatch");
    }

    /// Iterating q(x_t | x_{t−1}) from x_0 gives mean m_t x_0 and variance v_t with m_t = √α_t m_{t−1} and
    /// v_t = α_t v_{t−1} + β_t; the closed form claims m_t = √ᾱ_t and v_t = 1 − ᾱ_t.
    #[test]
    fn closed_form_matches_iterated_one_step_process_analytically() {
        for cfg in all_kinds() {
            let s = Schedule::new(&cfg).unwrap();
            let (mut m, mut v) = (1.0f64, 0.0f64);
            for t in 1..=s.steps() {
                m *= s.alpha(t).sqrt();
                v = s.alpha(t) * v + s.beta(t);
                assert!((m - s.alpha_bar(t).sqrt()).abs() < 1e-12, "{cfg:?} t = {t}");
                assert!((v - (1.0 - s.alpha_bar(t))).abs() < 1e-12, "{cfg:?} t = {t}");
                assert!((v - s.one_minus_alpha_bar(t)).abs() < 1e-12, "{cfg:?} t = {t}");
                // The posterior is the Gaussian q(x_{t−1}|x_0) q(x_t|x_{t−1}) normalised: check its precision.
                let var_prev = s.one_minus_alpha_bar(t - 1);
                if t > 1 {
                    let precision = 1.0 / var_prev + s.alpha(t) / s.beta(t);
                    assert!((1.0 / precision - s.posterior_variance(t)).abs() < 1e-9 / precision, "t = {t}");
                    let (c1, c2) = s.posterior_mean_coefs(t);
                    let c1_ref = s.alpha_bar(t - 1).sqrt() / var_prev / precision;
                    let c2_ref = s.alpha(t).sqrt() / s.beta(t) / precision;
                    assert!((c1 - c1_ref).abs() < 1e-9 * c1_ref && (c2 - c2_ref).abs() < 1e-9 * c2_ref, "t = {t}");
                }
            }
        }
    }

    /// The same, empirically: many samples pushed through T one-step transitions against the closed form.
    #[test]
    fn closed_form_matches_iterated_one_step_process_empirically() {
        let _torch = crate::test_support::lock();
        tch::manual_seed(11);
        // A noisier schedule than the default so the variance is far from 0 and 1.
        let cfg = ScheduleConfig { noise_scale: 1.0, noise_max: 0.5, ..Default::default() };
        let s = Schedule::new(&cfg).unwrap();
        let (n, d) = (40_000i64, 4i64);
        let x0 = Tensor::from_slice(&[1.5f32, -0.5, 0.0, 3.0]).view([1, d]).expand([n, d], false).contiguous();
        let mut iterated = x0.shallow_clone();
        for t in 1..=s.steps() {
            iterated = s.q_step(&iterated, t, &Tensor::randn([n, d], (Kind::Float, Device::Cpu))).unwrap();
        }
        let t = s.steps();
        let closed = s.q_sample(&x0, t, &Tensor::randn([n, d], (Kind::Float, Device::Cpu))).unwrap();
        let stats = |x: &Tensor| -> (Vec<f64>, Vec<f64>) {
            let mean = x.mean_dim([0i64].as_slice(), false, Kind::Double);
            let var = x.to_kind(Kind::Double).var_dim([0i64].as_slice(), true, false);
            (Vec::<f64>::try_from(mean).unwrap(), Vec::<f64>::try_from(var).unwrap())
        };
        let ((mi, vi), (mc, vc)) = (stats(&iterated), stats(&closed));
        let x0v = [1.5, -0.5, 0.0, 3.0];
        let (m_true, v_true) = (s.alpha_bar(t).sqrt(), 1.0 - s.alpha_bar(t));
        assert!(v_true > 0.2 && v_true < 0.8, "the test schedule should be mid-noise, got {v_true}");
        // Standard errors: mean √(v/n) ≈ 0.004; variance v·√(2/n) ≈ 0.004.
        for k in 0..4 {
            for (m, v) in [(mi[k], vi[k]), (mc[k], vc[k])] {
                assert!((m - m_true * x0v[k]).abs() < 0.02, "mean {m} vs {}", m_true * x0v[k]);
                assert!((v - v_true).abs() < 0.02, "variance {v} vs {v_true}");
            }
            assert!((mi[k] - mc[k]).abs() < 0.03 && (vi[k] - vc[k]).abs() < 0.03);
        }
    }
}
