//! Sessions: what the server remembers between requests of one session id, bounded by an LRU capacity and
//! an idle timeout so memory stays flat under any traffic.
//!
//! A session holds its user, the items it consumed with their rewards (the history the tracker reads and the
//! NX mask blocks), the high level's current goal and when that goal was drawn, and its own random stream
//! (seeded from `--seed` and the session id, so a session's recommendations do not depend on other sessions'
//! traffic). An evicted session's next feedback is answered 404; its next recommendation starts afresh.

use dsrm_policy::PolicyRng;
use lru::LruCache;
use rand::SeedableRng;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

/// One session's state.
pub struct Session {
    /// The data set's user id the session was opened for.
    pub user_id: u64,
    /// The dense user, `None` for a cold-start user.
    pub user: Option<u32>,
    /// Consumed dense items, oldest first, and their rewards.
    pub items: Vec<u32>,
    pub rewards: Vec<f64>,
    /// The hierarchical policy's goal of the current segment.
    pub goal: [f32; 2],
    /// The history length at which `goal` was drawn (a new segment draws once, however often it is asked).
    pub goal_drawn_at: Option<usize>,
    pub rng: PolicyRng,
    pub last_used: Instant,
}

impl Session {
    /// A fresh session whose random stream is fixed by (`seed`, `session_id`).
    pub fn new(session_id: &str, user_id: u64, user: Option<u32>, seed: u64, now: Instant) -> Self {
        let mut rng = PolicyRng::seed_from_u64(seed);
        rng.set_stream(fnv1a(session_id.as_bytes()));
        Self {
            user_id,
            user,
            items: Vec::new(),
            rewards: Vec::new(),
            goal: [0.0; 2],
            goal_drawn_at: None,
            rng,
            last_used: now,
        }
    }
}

/// FNV-1a, a stable 64-bit hash (the session's random stream must not change between builds or runs).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Why sessions left the store.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    /// Pushed out by a new session at capacity.
    pub capacity: u64,
    /// Idle for longer than the timeout.
    pub idle: u64,
}

/// The sessions, least recently used first out.
pub struct SessionStore {
    sessions: LruCache<String, Session>,
    idle: Duration,
}

impl SessionStore {
    /// A store of at most `capacity` (≥ 1) sessions, each dropped after `idle` without a request.
    pub fn new(capacity: NonZeroUsize, idle: Duration) -> Self {
        Self { sessions: LruCache::new(capacity), idle }
    }

    /// Number of sessions held.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Drops the sessions idle for longer than the timeout (the least recently used come first, so this
    /// stops at the first live one); returns how many.
    pub fn expire(&mut self, now: Instant) -> u64 {
        let mut n = 0;
        while let Some((_, s)) = self.sessions.peek_lru() {
            if now.saturating_duration_since(s.last_used) <= self.idle {
                break;
            }
            self.sessions.pop_lru();
            n += 1;
        }
        n
    }

    /// The session `id`, marked as used now.
    pub fn get_mut(&mut self, id: &str, now: Instant) -> Option<&mut Session> {
        let s = self.sessions.get_mut(id)?;
        s.last_used = now;
        Some(s)
    }

    /// Inserts a new session; returns true when a session was pushed out to make room.
    pub fn insert(&mut self, id: &str, session: Session) -> bool {
        self.sessions.push(id.to_string(), session).is_some_and(|(old, _)| old != id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_and_idle_bound_the_store() {
        let t0 = Instant::now();
        let mut store = SessionStore::new(NonZeroUsize::new(2).unwrap(), Duration::from_secs(10));
        assert!(!store.insert("a", Session::new("a", 1, Some(0), 0, t0)));
        assert!(!store.insert("b", Session::new("b", 1, Some(0), 0, t0)));
        assert!(store.get_mut("a", t0).is_some()); // b is now the least recently used
        assert!(store.insert("c", Session::new("c", 1, Some(0), 0, t0)));
        assert!(store.get_mut("b", t0).is_none() && store.get_mut("a", t0).is_some());
        let later = t0 + Duration::from_secs(11);
        assert_eq!(store.expire(later), 2);
        assert!(store.is_empty());
    }

    #[test]
    fn session_streams_depend_on_seed_and_id_only() {
        use rand::Rng;
        let t = Instant::now();
        let draw = |id: &str, seed| Session::new(id, 0, None, seed, t).rng.gen::<u64>();
        assert_eq!(draw("x", 1), draw("x", 1));
        assert_ne!(draw("x", 1), draw("y", 1));
        assert_ne!(draw("x", 1), draw("x", 2));
    }
}
