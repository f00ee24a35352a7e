//! `dsrm_hrl._native`: the simulator of dsrm-hrl for Python, without the neural stack.
//!
//! * [`World`]: a data set's environment (KuaiRec, KuaiRand-Pure, Coat) under a preset, loaded once and shared by
//!   every batch made from it;
//! * [`Batch`]: `n` sessions stepped together in one call on NumPy arrays, the engine of both the single
//!   `gymnasium.Env` (n = 1, no autoreset) and the `VectorEnv` (autoreset on the step after an episode ends);
//! * [`metrics`]: the project's metrics (`dsrm eval`'s `MetricSet`) of finished episodes;
//! * [`generate_synthetic`]: the synthetic KuaiRec generator.
//!
//! Observations are fixed-shape: the user's dense index, and the last `window` item indices (−1 before the
//! session's first step) and their rewards (0 there), oldest first. Sessions step through the same
//! [`dsrm_sim::VecEnv`] the Rust trainers use, so quit rules, caps and rewards are the simulator's.

use dsrm_data::Dataset;
use dsrm_sim::world::WorldConfig;
use dsrm_sim::{EnvConfig, EnvSpec, VecEnv};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

/// Why an episode ended, as the codes of the vector environment's `info["quit"]`.
const QUIT_NONE: i8 = 0;

fn quit_code(ending: Option<dsrm_sim::Ending>) -> i8 {
    use dsrm_sim::Ending::*;
    match ending {
        None => QUIT_NONE,
        Some(Category) => 1,
        Some(Distance) => 2,
        Some(Popularity) => 3,
        Some(MaxLen) => 4,
    }
}

/// A data set's environment under a preset.
#[pyclass(frozen, module = "dsrm_hrl._native")]
struct World {
    world: Arc<dsrm_sim::World>,
    /// The metrics' inputs (popular set, dominant categories, similarity), built on first use.
    inputs: std::sync::OnceLock<dsrm_eval::MetricInputs>,
}

/// The shared world as the batch's `EnvSpec`.
#[derive(Clone)]
struct Spec(Arc<dsrm_sim::World>);

impl Deref for Spec {
    type Target = EnvSpec;
    fn deref(&self) -> &EnvSpec {
        &self.0.spec
    }
}

fn value_error(what: &str, e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{what}: {e}"))
}

#[pymethods]
impl World {
    /// Loads `dataset` (`kuairec`, `kuairand-pure`, `coat`) from its official files in `data_dir`; `env` is the
    /// `[env]` table as JSON (`{"preset": "dorl-paper", "max_turn": 50, ...}`), `world` the `[world]` table.
    #[new]
    #[pyo3(signature = (dataset, data_dir, env, world = "{}"))]
    fn new(py: Python<'_>, dataset: &str, data_dir: PathBuf, env: &str, world: &str) -> PyResult<Self> {
        let dataset: Dataset = dataset.parse().map_err(|e| value_error("dataset", e))?;
        let env: EnvConfig = serde_json::from_str(env).map_err(|e| value_error("env", e))?;
        let world_cfg: WorldConfig = serde_json::from_str(world).map_err(|e| value_error("world", e))?;
        let settings = env.resolve();
        let built = py.detach(|| {
            dsrm_sim::World::from_dir(dataset, &data_dir, Default::default(), settings, &world_cfg, &mut |_| {})
        });
        let world = built.map_err(|e| value_error(&format!("loading {}", data_dir.display()), e))?;
        Ok(Self { world: Arc::new(world), inputs: Default::default() })
    }

    #[getter]
    fn n_users(&self) -> usize {
        self.world.spec.n_users()
    }
    #[getter]
    fn n_items(&self) -> usize {
        self.world.spec.n_items()
    }
    #[getter]
    fn max_turn(&self) -> usize {
        self.world.spec.max_turn
    }
    /// (min, max) of the ground-truth reward table: the bounds of every reward.
    #[getter]
    fn reward_range(&self) -> (f64, f64) {
        self.world.spec.rewards.range()
    }
    #[getter]
    fn dataset(&self) -> String {
        self.world.dataset.clone()
    }
    #[getter]
    fn synthetic(&self) -> bool {
        self.world.is_synthetic()
    }
    /// The data set's own user id of each dense user index.
    fn user_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        PyArray1::from_slice(py, &self.world.user_ids)
    }
    /// The data set's own video id of each dense item index (= action).
    fn item_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        PyArray1::from_slice(py, &self.world.item_ids)
    }
    /// Whether each item is in the popular group (the top share by distinct training pairs).
    fn popular<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<bool>> {
        PyArray1::from_vec(py, self.world.popular())
    }
    /// The resolved environment settings and the data's provenance, as JSON.
    fn settings_json(&self) -> PyResult<String> {
        let v = serde_json::json!({"env_settings": &self.world.settings, "data": &self.world.provenance});
        serde_json::to_string(&v).map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }
}

/// `n` sessions stepped together.
#[pyclass(module = "dsrm_hrl._native")]
struct Batch {
    world: Arc<dsrm_sim::World>,
    env: VecEnv<Spec>,
    window: usize,
    autoreset: bool,
    rng: ChaCha8Rng,
    /// Per session: steps so far, whether it ended (awaiting a reset), the last rewards (ring of `window`).
    lens: Vec<usize>,
    over: Vec<bool>,
    rewards: Vec<f32>,
}

impl Batch {
    fn reset_session(&mut self, i: usize) {
        self.env.reset_random(i, &mut self.rng);
        self.lens[i] = 0;
        self.over[i] = false;
    }

    /// Writes session i's observation into row i of the three arrays.
    fn observe(&self, i: usize, users: &mut [i64], items: &mut [i64], rewards: &mut [f32]) {
        let w = self.window;
        users[i] = i64::from(self.env.user(i));
        let shown = self.env.items(i);
        let len = shown.len();
        for k in 0..w {
            // Column k holds step len − w + k (oldest first); before the first step, padding.
            let (item, reward) = match (len + k).checked_sub(w) {
                Some(t) => (i64::from(shown[t]), self.rewards[i * w + t % w]),
                None => (-1, 0.0),
            };
            items[i * w + k] = item;
            rewards[i * w + k] = reward;
        }
    }

    fn observation<'py>(&self, py: Python<'py>) -> PyResult<Obs<'py>> {
        let (n, w) = (self.lens.len(), self.window);
        let (mut users, mut items, mut rewards) = (vec![0i64; n], vec![0i64; n * w], vec![0f32; n * w]);
        for i in 0..n {
            self.observe(i, &mut users, &mut items, &mut rewards);
        }
        let shape = |e| PyRuntimeError::new_err(format!("{e}"));
        Ok((
            PyArray1::from_vec(py, users),
            PyArray1::from_vec(py, items).reshape([n, w]).map_err(shape)?,
            PyArray1::from_vec(py, rewards).reshape([n, w]).map_err(shape)?,
        ))
    }
}

type Obs<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>);
type StepOut<'py> = (
    Obs<'py>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<bool>>,
    Bound<'py, PyArray1<bool>>,
    Bound<'py, PyArray1<i8>>,
);

#[pymethods]
impl Batch {
    /// `n` sessions of `world` with observation windows of `window` steps; with `autoreset`, a session that
    /// ended is reset by the next `step` (its action ignored, reward 0, neither flag set: gymnasium's
    /// next-step autoreset).
    #[new]
    #[pyo3(signature = (world, n, window = 10, autoreset = true, seed = 0))]
    fn new(world: &World, n: usize, window: usize, autoreset: bool, seed: u64) -> PyResult<Self> {
        if n == 0 || window == 0 {
            return Err(PyValueError::new_err(format!("n = {n}, window = {window}: both need to be at least 1")));
        }
        let spec = Spec(world.world.clone());
        let capacity = spec.max_turn;
        Ok(Self {
            world: world.world.clone(),
            env: VecEnv::new(spec, n, capacity),
            window,
            autoreset,
            rng: ChaCha8Rng::seed_from_u64(seed),
            lens: vec![0; n],
            over: vec![true; n],
            rewards: vec![0.0; n * window],
        })
    }

    /// Resets every session (reseeding the user stream when `seed` is given) and returns the observation
    /// `(users [n], items [n, window], rewards [n, window])`.
    #[pyo3(signature = (seed = None))]
    fn reset<'py>(&mut self, py: Python<'py>, seed: Option<u64>) -> PyResult<Obs<'py>> {
        if let Some(s) = seed {
            self.rng = ChaCha8Rng::seed_from_u64(s);
        }
        for i in 0..self.lens.len() {
            self.reset_session(i);
        }
        self.observation(py)
    }

    /// Shows `actions[i]` (a dense item index) in session i; returns
    /// `(obs, reward [n], terminated [n], truncated [n], quit [n])`: `terminated` when the user left (a quit
    /// rule fired), `truncated` when the session reached Max Len, `quit` why it ended (0 none, 1 category,
    /// 2 distance, 3 popularity, 4 Max Len).
    fn step<'py>(&mut self, py: Python<'py>, actions: PyReadonlyArray1<'py, i64>) -> PyResult<StepOut<'py>> {
        let actions = actions.as_slice()?;
        let (n, n_items, w) = (self.lens.len(), self.world.spec.n_items() as i64, self.window);
        if actions.len() != n {
            return Err(PyValueError::new_err(format!("actions: {} values for {n} sessions", actions.len())));
        }
        if let Some((i, a)) = actions.iter().enumerate().find(|(_, &a)| !(0..n_items).contains(&a)) {
            return Err(PyIndexError::new_err(format!("actions[{i}] = {a}: an item index in 0..{n_items}")));
        }
        let (mut reward, mut terminated, mut truncated, mut quit) =
            (vec![0f64; n], vec![false; n], vec![false; n], vec![QUIT_NONE; n]);
        for i in 0..n {
            if self.over[i] {
                if !self.autoreset {
                    return Err(PyRuntimeError::new_err(format!("session {i} is over: call reset() first")));
                }
                self.reset_session(i);
                continue;
            }
            let step = self.env.step(i, actions[i] as u32);
            let t = self.lens[i];
            self.rewards[i * w + t % w] = step.reward as f32;
            self.lens[i] = t + 1;
            reward[i] = step.reward;
            quit[i] = quit_code(step.ending);
            terminated[i] = step.quit;
            truncated[i] = step.done && !step.quit;
            self.over[i] = step.done;
        }
        Ok((
            self.observation(py)?,
            PyArray1::from_vec(py, reward),
            PyArray1::from_vec(py, terminated),
            PyArray1::from_vec(py, truncated),
            PyArray1::from_vec(py, quit),
        ))
    }

    /// Session 0 alone, for the single environment (no array of actions, scalars back):
    /// `(user, items [window], rewards [window], reward, terminated, truncated, quit)`.
    #[allow(clippy::type_complexity)]
    fn step_one<'py>(
        &mut self,
        py: Python<'py>,
        action: i64,
    ) -> PyResult<(u32, Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f32>>, f64, bool, bool, i8)> {
        let n_items = self.world.spec.n_items() as i64;
        if !(0..n_items).contains(&action) {
            return Err(PyIndexError::new_err(format!("action {action}: an item index in 0..{n_items}")));
        }
        if self.over[0] {
            return Err(PyRuntimeError::new_err("the session is over: call reset() first"));
        }
        let w = self.window;
        let step = self.env.step(0, action as u32);
        let t = self.lens[0];
        self.rewards[t % w] = step.reward as f32;
        self.lens[0] = t + 1;
        self.over[0] = step.done;
        let (mut user, mut items, mut rewards) = ([0i64], vec![0i64; w], vec![0f32; w]);
        self.observe(0, &mut user, &mut items, &mut rewards);
        Ok((
            self.env.user(0),
            PyArray1::from_vec(py, items),
            PyArray1::from_vec(py, rewards),
            step.reward,
            step.quit,
            step.done && !step.quit,
            quit_code(step.ending),
        ))
    }

    /// `[n, n_items]` booleans, True where the item may be shown (not yet shown in the session: the NX mask).
    fn action_masks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<bool>>> {
        let (n, m) = (self.lens.len(), self.world.spec.n_items());
        let mut mask = vec![true; n * m];
        for i in 0..n {
            for &item in self.env.items(i) {
                mask[i * m + item as usize] = false;
            }
        }
        PyArray1::from_vec(py, mask).reshape([n, m]).map_err(|e| PyRuntimeError::new_err(format!("{e}")))
    }

    /// Session i's user (dense index), items shown (dense indices) and cumulative reward.
    fn session(&self, i: usize) -> PyResult<(u32, Vec<u32>, f64)> {
        if i >= self.lens.len() {
            return Err(PyIndexError::new_err(format!("session {i} of {}", self.lens.len())));
        }
        Ok((self.env.user(i), self.env.items(i).to_vec(), self.env.cumulative_reward(i)))
    }

    /// Draws a uniform item index (for tests and random baselines without NumPy's generator).
    fn sample_action(&mut self) -> u32 {
        self.rng.gen_range(0..self.world.spec.n_items() as u32)
    }
}

/// The metrics of `dsrm eval` (R_tra, R_each, Length, CV, MCD, Gini, AD_share, ...) of finished episodes, each
/// `(user, items, rewards)` in dense indices, as JSON (`dsrm_hrl.metrics` returns it as a dict).
#[pyfunction]
fn metrics(world: &World, episodes: Vec<(u32, Vec<u32>, Vec<f64>)>) -> PyResult<String> {
    let n_users = world.world.spec.n_users() as u32;
    if let Some((k, (user, ..))) = episodes.iter().enumerate().find(|(_, (u, ..))| *u >= n_users) {
        return Err(PyIndexError::new_err(format!("episodes[{k}]: user {user} is not a dense index below {n_users}")));
    }
    let episodes: Vec<dsrm_metrics::Episode> =
        episodes.into_iter().map(|(user, items, rewards)| dsrm_metrics::Episode::new(user, items, rewards)).collect();
    let inputs = world.inputs.get_or_init(|| dsrm_eval::MetricInputs::new(&world.world, Default::default()));
    let ctx = inputs.context();
    ctx.validate(&episodes).map_err(|e| value_error("episodes", e))?;
    let set = dsrm_metrics::compute(&episodes, &ctx);
    serde_json::to_string(&set).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// Writes a synthetic KuaiRec set (`size` "tiny" or "full") into `out_dir` (new or empty).
#[pyfunction]
#[pyo3(signature = (out_dir, size = "tiny", seed = 0))]
fn generate_synthetic(py: Python<'_>, out_dir: PathBuf, size: &str, seed: u64) -> PyResult<()> {
    use dsrm_data::synth::{generate, SynthConfig, SynthSize};
    let size = match size {
        "tiny" => SynthSize::Tiny,
        "full" => SynthSize::Full,
        other => return Err(PyValueError::new_err(format!("size = {other:?}: expected \"tiny\" or \"full\""))),
    };
    let cfg = SynthConfig::for_size(size);
    py.detach(|| generate(&cfg, seed, &out_dir, &mut |_, _, _| {}))
        .map(|_| ())
        .map_err(|e| value_error(&format!("generating into {}", out_dir.display()), e))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<World>()?;
    m.add_class::<Batch>()?;
    m.add_function(wrap_pyfunction!(generate_synthetic, m)?)?;
    m.add_function(wrap_pyfunction!(metrics, m)?)?;
    Ok(())
}
