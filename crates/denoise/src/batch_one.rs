//! A denoiser applied to one state at a time, without libtorch, for a server (`Denoiser::batch_one`): the
//! distilled student (a frozen copy of its MLP, `dsrm_nn::frozen_mlp`), the identity, and the compiled DDPM and
//! DDIM chains (`crate::chain`) where they are deterministic and read the caller's row as it is. The flow, a
//! chain that draws purification noise, a noise start or an observed-state condition keep libtorch. Outputs
//! equal `try_purify`'s to rounding (`the_batch_one_purified_state_is_the_libtorch_one`).

use crate::{DenoiseError, Result};
use dsrm_nn::frozen_mlp::{FrozenMlp, Scratch};

/// The libtorch-free, one-state form of a denoiser (see the module docs).
pub trait BatchOneDenoiser: Send {
    /// Width of the input (the state, then the condition).
    fn input_dim(&self) -> usize;
    /// Width of the purified state.
    fn output_dim(&self) -> usize;
    /// `out = purify(input)`; wrong widths are errors.
    fn purify(&mut self, input: &[f32], out: &mut [f32]) -> Result<()>;
}

/// One network evaluation: the distilled student.
pub struct OneNetwork {
    net: FrozenMlp,
    scratch: Scratch,
}

impl OneNetwork {
    pub fn new(net: FrozenMlp) -> Self {
        Self { net, scratch: Scratch::default() }
    }
}

impl BatchOneDenoiser for OneNetwork {
    fn input_dim(&self) -> usize {
        self.net.input_dim()
    }

    fn output_dim(&self) -> usize {
        self.net.output_dim()
    }

    fn purify(&mut self, input: &[f32], out: &mut [f32]) -> Result<()> {
        Ok(self.net.forward(input, &mut self.scratch, out)?)
    }
}

/// The identity: the observed state itself.
pub struct Unchanged {
    pub dim: usize,
}

impl BatchOneDenoiser for Unchanged {
    fn input_dim(&self) -> usize {
        self.dim
    }

    fn output_dim(&self) -> usize {
        self.dim
    }

    fn purify(&mut self, input: &[f32], out: &mut [f32]) -> Result<()> {
        if input.len() != self.dim || out.len() != self.dim {
            return Err(DenoiseError::Shape(format!(
                "identity over {} values: got {} in, {} out",
                self.dim,
                input.len(),
                out.len()
            )));
        }
        out.copy_from_slice(input);
        Ok(())
    }
}
