//! Where episode users (and EasyRL4Rec's random initial items) come from.
//!
//! The anchors draw them with CPython's `random.randint(0, n - 1)`: the Mersenne Twister (MT19937) behind
//! `random.seed(seed)`, then `randbelow(n)` by rejection on `getrandbits(k)` with k = n.bit_length()
//! (`docs/protocol.md` §1.1, §11.6). [`UserStream::Python`] reproduces that stream bit for bit, so a run can
//! meet exactly the users an anchor script met for the same Python seed (when nothing else in that script
//! consumed Python's `random` in between). [`UserStream::ChaCha`] is the default: fast, with independent
//! sub-streams.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_mt::Mt;
use serde::{Deserialize, Serialize};

/// Which generator draws users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserStreamKind {
    /// ChaCha8, seeded from (seed, stream).
    #[default]
    Chacha,
    /// CPython's `random` module seeded with `random.seed(seed)`.
    Python,
}

/// A source of uniform draws in `0..n`. One lives per evaluation run, so its size does not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum UserStream {
    ChaCha(ChaCha8Rng),
    Python(PythonRandom),
}

impl UserStream {
    /// A stream of the given kind. `stream` selects an independent ChaCha sub-stream; CPython has none,
    /// so the Python stream depends on `seed` alone.
    pub fn new(kind: UserStreamKind, seed: u64, stream: u64) -> Self {
        match kind {
            UserStreamKind::Chacha => {
                let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
                rng.set_stream(stream);
                UserStream::ChaCha(rng)
            }
            UserStreamKind::Python => UserStream::Python(PythonRandom::seed(seed)),
        }
    }

    /// A uniform draw in `0..n` (n > 0).
    pub fn below(&mut self, n: u32) -> u32 {
        match self {
            UserStream::ChaCha(rng) => rng.gen_range(0..n),
            UserStream::Python(py) => py.randbelow(n),
        }
    }
}

/// CPython's `random.Random` for integer seeds, as far as `randint` needs it.
#[derive(Debug, Clone)]
pub struct PythonRandom {
    mt: Mt,
}

impl PythonRandom {
    /// `random.seed(seed)`: `init_by_array` over the 32-bit words of the seed, least significant first
    /// (a zero seed is the one-word key `[0]`).
    pub fn seed(seed: u64) -> Self {
        let (lo, hi) = (seed as u32, (seed >> 32) as u32);
        let key: Vec<u32> = if hi == 0 { vec![lo] } else { vec![lo, hi] };
        Self { mt: Mt::new_with_key(key) }
    }

    /// `getrandbits(k)` for 1 <= k <= 32.
    fn getrandbits(&mut self, k: u32) -> u32 {
        self.mt.next_u32() >> (32 - k)
    }

    /// `randbelow(n)`: rejection sampling on `getrandbits(n.bit_length())`.
    pub fn randbelow(&mut self, n: u32) -> u32 {
        let k = 32 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `randint(a, b)`, both ends inclusive.
    pub fn randint(&mut self, a: u32, b: u32) -> u32 {
        a + self.randbelow(b - a + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values printed by CPython 3.11:
    /// `random.seed(s); [random.randint(0, n) for _ in range(k)]`.
    #[test]
    fn matches_cpython_randint() {
        let mut py = PythonRandom::seed(2023);
        let got: Vec<u32> = (0..8).map(|_| py.randint(0, 1410)).collect();
        assert_eq!(got, [784, 914, 797, 655, 1251, 1169, 690, 1297]);
        let mut py = PythonRandom::seed(0);
        let got: Vec<u32> = (0..4).map(|_| py.randint(0, 1410)).collect();
        assert_eq!(got, [788, 861, 82, 530]);
        assert_eq!(py.randint(0, 3326), 2094);
        let mut py = PythonRandom::seed((1 << 40) + 7);
        let got: Vec<u32> = (0..5).map(|_| py.randint(0, 27284)).collect();
        assert_eq!(got, [20109, 24488, 26703, 20955, 18690]);
    }
}
