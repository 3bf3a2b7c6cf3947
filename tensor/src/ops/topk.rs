//! Top-k along an axis: MoE routers pick experts with it, samplers keep the k likeliest tokens.

use crate::{Axis, DType, Error, Result, Tensor};

impl Tensor {
    /// The `k` largest entries along `axis` in descending order, and their u32 indices (the lower
    /// index first on ties, so routing is deterministic).
    pub fn topk(&self, k: usize, axis: impl Axis) -> Result<(Tensor, Tensor)> {
        let axis = axis.resolve(self.rank(), "topk")?;
        let n = self.dims()[axis];
        if k > n {
            return Err(Error::shape("topk", format!("k = {k} is larger than axis {axis} of {:?}", self.shape())));
        }
        let x = if self.dtype().is_half() { self.to_dtype(DType::F32)? } else { self.clone() };
        let last = x.rank() - 1;
        let moved = if axis == last { x.clone() } else { x.transpose(axis, last)? };
        let (values, indices) = x.device().backend().topk(moved.src(), k)?;
        let mut dims = moved.dims().to_vec();
        dims[last] = k;
        let values = x.new_like(values, dims.clone(), x.dtype());
        let indices = x.new_like(indices, dims, DType::U32);
        let (values, indices) = if axis == last {
            (values, indices)
        } else {
            (values.transpose(axis, last)?, indices.transpose(axis, last)?)
        };
        Ok((values.to_dtype(self.dtype())?, indices))
    }
}
