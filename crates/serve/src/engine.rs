//! The serving core, with no HTTP in it: sessions, the policy's decision for one request, feedback, and the
//! live fairness setting. One [`Engine`] is owned by one thread (`crate::worker`); its methods take `&mut self`.
//!
//! A recommendation for a session: the NX mask blocks what the session consumed; the policy scores the whole
//! catalogue for the session's history (`EvalPolicy::score_all`, with the session's goal for a hierarchical
//! policy); the top k are the k highest allowed scores (`Argmax`) or k draws without replacement from the
//! softmax of the allowed scores (`Sampled`; the first is exactly what `act` would choose), with the session's
//! random stream. Unless `EngineSettings::libtorch_heads`, the policies are first asked for their batch-one
//! forms (`EvalPolicy::prepare_serving`; `docs/serving.md` "The batch-one decision path"), and the score and
//! sampling buffers are kept between decisions.
//!
//! Cold start: a user id the run does not know gets an empty history and the dense user one past the known
//! users, which the trackers ignore (they read the history only) and for which the HRL high level's popularity
//! preference upp_u is 0, as for a known user without logged rows. The session then evolves as any other.

use crate::error::ApiError;
use crate::loaded::LoadedRun;
use crate::metrics::{group, Metrics};
use crate::request::{
    check_session_id, Fairness, FairnessRequest, FeedbackRequest, RecommendRequest, RecommendResponse,
};
use crate::rowlog::RowLog;
use crate::sessions::{Session, SessionStore};
use dsrm_policy::{ItemMask, Observation, PolicyRng, Selection};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The engine's settings (flags of `dsrm serve`).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Seed of every session's random stream (with the session id).
    pub seed: u64,
    /// The largest k a request may ask for.
    pub max_k: u64,
    /// At most this many sessions are held (least recently used out first).
    pub session_capacity: NonZeroUsize,
    /// A session idle for longer is dropped.
    pub session_idle: Duration,
    /// Keep the policy's networks on libtorch (scores bit-identical to evaluation's) instead of their frozen
    /// batch-one copies (`EvalPolicy::prepare_serving`: the same scores to rounding, several times fewer
    /// libtorch calls per decision).
    pub libtorch_heads: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            seed: 0,
            max_k: 100,
            session_capacity: NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN),
            session_idle: Duration::from_secs(30 * 60),
            libtorch_heads: false,
        }
    }
}

/// What `/healthz` tells about the loaded run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct RunInfo {
    pub status: String,
    pub run: String,
    pub dataset: String,
    pub policy: String,
    pub selection: Selection,
    pub n_items: usize,
    pub n_users: usize,
    pub reward_range: (f64, f64),
    /// λ_f of every loaded high level (the run's first).
    pub lambdas: Vec<f64>,
    /// A few known user ids (for load generators and examples).
    pub sample_user_ids: Vec<u64>,
}

/// The serving core.
pub struct Engine {
    run: LoadedRun,
    active: usize,
    settings: EngineSettings,
    sessions: SessionStore,
    metrics: Arc<Metrics>,
    log: Option<RowLog>,
    mask: ItemMask,
    scores: Vec<f64>,
    top: TopK,
}

impl Engine {
    /// An engine serving `run` with the run's own high level active.
    /// Unless `settings.libtorch_heads`, every loaded policy is prepared for serving first.
    pub fn new(
        mut run: LoadedRun,
        settings: EngineSettings,
        metrics: Arc<Metrics>,
        log: Option<RowLog>,
    ) -> anyhow::Result<Self> {
        if !settings.libtorch_heads {
            for level in &mut run.levels {
                level.policy.prepare_serving().map_err(|e| anyhow::anyhow!("preparing the policy to serve: {e}"))?;
            }
        }
        let mask = ItemMask::all(run.item_ids.len());
        let sessions = SessionStore::new(settings.session_capacity, settings.session_idle);
        let (scores, top) = (Vec::with_capacity(run.item_ids.len()), TopK::default());
        let mut engine = Self { run, active: 0, settings, sessions, metrics, log, mask, scores, top };
        let f = engine.fairness(None);
        engine.metrics.set_fairness(f.lambda_f, f.target_ratio);
        Ok(engine)
    }

    /// The run's facts for `/healthz`.
    pub fn info(&self) -> RunInfo {
        RunInfo {
            status: "ok".into(),
            run: self.run.dir.display().to_string(),
            dataset: self.run.dataset.clone(),
            policy: self.run.policy_name.clone(),
            selection: self.run.selection,
            n_items: self.run.item_ids.len(),
            n_users: self.run.n_users(),
            reward_range: self.run.reward_range,
            lambdas: self.run.levels.iter().filter_map(|l| l.lambda_f).collect(),
            sample_user_ids: self.run.sample_user_ids.clone(),
        }
    }

    /// The fairness operating point in use (with a session's goal when given).
    pub fn fairness(&mut self, goal: Option<[f32; 2]>) -> Fairness {
        let level = &mut self.run.levels[self.active];
        let lambda_f = level.lambda_f;
        match level.policy.hierarchical() {
            Some(h) => Fairness { hierarchical: true, lambda_f, target_ratio: h.fixed_ratio(), goal },
            None => Fairness { hierarchical: false, lambda_f: None, target_ratio: None, goal: None },
        }
    }

    fn expire(&mut self, now: Instant) {
        let n = self.sessions.expire(now);
        if n > 0 {
            self.metrics.evicted.with_label_values(&["idle"]).inc_by(n);
        }
    }

    fn sessions_gauge(&self) {
        self.metrics.sessions.set(self.sessions.len() as i64);
    }

    /// `POST /v1/recommend`.
    pub fn recommend(&mut self, req: &RecommendRequest) -> Result<RecommendResponse, ApiError> {
        check_session_id(&req.session_id)?;
        if req.k == 0 || req.k > self.settings.max_k {
            return Err(ApiError::bad_request("k", format!("must lie in 1..={}, got {}", self.settings.max_k, req.k)));
        }
        let now = Instant::now();
        self.expire(now);
        let mut cold_start = false;
        if let Some(s) = self.sessions.get_mut(&req.session_id, now) {
            if s.user_id != req.user_id {
                return Err(ApiError::conflict(
                    "user_id",
                    format!("session {:?} belongs to user {}, not {}", req.session_id, s.user_id, req.user_id),
                ));
            }
            cold_start = s.user.is_none();
        } else {
            let user = self.run.users.get(&req.user_id).copied();
            if user.is_none() {
                cold_start = true;
                self.metrics.cold_starts.inc();
            }
            let session = Session::new(&req.session_id, req.user_id, user, self.settings.seed, now);
            if self.sessions.insert(&req.session_id, session) {
                self.metrics.evicted.with_label_values(&["capacity"]).inc();
            }
        }
        self.sessions_gauge();
        let n_users = self.run.n_users() as u32;
        let selection = self.run.selection;
        let Some(s) = self.sessions.get_mut(&req.session_id, now) else {
            return Err(ApiError::internal("the session just opened is missing"));
        };
        self.mask.clear();
        s.items.iter().for_each(|&i| self.mask.block(i));
        let obs =
            Observation { user: s.user.unwrap_or(n_users), items: &s.items, rewards: &s.rewards, initial_item: None };
        let policy = &mut self.run.levels[self.active].policy;
        let at = s.items.len();
        let held = s.goal_drawn_at == Some(at);
        if let Some(h) = policy.hierarchical() {
            h.set_goal(s.goal, held);
        }
        let scores = &mut self.scores;
        policy
            .score_all(&obs, &self.mask, selection, &mut s.rng, scores)
            .map_err(|e| ApiError::internal(format!("the policy failed: {e}")))?;
        let mut goal = None;
        if let Some(h) = policy.hierarchical() {
            s.goal = h.goal();
            if !held && at.is_multiple_of(h.interval().max(1)) {
                s.goal_drawn_at = Some(at);
            }
            goal = Some(s.goal);
        }
        let chosen = self.top.choose(scores, &self.mask, req.k as usize, selection, &mut s.rng);
        let items: Vec<u64> = chosen.iter().map(|&i| u64::from(self.run.item_ids[i as usize])).collect();
        let item_scores: Vec<f64> = chosen.iter().map(|&i| scores[i as usize]).collect();
        for &i in &chosen {
            self.metrics.exposure.with_label_values(&[group(self.run.popular[i as usize])]).inc();
        }
        if let Some(log) = &mut self.log {
            log.served(&req.session_id, req.user_id, &items, &item_scores, &self.run.policy_name)
                .map_err(|e| ApiError::internal(format!("writing {}/served.csv: {e}", log.dir().display())))?;
        }
        let fairness = self.fairness(goal);
        Ok(RecommendResponse { items, scores: item_scores, policy: self.run.policy_name.clone(), fairness, cold_start })
    }

    /// `POST /v1/feedback`: the session consumed `video_id`.
    pub fn feedback(&mut self, req: &FeedbackRequest) -> Result<(), ApiError> {
        check_session_id(&req.session_id)?;
        let (lo, hi) = self.run.reward_range;
        if !req.reward.is_finite() || req.reward < lo || req.reward > hi {
            return Err(ApiError::bad_request(
                "reward",
                format!("must lie in the data set's range [{lo}, {hi}], got {}", req.reward),
            ));
        }
        let Some(&item) = self.run.items.get(&req.video_id) else {
            return Err(ApiError::not_found(
                "video_id",
                format!("video {} is not in the run's catalogue", req.video_id),
            ));
        };
        let now = Instant::now();
        self.expire(now);
        self.sessions_gauge();
        let Some(s) = self.sessions.get_mut(&req.session_id, now) else {
            return Err(ApiError::not_found(
                "session_id",
                format!("no session {:?} (never opened, or evicted); ask /v1/recommend first", req.session_id),
            ));
        };
        if s.items.contains(&item) {
            return Err(ApiError::conflict(
                "video_id",
                format!("video {} was already consumed in this session", req.video_id),
            ));
        }
        s.items.push(item);
        s.rewards.push(req.reward);
        let user_id = s.user_id;
        self.metrics.consumed.with_label_values(&[group(self.run.popular[item as usize])]).inc();
        if let Some(log) = &mut self.log {
            log.consumed(user_id, req.video_id, req.reward)
                .map_err(|e| ApiError::internal(format!("writing {}/consumed.csv: {e}", log.dir().display())))?;
        }
        Ok(())
    }

    /// `PUT /v1/admin/fairness` (authorised by the caller).
    pub fn set_fairness(&mut self, req: &FairnessRequest) -> Result<Fairness, ApiError> {
        let field = match (req.target_ratio, req.lambda_f) {
            (Some(_), None) => "target_ratio",
            (None, Some(_)) => "lambda_f",
            _ => return Err(ApiError::bad_request("body", "give exactly one of target_ratio and lambda_f")),
        };
        if self.run.levels[self.active].policy.hierarchical().is_none() {
            return Err(ApiError::unprocessable(
                field,
                format!(
                    "the served policy ({}) is not hierarchical: its fairness cannot change live",
                    self.run.policy_name
                ),
            ));
        }
        if let Some(rho) = req.target_ratio {
            if !(0.0..=1.0).contains(&rho) {
                return Err(ApiError::bad_request("target_ratio", format!("must lie in [0, 1], got {rho}")));
            }
            if let Some(h) = self.run.levels[self.active].policy.hierarchical() {
                h.set_fixed_ratio(Some(rho)).map_err(|e| ApiError::unprocessable("target_ratio", e.to_string()))?;
            }
        }
        if let Some(lambda) = req.lambda_f {
            let Some(index) = self.run.levels.iter().position(|l| l.lambda_f == Some(lambda)) else {
                let loaded: Vec<String> =
                    self.run.levels.iter().filter_map(|l| l.lambda_f).map(|l| l.to_string()).collect();
                return Err(ApiError::unprocessable(
                    "lambda_f",
                    format!(
                        "no high level trained with λ_f = {lambda} is loaded (loaded: {}); make one with dsrm retune \
                         --lambda-f {lambda} and pass it with --retuned",
                        loaded.join(", ")
                    ),
                ));
            };
            if let Some(h) = self.run.levels[index].policy.hierarchical() {
                h.set_fixed_ratio(None).map_err(|e| ApiError::unprocessable("lambda_f", e.to_string()))?;
            }
            self.active = index;
        }
        let f = self.fairness(None);
        self.metrics.set_fairness(f.lambda_f, f.target_ratio);
        Ok(f)
    }

    /// Sessions held.
    pub fn n_sessions(&self) -> usize {
        self.sessions.len()
    }
}

/// The top `k` allowed items of `scores` (finite ones only): the highest (ties: the smallest id) under
/// `Argmax`, or draws without replacement from their softmax under `Sampled`. Fewer when fewer are allowed.
pub fn top_k(scores: &[f64], mask: &ItemMask, k: usize, selection: Selection, rng: &mut PolicyRng) -> Vec<u32> {
    TopK::default().choose(scores, mask, k, selection, rng)
}

/// [`top_k`] with its buffers kept between decisions.
///
/// Sampled: the weights exp(s − max) are computed once, with the arithmetic of [`dsrm_policy::select::select`],
/// and the first draw is its scan, so it is the item `select` (and the policy's `act`) would pick from the same
/// generator state. The later draws (weights of drawn items set to 0) walk sums over blocks of
/// [`TopK::BLOCK`] weights, then one block: O(n / BLOCK + BLOCK) each instead of a scan of the catalogue.
#[derive(Debug, Default)]
pub struct TopK {
    allowed: Vec<u32>,
    weights: Vec<f64>,
    blocks: Vec<f64>,
}

impl TopK {
    /// Weights per block sum of the later draws.
    pub const BLOCK: usize = 64;

    /// See [`top_k`].
    pub fn choose(
        &mut self,
        scores: &[f64],
        mask: &ItemMask,
        k: usize,
        selection: Selection,
        rng: &mut PolicyRng,
    ) -> Vec<u32> {
        let allowed = &mut self.allowed;
        allowed.clear();
        allowed.extend((0..scores.len() as u32).filter(|&i| mask.allows(i) && scores[i as usize].is_finite()));
        let k = k.min(allowed.len());
        match selection {
            Selection::Argmax => {
                let order = |a: &u32, b: &u32| scores[*b as usize].total_cmp(&scores[*a as usize]).then(a.cmp(b));
                if k > 0 && k < allowed.len() {
                    allowed.select_nth_unstable_by(k - 1, order);
                }
                let mut top = allowed[..k].to_vec();
                top.sort_unstable_by(order);
                top
            }
            Selection::Sampled => self.sample(scores, k, rng),
        }
    }

    /// `k` draws without replacement from softmax(`scores`) over `self.allowed` (ascending ids, finite scores).
    fn sample(&mut self, scores: &[f64], k: usize, rng: &mut PolicyRng) -> Vec<u32> {
        use rand::Rng;
        let (allowed, weights, blocks) = (&self.allowed, &mut self.weights, &mut self.blocks);
        let max = allowed.iter().map(|&i| scores[i as usize]).fold(f64::NEG_INFINITY, f64::max);
        weights.clear();
        weights.extend(allowed.iter().map(|&i| (scores[i as usize] - max).exp()));
        let mut total: f64 = weights.iter().sum();
        let mut out = Vec::with_capacity(k);
        if k == 0 {
            return out;
        }
        // The first draw: `select`'s scan (past the end by rounding: the last item).
        let mut u = rng.gen::<f64>() * total;
        let mut first = weights.len() - 1;
        for (j, &w) in weights.iter().enumerate() {
            if u < w {
                first = j;
                break;
            }
            u -= w;
        }
        out.push(allowed[first]);
        total -= weights[first];
        weights[first] = 0.0;
        blocks.clear();
        blocks.extend(weights.chunks(Self::BLOCK).map(|c| c.iter().sum::<f64>()));
        while out.len() < k && total > 0.0 {
            let mut u = rng.gen::<f64>() * total;
            // The block holding u, then the item; rounding past the end: the last item still weighted.
            let mut at = None;
            for (b, &sum) in blocks.iter().enumerate() {
                if sum <= 0.0 {
                    continue;
                }
                if u < sum {
                    at = Some(b);
                    break;
                }
                u -= sum;
                at = Some(b);
            }
            let Some(b) = at else { break };
            let start = b * Self::BLOCK;
            let end = (start + Self::BLOCK).min(weights.len());
            let mut pick = None;
            for (j, &w) in weights[start..end].iter().enumerate() {
                if w > 0.0 {
                    pick = Some(start + j);
                    if u < w {
                        break;
                    }
                    u -= w;
                }
            }
            let Some(j) = pick else { break };
            out.push(allowed[j]);
            total -= weights[j];
            weights[j] = 0.0;
            // Summed again, not decremented: no rounding residue can leave an empty block looking weighted.
            blocks[b] = weights[start..end].iter().sum();
        }
        if out.len() < k {
            // The rest have weights that underflow to 0 (scores ~745 below the best): they come by score.
            let mut rest: Vec<u32> =
                allowed.iter().zip(weights.iter()).filter(|&(_, &w)| w == 0.0).map(|(&i, _)| i).collect();
            rest.retain(|i| !out.contains(i));
            rest.sort_by(|a, b| scores[*b as usize].total_cmp(&scores[*a as usize]).then(a.cmp(b)));
            out.extend(rest.into_iter().take(k - out.len()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_first_sampled_item_is_the_one_select_draws() {
        use dsrm_policy::select::select;
        let mut mask = ItemMask::all(50);
        [3, 17, 40].iter().for_each(|&i| mask.block(i));
        let scores: Vec<f64> = (0..50).map(|i| ((i * 37 % 11) as f64).sin() * 3.0).collect();
        for seed in 0..200 {
            let (mut a, mut b) = (PolicyRng::seed_from_u64(seed), PolicyRng::seed_from_u64(seed));
            let top = top_k(&scores, &mask, 5, Selection::Sampled, &mut a);
            assert_eq!(top[0], select(&scores, &mask, Selection::Sampled, &mut b));
            let distinct: std::collections::BTreeSet<_> = top.iter().collect();
            assert!(distinct.len() == 5 && top.iter().all(|&i| mask.allows(i)));
        }
    }

    #[test]
    fn the_later_sampled_draws_follow_the_softmax_of_what_is_left() {
        // Over three blocks of weights: P(i among 2 draws) = p_i + Σ_{j≠i} p_j p_i / (1 − p_j).
        let n = 150;
        let scores: Vec<f64> =
            (0..n).map(|i| ((i * 7 % 13) as f64) * 0.35 - if i % 50 == 3 { 0.0 } else { 1.0 }).collect();
        let mut mask = ItemMask::all(n);
        [0u32, 64, 65, 149].iter().for_each(|&i| mask.block(i));
        let allowed: Vec<usize> = (0..n).filter(|&i| mask.allows(i as u32)).collect();
        let z: f64 = allowed.iter().map(|&i| scores[i].exp()).sum();
        let p = |i: usize| scores[i].exp() / z;
        let mut top = TopK::default();
        let mut rng = PolicyRng::seed_from_u64(11);
        let trials = 40_000;
        let mut hits = vec![0u32; n];
        for _ in 0..trials {
            let got = top.choose(&scores, &mask, 2, Selection::Sampled, &mut rng);
            assert!(got.len() == 2 && got[0] != got[1] && got.iter().all(|&i| mask.allows(i)));
            got.iter().for_each(|&i| hits[i as usize] += 1);
        }
        for &i in &allowed {
            let want = p(i) + allowed.iter().filter(|&&j| j != i).map(|&j| p(j) * p(i) / (1.0 - p(j))).sum::<f64>();
            let sd = (want * (1.0 - want) / trials as f64).sqrt();
            let got = f64::from(hits[i]) / trials as f64;
            assert!((got - want).abs() < 5.0 * sd + 1e-4, "item {i}: {got} vs {want}");
        }
        assert!(mask.n_items() - mask.n_allowed() == 4 && [0, 64, 65, 149].iter().all(|&i| hits[i] == 0));
    }

    #[test]
    fn top_k_masks_ranks_and_samples_without_replacement() {
        let mut mask = ItemMask::all(5);
        mask.block(1);
        let scores = [0.5, 9.0, 0.5, f64::NEG_INFINITY, 2.0];
        let mut rng = PolicyRng::seed_from_u64(0);
        assert_eq!(top_k(&scores, &mask, 2, Selection::Argmax, &mut rng), vec![4, 0]);
        assert_eq!(top_k(&scores, &mask, 10, Selection::Argmax, &mut rng), vec![4, 0, 2]);
        let far = [0.0, -2000.0, -3000.0, 1.0];
        let all = ItemMask::all(4);
        let got = top_k(&far, &all, 4, Selection::Sampled, &mut rng);
        assert_eq!(&got[2..], &[1, 2], "underflowed weights come last, by score: {got:?}");
        for _ in 0..50 {
            let mut got = top_k(&scores, &mask, 3, Selection::Sampled, &mut rng);
            got.sort_unstable();
            assert_eq!(got, vec![0, 2, 4]);
        }
    }
}
