//! RMSNorm, a fused op: the backend's kernel, with a composite built from primitive ops
//! (`rms_norm_composite`) as the readable definition, the test oracle and the fallback when a
//! backend reports `Unsupported`.

use crate::backend::RmsNormSpec;
use crate::{Error, Result, Tensor};

impl Tensor {
    /// RMSNorm over the last axis: `x / sqrt(mean(x^2) + eps) * w` (Zhang & Sennrich 2019), or
    /// `* (1 + w)` for Gemma. `weight` has the last axis's extent; `None` gives the weightless
    /// norm (Llama 4's L2 QK-norm).
    pub fn rms_norm(&self, weight: Option<&Tensor>, spec: RmsNormSpec) -> Result<Tensor> {
        const OP: &str = "rms_norm";
        let d = *self.dims().last().ok_or_else(|| Error::shape(OP, "needs at least one dim"))?;
        if let Some(w) = weight {
            self.check_same_device(OP, w)?;
            if w.dims() != [d] {
                return Err(Error::shape(
                    OP,
                    format!("weight {:?} does not match the last axis of {:?}", w.shape(), self.shape()),
                ));
            }
        }
        self.float_op(OP, |x| {
            let x = x.contiguous()?;
            let w = weight.map(|w| w.to_dtype(x.dtype()).and_then(|w| w.contiguous())).transpose()?;
            Tensor::fused_or(
                || {
                    let buffer = x.device().backend().rms_norm(x.src(), w.as_ref().map(|w| w.src()), spec)?;
                    Ok(x.new_like(buffer, x.shape().clone(), x.dtype()))
                },
                || x.rms_norm_composite(w.as_ref(), spec),
            )
        })
    }

    /// RMSNorm from primitives.
    pub fn rms_norm_composite(&self, weight: Option<&Tensor>, spec: RmsNormSpec) -> Result<Tensor> {
        let normed = self.mul(&self.sqr()?.mean(-1, true)?.add_scalar(spec.eps)?.rsqrt()?)?;
        match weight {
            None => Ok(normed),
            Some(w) if spec.add_unit_offset => normed.mul(&w.add_scalar(1.0)?),
            Some(w) => normed.mul(w),
        }
    }
}
