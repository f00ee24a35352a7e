//! What a conditional denoiser's input rows hold: `[B, d + cond_dim]` = o_t ⊕ the history summary h. Shared by
//! the diffusion and the flow denoisers, which read the same (target, condition) contract.

use dsrm_nn::tch::Tensor;

/// Splits checked `[B, d + cond_dim]` rows into o_t and the network's condition: the whole row with
/// `observed_condition`, else the summary h (none when `cond_dim` is 0).
pub(crate) fn split_condition(
    observed_condition: bool,
    cond_dim: i64,
    dim: i64,
    rows: &Tensor,
) -> Result<(Tensor, Option<Tensor>), dsrm_nn::tch::TchError> {
    let observed = rows.f_narrow(1, 0, dim)?;
    let cond = if observed_condition {
        Some(rows.shallow_clone())
    } else if cond_dim > 0 {
        Some(rows.f_narrow(1, dim, cond_dim)?)
    } else {
        None
    };
    Ok((observed, cond))
}
