//! The item table every tracker looks its rows up in: the catalogue, a padding row and DORL's "start" row.
//!
//! Layout `[n_items + 2, d]`: rows `0..n_items` are the items, row `n_items` is the padding item (the
//! [`HistoryBatch`](crate::HistoryBatch) `pad` id), row `n_items + 1` is the start vector that stands for the
//! reset observation (DORL appends one extra row to the DeepFM item table for it, `docs/protocol.md` §3).
//!
//! One variable holds all three parts, as in DORL (`nn.Embedding.from_pretrained(cat(items, start))`), so
//! freezing freezes the start row too: a frozen tracker produces a fixed state distribution, which is what
//! DSRM needs (`docs/design.md` §4.2). The padding row never reaches a state (window rows mask it out), so it
//! gets no gradient; it exists so that padded ids are valid lookups.

use crate::StateError;
use dsrm_nn::tch::nn::Path;
use dsrm_nn::tch::{Device, Kind, Tensor};

/// Standard deviation of DORL's start vector, N(0, 0.01²).
pub const START_INIT_STD: f64 = 0.01;

/// The item embedding table of one tracker (see the module docs for its layout).
#[derive(Debug)]
pub struct ItemTable {
    weight: Tensor,
    n_items: i64,
    dim: i64,
    frozen: bool,
}

impl ItemTable {
    /// Creates the table under `path` as the variable `item_embedding`.
    ///
    /// * `pretrained`: `[n_items, d]` item embeddings (copied; the caller's tensor is never trained). When
    ///   `None`, the items get learned embeddings of `learned_dim` drawn from N(0, `learned_init_std`²).
    /// * `freeze`: make the whole table a non-trainable variable (no gradient, ignored by optimisers, still
    ///   saved in checkpoints).
    pub fn new(
        path: &Path,
        n_items: usize,
        pretrained: Option<&Tensor>,
        learned_dim: i64,
        learned_init_std: f64,
        freeze: bool,
    ) -> Result<Self, StateError> {
        let device = path.device();
        let n = i64::try_from(n_items).map_err(|_| StateError::Config(format!("n_items {n_items} too large")))?;
        if n == 0 {
            return Err(StateError::Config("n_items must be positive".into()));
        }
        let items = match pretrained {
            Some(t) => Self::checked_pretrained(t, n, device)?,
            None => {
                if learned_dim < 1 {
                    return Err(StateError::Config(format!("embedding_dim must be positive, got {learned_dim}")));
                }
                Tensor::f_randn([n, learned_dim], (Kind::Float, device))?.f_mul_scalar(learned_init_std)?
            }
        };
        let dim = items.size()[1];
        let pad = Tensor::f_zeros([1, dim], (Kind::Float, device))?;
        let start = Tensor::f_randn([1, dim], (Kind::Float, device))?.f_mul_scalar(START_INIT_STD)?;
        let init = Tensor::f_cat(&[items, pad, start], 0)?;
        let weight = if freeze {
            let mut w = path.f_zeros_no_train("item_embedding", &[n + 2, dim])?;
            dsrm_nn::tch::no_grad(|| w.f_copy_(&init))?;
            w
        } else {
            path.f_var_copy("item_embedding", &init)?
        };
        Ok(Self { weight, n_items: n, dim, frozen: freeze })
    }

    /// Checks the pretrained table's shape and kind and detaches it onto the store's device.
    fn checked_pretrained(t: &Tensor, n: i64, device: Device) -> Result<Tensor, StateError> {
        let size = t.size();
        if size.len() != 2 || size[0] != n || size[1] < 1 {
            return Err(StateError::Embeddings(format!("expected [{n}, d] with d >= 1, got {size:?}")));
        }
        if !t.is_floating_point() {
            return Err(StateError::Embeddings(format!("expected a floating-point tensor, got {:?}", t.kind())));
        }
        Ok(t.f_detach()?.f_to_kind(Kind::Float)?.f_to_device(device)?)
    }

    /// Embedding size d (the state adds one reward channel to it).
    pub fn dim(&self) -> i64 {
        self.dim
    }

    /// Catalogue size.
    pub fn n_items(&self) -> i64 {
        self.n_items
    }

    /// Id of the padding row (= `n_items`, the `HistoryBatch` pad id).
    pub fn pad_id(&self) -> i64 {
        self.n_items
    }

    /// Id of the start row (= `n_items + 1`).
    pub fn start_id(&self) -> i64 {
        self.n_items + 1
    }

    /// Whether the table is a non-trainable variable.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// The whole `[n_items + 2, d]` variable (shares storage with the var store).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The `[n_items, d]` catalogue part, e.g. for scoring items against a continuous action.
    pub fn item_embeddings(&self) -> Result<Tensor, StateError> {
        Ok(self.weight.f_narrow(0, 0, self.n_items)?)
    }

    /// The `[1, d]` start vector.
    pub fn start(&self) -> Result<Tensor, StateError> {
        Ok(self.weight.f_narrow(0, self.start_id(), 1)?)
    }

    /// Looks up int64 ids of any shape `[..]`, giving `[.., d]`.
    pub fn lookup(&self, ids: &Tensor) -> Result<Tensor, StateError> {
        Ok(Tensor::f_embedding(&self.weight, ids, -1, false, false)?)
    }
}
