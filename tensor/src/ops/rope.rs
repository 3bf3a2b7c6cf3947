//! Rotary position embedding, a fused op: the backend's kernel, with `rope_composite` from
//! primitive ops as the readable definition, the test oracle and the fallback. Also the rotation
//! (after an optional per-head RMSNorm) written straight into a destination view
//! (`rope_into`: a step's keys into its KV cache).

use crate::backend::RmsNormSpec;
use crate::{DType, Error, Layout, Result, Tensor};

impl Tensor {
    /// Rotary position embedding (Su et al. 2021, RoFormer) of `x [.., T, D]` with `cos`, `sin`
    /// tables [T, D/2]: each pair `(a, b)` becomes `(a cos - b sin, b cos + a sin)`. Pairs are
    /// `(i, i + D/2)` in the split-halves layout (HF `rotate_half`), `(2i, 2i + 1)` interleaved.
    pub fn rope(&self, cos: &Tensor, sin: &Tensor, interleaved: bool) -> Result<Tensor> {
        const OP: &str = "rope";
        self.check_same_device(OP, cos)?;
        self.check_same_device(OP, sin)?;
        let r = self.rank();
        if r < 2 || !self.dims()[r - 1].is_multiple_of(2) {
            return Err(Error::shape(OP, format!("needs x [.., T, D] with even D, got {:?}", self.shape())));
        }
        let (t, d) = (self.dims()[r - 2], self.dims()[r - 1]);
        if cos.dims() != [t, d / 2] || sin.dims() != [t, d / 2] {
            return Err(Error::shape(
                OP,
                format!(
                    "cos {:?} and sin {:?} must be [T, D/2] = [{t}, {}] for x {:?}",
                    cos.shape(),
                    sin.shape(),
                    d / 2,
                    self.shape()
                ),
            ));
        }
        self.float_op(OP, |x| {
            // Rows at an offset (one projection of a fused product, the step's rows of the
            // resident tables) are read in place.
            let x = x.contiguous_in_place()?;
            let cos = cos.to_dtype(x.dtype())?.contiguous_in_place()?;
            let sin = sin.to_dtype(x.dtype())?.contiguous_in_place()?;
            Tensor::fused_or(
                || {
                    let buffer = x.device().backend().rope(x.src(), cos.src(), sin.src(), interleaved)?;
                    Ok(x.new_like(buffer, x.shape().clone(), x.dtype()))
                },
                || x.rope_composite(&cos, &sin, interleaved),
            )
        })
    }

    /// Rotary embedding from primitives.
    pub fn rope_composite(&self, cos: &Tensor, sin: &Tensor, interleaved: bool) -> Result<Tensor> {
        let r = self.rank();
        let d = self.dims()[r - 1];
        let (a, b) = if interleaved {
            let mut dims = self.dims().to_vec();
            dims[r - 1] = d / 2;
            dims.push(2);
            let pairs = self.reshape(dims)?; // (.., T, D/2, 2)
            (pairs.select(-1, 0)?, pairs.select(-1, 1)?)
        } else {
            (self.narrow(-1, 0, d / 2)?, self.narrow(-1, d / 2, d / 2)?)
        };
        let ra = a.mul(cos)?.sub(&b.mul(sin)?)?;
        let rb = b.mul(cos)?.add(&a.mul(sin)?)?;
        if interleaved { Tensor::stack(&[&ra, &rb], -1)?.reshape(self.shape()) } else { Tensor::cat(&[&ra, &rb], -1) }
    }
}

impl Tensor {
    /// Writes `self.rope(cos, sin, interleaved)` into `dst`, or
    /// `self.rms_norm_rope(weight, spec, cos, sin, interleaved)` with `norm = Some((weight,
    /// spec))`. `dst` is a view of `self`'s shape and dtype, typically the rows a decoding step
    /// appends to a KV cache ([B, H, T, D] inside [B, H, capacity, D]).
    ///
    /// Why: on a GPU the keys' norm and rotation, and their copy into the cache, were two
    /// dispatches per layer and token; a backend with a kernel for it (`Backend::rope_into`)
    /// writes the rotated rows where the cache keeps them, in one. Elsewhere, and for layouts
    /// that kernel does not take, it is the op followed by `write_from`, with the same result.
    pub fn rope_into(
        &self,
        norm: Option<(Option<&Tensor>, RmsNormSpec)>,
        cos: &Tensor,
        sin: &Tensor,
        interleaved: bool,
        dst: &Tensor,
    ) -> Result<()> {
        const OP: &str = "rope_into";
        if dst.shape() != self.shape() || dst.dtype() != self.dtype() {
            return Err(Error::shape(
                OP,
                format!(
                    "destination {:?} {} does not match the rows {:?} {}",
                    dst.shape(),
                    dst.dtype(),
                    self.shape(),
                    self.dtype()
                ),
            ));
        }
        self.check_same_device(OP, dst)?;
        let r = self.rank();
        let weight = norm.and_then(|(w, _)| w);
        let fused = self.dtype() == DType::F32
            && r >= 2
            && self.dims()[r - 1].is_multiple_of(2)
            && cos.dims() == [self.dims()[r - 2], self.dims()[r - 1] / 2]
            && sin.dims() == cos.dims()
            && cos.dtype() == DType::F32
            && sin.dtype() == DType::F32
            && weight.is_none_or(|w| w.dims() == [self.dims()[r - 1]] && w.dtype() == DType::F32)
            && [cos, sin].into_iter().chain(weight).all(|t| t.device().same_as(self.device()))
            && uniform_row_groups(dst.layout()).is_some();
        if fused {
            let x = self.contiguous_in_place()?;
            let (cos, sin) = (cos.contiguous_in_place()?, sin.contiguous_in_place()?);
            let w = weight.map(|w| w.contiguous()).transpose()?;
            let norm = norm.map(|(_, spec)| (w.as_ref().map(|w| w.src()), spec));
            match self.device().backend().rope_into(
                x.src(),
                norm,
                (cos.src(), sin.src(), interleaved),
                dst.buffer().as_ref(),
                dst.layout(),
            ) {
                Err(e) if e.is_unsupported() => {}
                other => return other,
            }
        }
        let rows = match norm {
            Some((weight, spec)) => self.rms_norm_rope(weight, spec, cos, sin, interleaved)?,
            None => self.rope(cos, sin, interleaved)?,
        };
        dst.write_from(&rows)
    }
}

/// For a view `[.., T, D]` whose rows are contiguous (stride 1 along D, D along T) and whose
/// groups of T rows lie one stride apart (the outer axes collapse into one): that stride.
/// `Backend::rope_into` writes such views; anything else goes through a copy.
pub fn uniform_row_groups(layout: &Layout) -> Option<usize> {
    let (dims, strides) = (layout.dims(), layout.strides());
    let r = dims.len();
    if r < 2 || (dims[r - 1] > 1 && strides[r - 1] != 1) || (dims[r - 2] > 1 && strides[r - 2] != dims[r - 1]) {
        return None;
    }
    // The outer axes, innermost first, must form one progression: each axis's stride is the
    // next inner one's times its extent (axes of extent 1 are skipped).
    let outer: Vec<(usize, usize)> = (0..r - 2).rev().map(|i| (dims[i], strides[i])).filter(|&(n, _)| n > 1).collect();
    let Some(&(_, step)) = outer.first() else {
        return Some(dims[r - 2] * dims[r - 1]);
    };
    let mut expect = step;
    for &(n, stride) in &outer {
        if stride != expect {
            return None;
        }
        expect = stride * n;
    }
    Some(step)
}

#[cfg(test)]
mod tests {
    use super::uniform_row_groups;
    use crate::{DType, Device, Tensor};

    #[test]
    fn row_groups_one_stride_apart_are_found() -> crate::Result<()> {
        let cache = Tensor::zeros([2, 3, 10, 8], DType::F32, &Device::cpu())?;
        // A step's rows of every head and sequence: heads 80 apart, sequences 3 heads further.
        assert_eq!(uniform_row_groups(cache.narrow(2, 4, 2)?.layout()), Some(80));
        // Contiguous: groups of T rows back to back.
        assert_eq!(uniform_row_groups(Tensor::zeros([2, 3, 5, 8], DType::F32, &Device::cpu())?.layout()), Some(40));
        // Some heads of each sequence: the sequences are not 2 heads apart.
        assert_eq!(uniform_row_groups(cache.narrow(1, 0, 2)?.layout()), None);
        // One sequence of those is fine again; rows not D apart, or strided elements, are not.
        assert_eq!(uniform_row_groups(cache.narrow(0, 1, 1)?.narrow(1, 0, 2)?.layout()), Some(80));
        assert_eq!(uniform_row_groups(cache.narrow(3, 0, 4)?.layout()), None);
        assert_eq!(uniform_row_groups(cache.transpose(2, 3)?.layout()), None);
        Ok(())
    }
}
