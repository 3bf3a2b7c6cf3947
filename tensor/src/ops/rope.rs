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

    /// Writes `self.rope(cos, sin, interleaved)` into `dst`, or
    /// `self.rms_norm_rope(weight, spec, cos, sin, interleaved)` with `norm = Some((weight,
    /// spec))`; and with `values = Some((v, v_dst))` also copies `v` into `v_dst`. Each
    /// destination is a view of its source's shape and dtype: the rows a step appends to a KV
    /// cache ([B, H, T, D] inside [B, H, capacity, D]), the keys rotated, the values as they are.
    ///
    /// Why: on a GPU a step's key norm and rotation, the copy of the keys into the cache and the
    /// copy of the values were three dispatches per layer; a backend with a kernel for it
    /// (`Backend::rope_into`) does all three in one, writing where the cache keeps the rows.
    /// Elsewhere, and for layouts that kernel does not take, it is the op and the copies, with
    /// the same result.
    pub fn rope_into(
        &self,
        norm: Option<(Option<&Tensor>, RmsNormSpec)>,
        cos: &Tensor,
        sin: &Tensor,
        interleaved: bool,
        dst: &Tensor,
        values: Option<(&Tensor, &Tensor)>,
    ) -> Result<()> {
        const OP: &str = "rope_into";
        let mismatch = |dst: &Tensor, src: &Tensor| {
            Error::shape(
                OP,
                format!(
                    "destination {:?} {} does not match the rows {:?} {}",
                    dst.shape(),
                    dst.dtype(),
                    src.shape(),
                    src.dtype()
                ),
            )
        };
        if dst.shape() != self.shape() || dst.dtype() != self.dtype() {
            return Err(mismatch(dst, self));
        }
        self.check_same_device(OP, dst)?;
        if let Some((v, v_dst)) = values {
            if v_dst.shape() != v.shape() || v_dst.dtype() != v.dtype() {
                return Err(mismatch(v_dst, v));
            }
            v.check_same_device(OP, v_dst)?;
        }
        let r = self.rank();
        let weight = norm.and_then(|(w, _)| w);
        let f32_on_device = |t: &Tensor| t.dtype() == DType::F32 && t.device().same_as(self.device());
        let fused = self.dtype() == DType::F32
            && r >= 2
            && self.dims()[r - 1].is_multiple_of(2)
            && cos.dims() == [self.dims()[r - 2], self.dims()[r - 1] / 2]
            && sin.dims() == cos.dims()
            && f32_on_device(cos)
            && f32_on_device(sin)
            && weight.is_none_or(|w| w.dims() == [self.dims()[r - 1]] && f32_on_device(w))
            && row_groups(dst.layout()).is_some();
        // The values join the kernel when they are f32 rows matching the keys' rows.
        let fused_values = values.filter(|(v, v_dst)| {
            f32_on_device(v)
                && v.rank() == r
                && v.dims()[..r - 1] == self.dims()[..r - 1]
                && row_groups(v_dst.layout()).is_some()
        });
        let mut keys_done = false;
        if fused {
            let (cos, sin) = (cos.contiguous_in_place()?, sin.contiguous_in_place()?);
            let w = weight.map(|w| w.contiguous()).transpose()?;
            let norm = norm.map(|(_, spec)| (w.as_ref().map(|w| w.src()), spec));
            match self.device().backend().rope_into(
                self.src(),
                norm,
                (cos.src(), sin.src(), interleaved),
                (dst.buffer().as_ref(), dst.layout()),
                fused_values.map(|(v, v_dst)| (v.src(), v_dst.buffer().as_ref(), v_dst.layout())),
            ) {
                Ok(()) if fused_values.is_some() => return Ok(()),
                Ok(()) => keys_done = true,
                Err(e) if e.is_unsupported() => {}
                Err(e) => return Err(e),
            }
        }
        if !keys_done {
            let rows = match norm {
                Some((weight, spec)) => self.rms_norm_rope(weight, spec, cos, sin, interleaved)?,
                None => self.rope(cos, sin, interleaved)?,
            };
            dst.write_from(&rows)?;
        }
        match values {
            Some((v, v_dst)) => v_dst.write_from(v),
            None => Ok(()),
        }
    }
}

/// Where the rows of a view `[.., T, D]` lie, when each row's D elements are contiguous and the
/// outer axes (heads, sequences) collapse into one: row (o, p), o counting the groups of T rows
/// and p the position, starts `o * outer + p * row` elements after the view's offset.
/// `Backend::rope_into` reads and writes such views in place: a prefill's heads (a transposed
/// view of the projection), a KV cache's rows for the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowGroups {
    pub outer: usize,
    pub row: usize,
}

/// The [`RowGroups`] of `layout`, if its rows have that form.
pub fn row_groups(layout: &Layout) -> Option<RowGroups> {
    let (dims, strides) = (layout.dims(), layout.strides());
    let r = dims.len();
    if r < 2 || (dims[r - 1] > 1 && strides[r - 1] != 1) {
        return None;
    }
    let row = if dims[r - 2] > 1 { strides[r - 2] } else { dims[r - 1] };
    // The outer axes must merge into one (`coalesce` drops those of extent 1); none left is one
    // group.
    let outer = Layout::new(dims[..r - 2].into(), &strides[..r - 2], 0);
    match crate::layout::coalesce([&outer]).1[0][..] {
        [] => Some(RowGroups { outer: dims[r - 2] * row, row }),
        [step] => Some(RowGroups { outer: step, row }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{RowGroups, row_groups};
    use crate::{DType, Device, Tensor};

    #[test]
    fn row_groups_one_stride_apart_are_found() -> crate::Result<()> {
        let cpu = Device::cpu();
        let cache = Tensor::zeros([2, 3, 10, 8], DType::F32, &cpu)?;
        let at = |t: &Tensor| row_groups(t.layout());
        let groups = |outer, row| Some(RowGroups { outer, row });
        // A step's rows of every head and sequence: heads 80 apart, sequences 3 heads further.
        assert_eq!(at(&cache.narrow(2, 4, 2)?), groups(80, 8));
        // Contiguous: groups of T rows back to back.
        assert_eq!(at(&Tensor::zeros([2, 3, 5, 8], DType::F32, &cpu)?), groups(40, 8));
        // A prefill's heads, a transposed view of [B, T, H, D]: heads D apart, positions H * D.
        let heads = Tensor::zeros([1, 5, 3, 8], DType::F32, &cpu)?.transpose(1, 2)?;
        assert_eq!(at(&heads), groups(8, 24));
        // Some heads of each sequence: the sequences are not 2 heads apart.
        assert_eq!(at(&cache.narrow(1, 0, 2)?), None);
        // One sequence of those is fine again; strided elements within a row are not.
        assert_eq!(at(&cache.narrow(0, 1, 1)?.narrow(1, 0, 2)?), groups(80, 8));
        assert_eq!(at(&cache.transpose(2, 3)?), None);
        Ok(())
    }
}
