//! `cat` and `stack`: the gradient is split back into the pieces' extents.

use tensor::{Axis, Error, Result, Tensor};

use crate::Var;
use crate::rules::rule;

impl Var {
    /// Joins values along `axis`.
    pub fn cat(vars: &[&Var], axis: impl Axis) -> Result<Var> {
        let first = vars.first().ok_or_else(|| Error::shape("cat", "needs at least one value"))?;
        let axis = axis.resolve(first.rank(), "cat")?;
        let values: Vec<Tensor> = vars.iter().map(|v| v.value()).collect();
        let sizes: Vec<usize> = values.iter().map(|t| t.dims()[axis]).collect();
        let y = Tensor::cat(&values.iter().collect::<Vec<_>>(), axis)?;
        Ok(Var::from_op(
            y,
            vars,
            rule("cat", move |g: &Tensor| Ok(g.split(&sizes, axis)?.into_iter().map(Some).collect())),
        ))
    }

    /// Joins same-shape values along a new axis.
    pub fn stack(vars: &[&Var], axis: impl Axis) -> Result<Var> {
        let first = vars.first().ok_or_else(|| Error::shape("stack", "needs at least one value"))?;
        let axis = axis.resolve(first.rank() + 1, "stack")?;
        let expanded = vars.iter().map(|v| v.unsqueeze(axis)).collect::<Result<Vec<_>>>()?;
        Var::cat(&expanded.iter().collect::<Vec<_>>(), axis)
    }
}
