//! A fitted matrix factorisation as bytes, bit for bit, so a cache can keep a fit and give back the same model.
//!
//! Layout, all little-endian: the magic `dsrm-mf 1\n`; five u64 (loss: 0 squared, 1 logistic; dim; n_users;
//! n_items; the length of the loss history); then f64: the global mean, the user biases, the item biases, the
//! user factors, the item factors and the loss history, in that order. Nothing may follow.

use crate::mf::{MatrixFactorization, MfError, MfLoss};

const MAGIC: &[u8] = b"dsrm-mf 1\n";

impl MatrixFactorization {
    /// The model as bytes ([module](self) layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let loss = match self.loss {
            MfLoss::Squared => 0u64,
            MfLoss::Logistic => 1,
        };
        let mut out = MAGIC.to_vec();
        for n in [loss, self.dim as u64, self.n_users as u64, self.n_items as u64, self.history.len() as u64] {
            out.extend(n.to_le_bytes());
        }
        let columns = [&self.user_bias, &self.item_bias, &self.user_factors, &self.item_factors, &self.history];
        for x in std::iter::once(&self.global_mean).chain(columns.into_iter().flatten()) {
            out.extend(x.to_le_bytes());
        }
        out
    }

    /// The model written by [`Self::to_bytes`]; anything else is an [`MfError::Corrupt`] naming what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MfError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| corrupt("it does not start with `dsrm-mf 1`"))?;
        let mut words = rest.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")));
        if rest.len() % 8 != 0 {
            return Err(corrupt("its length is not a whole number of 8-byte words"));
        }
        let mut header = [0u64; 5];
        for h in &mut header {
            *h = words.next().ok_or_else(|| corrupt("its header is cut short"))?;
        }
        let [loss, dim, n_users, n_items, history] = header.map(|n| n as usize);
        let loss = match loss {
            0 => MfLoss::Squared,
            1 => MfLoss::Logistic,
            other => return Err(corrupt(&format!("unknown loss code {other}"))),
        };
        let expected = n_users
            .checked_mul(dim + 1)
            .and_then(|u| n_items.checked_mul(dim + 1).and_then(|i| u.checked_add(i)))
            .and_then(|n| n.checked_add(1 + history))
            .ok_or_else(|| corrupt("its sizes overflow"))?;
        let values: Vec<f64> = words.map(f64::from_bits).collect();
        if values.len() != expected {
            return Err(corrupt(&format!(
                "{} values for {n_users} users, {n_items} items, dim {dim} and {history} epochs, which need {expected}",
                values.len()
            )));
        }
        let mut next = values.into_iter();
        let mut take = |n: usize| -> Vec<f64> { next.by_ref().take(n).collect() };
        let global_mean = take(1)[0];
        Ok(Self {
            loss,
            dim,
            n_users,
            n_items,
            global_mean,
            user_bias: take(n_users),
            item_bias: take(n_items),
            user_factors: take(n_users * dim),
            item_factors: take(n_items * dim),
            history: take(history),
        })
    }
}

fn corrupt(what: &str) -> MfError {
    MfError::Corrupt(what.to_string())
}

#[cfg(test)]
mod tests {
    use crate::{Interactions, MatrixFactorization, MfConfig};

    fn fitted() -> MatrixFactorization {
        let data = Interactions {
            n_users: 3,
            n_items: 4,
            user: vec![0, 0, 1, 2, 2],
            item: vec![0, 1, 2, 3, 1],
            target: vec![1.0, 0.5, 2.0, 0.25, 1.5],
        };
        MatrixFactorization::fit(&data, &MfConfig { dim: 2, epochs: 3, ..Default::default() }).unwrap()
    }

    #[test]
    fn a_model_comes_back_bit_for_bit() {
        let mf = fitted();
        let back = MatrixFactorization::from_bytes(&mf.to_bytes()).unwrap();
        assert_eq!(back, mf);
        assert_eq!(back.to_bytes(), mf.to_bytes());
        for (u, i) in [(0, 0), (2, 3), (1, 1)] {
            assert_eq!(back.predict(u, i).to_bits(), mf.predict(u, i).to_bits());
        }
    }

    #[test]
    fn damaged_bytes_are_refused_with_the_reason() {
        let bytes = fitted().to_bytes();
        let err = |b: &[u8]| MatrixFactorization::from_bytes(b).unwrap_err().to_string();
        assert!(err(b"something else").contains("dsrm-mf 1"), "{}", err(b"something else"));
        assert!(err(&bytes[..bytes.len() - 8]).contains("which need"), "{}", err(&bytes[..bytes.len() - 8]));
        assert!(err(&bytes[..bytes.len() - 3]).contains("8-byte words"));
        assert!(err(&bytes[..26]).contains("header"));
        let mut extra = bytes.clone();
        extra.extend(0f64.to_le_bytes());
        assert!(err(&extra).contains("which need"));
        let mut bad_loss = bytes;
        bad_loss[10] = 7;
        assert!(err(&bad_loss).contains("loss code 7"));
    }
}
