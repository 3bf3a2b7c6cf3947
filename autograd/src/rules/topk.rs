//! Top-k: the values are differentiable (the gradient returns to the picked positions); the
//! indices are data.

use tensor::{Axis, Result, Tensor};

use crate::Var;
use crate::rules::rule;

impl Var {
    /// The `k` largest entries along `axis` (descending) and their u32 indices.
    pub fn topk(&self, k: usize, axis: impl Axis) -> Result<(Var, Tensor)> {
        let x = self.value();
        let axis = axis.resolve(x.rank(), "topk")?;
        let (values, indices) = x.topk(k, axis)?;
        let at = indices.clone();
        let var = Var::from_op(
            values,
            &[self],
            rule("topk", move |g: &Tensor| {
                Ok(vec![Some(x.zeros_like()?.to_dtype(g.dtype())?.scatter_add(&at, g, axis)?)])
            }),
        );
        Ok((var, indices))
    }
}
