//! RMSNorm, a fused op: the backend's kernel, with a composite built from primitive ops
//! (`rms_norm_composite`) as the readable definition, the test oracle and the fallback when a
//! backend reports `Unsupported`. Also per-head QK-norm then RoPE as one op (`rms_norm_rope`),
//! what Qwen3's and Gemma 3's attention do to every query and key head: its definition is the two
//! ops in a row, which is also what runs where a backend has no fused kernel. And a residual add
//! with the norm after it (`add_rms_norm`), the same way.

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
            let x = x.contiguous_in_place()?;
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

    /// `self.rms_norm(weight, spec)?.rope(cos, sin, interleaved)`, in one kernel where the
    /// backend has it (a GPU: one dispatch instead of two, the normed row never written out).
    /// Shapes as the two ops take them: `x [.., T, D]` with even D, `weight` [D], `cos`/`sin`
    /// [T, D/2].
    pub fn rms_norm_rope(
        &self,
        weight: Option<&Tensor>,
        spec: RmsNormSpec,
        cos: &Tensor,
        sin: &Tensor,
        interleaved: bool,
    ) -> Result<Tensor> {
        const OP: &str = "rms_norm_rope";
        let two_ops = || self.rms_norm(weight, spec)?.rope(cos, sin, interleaved);
        let r = self.rank();
        let plain_f32 = self.dtype() == crate::DType::F32
            && r >= 2
            && self.dims()[r - 1].is_multiple_of(2)
            && cos.dims() == [self.dims()[r - 2], self.dims()[r - 1] / 2]
            && sin.dims() == cos.dims()
            && cos.dtype() == self.dtype()
            && sin.dtype() == self.dtype()
            && weight.is_none_or(|w| w.dims() == [self.dims()[r - 1]] && w.dtype() == self.dtype());
        // Anything else (other dtypes, shapes the two ops will refuse with their own errors)
        // goes through the two ops.
        if !plain_f32 {
            return two_ops();
        }
        for t in [Some(cos), Some(sin), weight].into_iter().flatten() {
            self.check_same_device(OP, t)?;
        }
        // x as it is: a GPU reads a prefill's heads (a transposed view) in place.
        let x = self;
        let (cos, sin) = (cos.contiguous_in_place()?, sin.contiguous_in_place()?);
        let w = weight.map(|w| w.contiguous()).transpose()?;
        match x.device().backend().rms_norm_rope(
            x.src(),
            w.as_ref().map(|w| w.src()),
            spec,
            (cos.src(), sin.src(), interleaved),
        ) {
            Ok(buffer) => Ok(x.new_like(buffer, x.shape().clone(), x.dtype())),
            Err(e) if e.is_unsupported() => two_ops(),
            Err(e) => Err(e),
        }
    }

    /// `(self + residual, rms_norm(self + residual))`: a residual add and the norm after it (a
    /// pre-norm layer's `h = x + attn; ffn(norm(h))`), in one kernel where the backend has it (a
    /// GPU: one dispatch instead of two); else the two ops. Same shapes, no broadcasting.
    pub fn add_rms_norm(
        &self,
        residual: &Tensor,
        weight: Option<&Tensor>,
        spec: RmsNormSpec,
    ) -> Result<(Tensor, Tensor)> {
        let two_ops = || -> Result<(Tensor, Tensor)> {
            let h = self.add(residual)?;
            let n = h.rms_norm(weight, spec)?;
            Ok((h, n))
        };
        let d = self.dims().last().copied().unwrap_or(0);
        let plain_f32 = self.dtype() == crate::DType::F32
            && residual.dtype() == self.dtype()
            && residual.dims() == self.dims()
            && d > 0
            && weight.is_none_or(|w| w.dims() == [d] && w.dtype() == self.dtype());
        if !plain_f32 {
            return two_ops();
        }
        self.check_same_device("add_rms_norm", residual)?;
        if let Some(w) = weight {
            self.check_same_device("add_rms_norm", w)?;
        }
        let (x, r) = (self.contiguous()?, residual.contiguous()?);
        let w = weight.map(|w| w.contiguous()).transpose()?;
        match x.device().backend().add_rms_norm(x.src(), r.src(), w.as_ref().map(|w| w.src()), spec) {
            Ok((h, n)) => {
                Ok((x.new_like(h, x.shape().clone(), x.dtype()), x.new_like(n, x.shape().clone(), x.dtype())))
            }
            Err(e) if e.is_unsupported() => two_ops(),
            Err(e) => Err(e),
        }
    }
}
