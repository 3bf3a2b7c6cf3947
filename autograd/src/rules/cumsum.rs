//! Prefix sums: the gradient of an inclusive cumsum is the reversed cumsum of the gradient,
//! `dx_i = sum_{j >= i} g_j = total - cumsum(g)_i + g_i`.

use tensor::{Axis, Result, Tensor};

use crate::Var;
use crate::rules::rule;

impl Var {
    pub fn cumsum(&self, axis: impl Axis) -> Result<Var> {
        let axis = axis.resolve(self.rank(), "cumsum")?;
        let y = self.value().cumsum(axis)?;
        Ok(Var::from_op(
            y,
            &[self],
            rule("cumsum", move |g: &Tensor| Ok(vec![Some(g.sum(axis, true)?.sub(&g.cumsum(axis)?)?.add(g)?)])),
        ))
    }
}
