//! Softmax and log-softmax with their derivatives:
//! softmax: `dx = y * (g - sum(g * y))`; log-softmax: `dx = g - exp(y) * sum(g)`, sums over the axis.

use tensor::{Axis, Result, Tensor};

use crate::Var;
use crate::rules::rule;

impl Var {
    pub fn softmax(&self, axis: impl Axis) -> Result<Var> {
        let axis = axis.resolve(self.rank(), "softmax")?;
        let y = self.value().softmax(axis)?;
        let saved = y.clone();
        Ok(Var::from_op(
            y,
            &[self],
            rule("softmax", move |g: &Tensor| {
                let dot = g.mul(&saved)?.sum(axis, true)?;
                Ok(vec![Some(saved.mul(&g.sub(&dot)?)?)])
            }),
        ))
    }

    pub fn log_softmax(&self, axis: impl Axis) -> Result<Var> {
        let axis = axis.resolve(self.rank(), "log_softmax")?;
        let y = self.value().log_softmax(axis)?;
        let saved = y.clone();
        Ok(Var::from_op(
            y,
            &[self],
            rule("log_softmax", move |g: &Tensor| Ok(vec![Some(g.sub(&saved.exp()?.mul(&g.sum(axis, true)?)?)?)])),
        ))
    }
}
