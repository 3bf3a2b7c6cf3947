//! Per-head QK-norm then RoPE as one fused op: `rope(rms_norm(x, w), cos, sin)`, what Qwen3's and
//! Gemma 3's attention do to every query and key head. Its definition is the two ops in a row
//! (`rms_norm`, `rope`), which is also what runs where a backend has no fused kernel.

use crate::backend::RmsNormSpec;
use crate::{Result, Tensor};

impl Tensor {
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
        let x = self.contiguous()?;
        let (cos, sin) = (super::rope::table_rows(cos)?, super::rope::table_rows(sin)?);
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
}
