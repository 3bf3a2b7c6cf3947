//! RMSNorm's derivative, written out analytically with tensor ops (the forward is the device's
//! fused kernel).

use tensor::{Result, RmsNormSpec, Tensor};

use crate::Var;
use crate::rules::rule;

impl Var {
    /// RMSNorm over the last axis, `x r w` with `r = (mean(x^2) + eps)^-1/2` (or `(1 + w)` for
    /// Gemma). Backward, with `s` the scale and `n = x r`:
    /// `dx = r (g s - n mean(g s n))`, `dw = sum over rows of g n`.
    pub fn rms_norm(&self, weight: Option<&Var>, spec: RmsNormSpec) -> Result<Var> {
        let x = self.value();
        let w = weight.map(|w| w.value());
        let y = x.rms_norm(w.as_ref(), spec)?;
        // The inputs as a slice of an array (no list allocated per call): the weight when given.
        let all = [self, weight.unwrap_or(self)];
        Ok(Var::from_op(
            y,
            &all[..1 + usize::from(weight.is_some())],
            rule("rms_norm", move |g: &Tensor| {
                let r = x.sqr()?.mean(-1, true)?.add_scalar(spec.eps)?.rsqrt()?;
                let n = x.mul(&r)?;
                let gs = match &w {
                    Some(w) if spec.add_unit_offset => g.mul(&w.add_scalar(1.0)?)?,
                    Some(w) => g.mul(w)?,
                    None => g.clone(),
                };
                let dx = r.mul(&gs.sub(&n.mul(&gs.mul(&n)?.mean(-1, true)?)?)?)?;
                let mut grads = vec![Some(dx)];
                if let Some(w) = &w {
                    grads.push(Some(g.mul(&n)?.sum_to_shape(w.shape())?));
                }
                Ok(grads)
            }),
        ))
    }
}
