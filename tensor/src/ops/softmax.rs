//! Softmax and log-softmax over any axis. Backends compute them over the last axis of a
//! contiguous tensor in one numerically stable pass (subtracting the row max); other axes are
//! moved last and back.

use crate::{Axis, Result, Tensor};

impl Tensor {
    /// `exp(x - max) / sum(exp(x - max))` along `axis`.
    pub fn softmax(&self, axis: impl Axis) -> Result<Tensor> {
        self.softmax_impl(axis, false)
    }

    /// `x - max - log(sum(exp(x - max)))` along `axis`: finite for logits of any size.
    pub fn log_softmax(&self, axis: impl Axis) -> Result<Tensor> {
        self.softmax_impl(axis, true)
    }

    fn softmax_impl(&self, axis: impl Axis, log: bool) -> Result<Tensor> {
        let op = if log { "log_softmax" } else { "softmax" };
        let axis = axis.resolve(self.rank(), op)?;
        self.float_op(op, |x| {
            let last = x.rank() - 1;
            let moved = if axis == last { x.clone() } else { x.transpose(axis, last)? };
            let moved = moved.contiguous()?;
            let buffer = x.device().backend().softmax(moved.src(), log)?;
            let out = x.new_like(buffer, moved.shape().clone(), x.dtype());
            if axis == last { Ok(out) } else { out.transpose(axis, last) }
        })
    }
}
