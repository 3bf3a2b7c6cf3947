//! Inclusive prefix sums along an axis (top-p sampling walks the sorted probabilities with it).

use crate::{Axis, Result, Tensor};

impl Tensor {
    /// `out[.., i, ..] = sum_{j <= i} x[.., j, ..]` along `axis`.
    pub fn cumsum(&self, axis: impl Axis) -> Result<Tensor> {
        let axis = axis.resolve(self.rank(), "cumsum")?;
        self.float_op("cumsum", |x| {
            let buffer = x.device().backend().cumsum(x.src(), axis)?;
            Ok(x.new_like(buffer, x.shape().clone(), x.dtype()))
        })
    }
}
