//! Rotary position embedding, a fused op: the backend's kernel, with `rope_composite` from
//! primitive ops as the readable definition, the test oracle and the fallback.

use crate::{Error, Result, Tensor};

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
