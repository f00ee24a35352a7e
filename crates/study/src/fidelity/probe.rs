//! The linear probe of the fidelity report: ridge regression from a representation to a target, fit on some
//! users' states and scored on the others'.

use anyhow::Result;
use dsrm_nn::tch::{Kind, Tensor};

/// A probe's scores on the held-out rows.
pub struct ProbeScore {
    /// Mean cosine between predicted and true target rows.
    pub cosine: f64,
    /// R² pooled over the columns of the target.
    pub r2: f64,
    /// Pearson correlation of prediction and target (first column).
    pub corr: f64,
}

/// Ridge regression (intercept, z-scored inputs and targets from the fit rows) fit on `fit`, scored on `test`.
pub fn probe(x: &Tensor, y: &Tensor, fit: &[i64], test: &[i64], ridge: f64) -> Result<ProbeScore> {
    let y = y.f_to_kind(Kind::Double)?;
    let rows = |t: &Tensor, r: &[i64]| -> Result<Tensor> { Ok(t.f_index_select(0, &Tensor::f_from_slice(r)?)?) };
    let (xf, yf, xt, yt) = (rows(x, fit)?, rows(&y, fit)?, rows(x, test)?, rows(&y, test)?);
    let zs = |t: &Tensor| -> Result<(Tensor, Tensor)> {
        let mean = t.f_mean_dim(0, true, Kind::Double)?;
        let sd = t.f_std_dim(0, true, true)?.f_clamp_min(1e-9)?;
        Ok((mean, sd))
    };
    let (xm, xs) = zs(&xf)?;
    let (ym, ys) = zs(&yf)?;
    let norm = |t: &Tensor, m: &Tensor, s: &Tensor| -> Result<Tensor> { Ok(t.f_sub(m)?.f_div(s)?) };
    let (xf, xt, yf, yt) = (norm(&xf, &xm, &xs)?, norm(&xt, &xm, &xs)?, norm(&yf, &ym, &ys)?, norm(&yt, &ym, &ys)?);
    let d = xf.size()[1];
    let gram = xf.f_tr()?.f_matmul(&xf)?.f_add(&Tensor::f_eye(d, (Kind::Double, xf.device()))?.f_mul_scalar(ridge)?)?;
    let w = Tensor::f_linalg_solve(&gram, &xf.f_tr()?.f_matmul(&yf)?, true)?;
    let pred = xt.f_matmul(&w)?;
    let value = |t: Tensor| t.f_double_value(&[]);
    let sse = value(pred.f_sub(&yt)?.f_square()?.f_sum(Kind::Double)?)?;
    let sst = value(yt.f_sub(&yt.f_mean_dim(0, true, Kind::Double)?)?.f_square()?.f_sum(Kind::Double)?)?;
    let dot = pred.f_mul(&yt)?.f_sum_dim_intlist(1, false, Kind::Double)?;
    let norms =
        pred.f_norm_scalaropt_dim(2, 1, false)?.f_mul(&yt.f_norm_scalaropt_dim(2, 1, false)?)?.f_clamp_min(1e-12)?;
    let cosine = value(dot.f_div(&norms)?.f_mean(Kind::Double)?)?;
    let (p, q) = (pred.f_select(1, 0)?, yt.f_select(1, 0)?);
    let (p, q) = (p.f_sub(&p.f_mean(Kind::Double)?)?, q.f_sub(&q.f_mean(Kind::Double)?)?);
    let corr = value(p.f_mul(&q)?.f_sum(Kind::Double)?)?
        / (value(p.f_square()?.f_sum(Kind::Double)?)? * value(q.f_square()?.f_sum(Kind::Double)?)?).sqrt().max(1e-12);
    Ok(ProbeScore { cosine, r2: 1.0 - sse / sst.max(1e-12), corr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_recovers_a_linear_target_and_not_noise() {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_nn::runtime::seed(1);
        let x = Tensor::randn([400, 3], (Kind::Double, dsrm_nn::tch::Device::Cpu));
        let y = x.matmul(&Tensor::from_slice(&[1.0f64, -2.0, 0.5]).view([3, 1]));
        let (fit, test): (Vec<i64>, Vec<i64>) = (0..400).partition(|i| i % 2 == 0);
        let s = probe(&x, &y, &fit, &test, 1e-3).unwrap();
        assert!(s.r2 > 0.999 && s.corr > 0.999, "{} {}", s.r2, s.corr);
        let noise = Tensor::randn([400, 1], (Kind::Double, dsrm_nn::tch::Device::Cpu));
        assert!(probe(&x, &noise, &fit, &test, 1.0).unwrap().r2 < 0.05);
    }
}
