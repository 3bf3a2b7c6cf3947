//! Reductions and their derivatives: a sum spreads its gradient back over the reduced axis; a
//! max or min sends it to the entry the forward picked (the first on ties, as argmax).

use tensor::ops::ReduceOp;
use tensor::{Axis, Result, Shape, Tensor};

use crate::Var;
use crate::rules::rule;

/// Gives a reduced gradient back the reduced axis (extent 1), so it broadcasts over the input.
fn keep_axis(g: &Tensor, axis: usize, keepdim: bool) -> Result<Tensor> {
    if keepdim { Ok(g.clone()) } else { g.unsqueeze(axis) }
}

impl Var {
    /// Sum over `axis`.
    pub fn sum(&self, axis: impl Axis, keepdim: bool) -> Result<Var> {
        let x = self.value();
        let axis = axis.resolve(x.rank(), "sum")?;
        let shape: Shape = x.shape().clone();
        let y = x.sum(axis, keepdim)?;
        Ok(Var::from_op(
            y,
            &[self],
            rule("sum", move |g: &Tensor| {
                Ok(vec![Some(keep_axis(g, axis, keepdim)?.broadcast_to(&shape)?.contiguous()?)])
            }),
        ))
    }

    /// Mean over `axis`.
    pub fn mean(&self, axis: impl Axis, keepdim: bool) -> Result<Var> {
        let axis = axis.resolve(self.rank(), "mean")?;
        let n = self.dims()[axis];
        self.sum(axis, keepdim)?.mul_scalar(1.0 / n as f64)
    }

    /// Sum of every element (a 0-d value).
    pub fn sum_all(&self) -> Result<Var> {
        self.flatten_all()?.sum(0usize, false)
    }

    /// Mean of every element (a 0-d value).
    pub fn mean_all(&self) -> Result<Var> {
        let n = self.elem_count();
        self.sum_all()?.mul_scalar(1.0 / n as f64)
    }

    /// Max over `axis`; the gradient flows to the first maximal entry.
    pub fn max(&self, axis: impl Axis, keepdim: bool) -> Result<Var> {
        self.extremum(ReduceOp::Max, axis, keepdim)
    }

    /// Min over `axis`; the gradient flows to the first minimal entry.
    pub fn min(&self, axis: impl Axis, keepdim: bool) -> Result<Var> {
        self.extremum(ReduceOp::Min, axis, keepdim)
    }

    fn extremum(&self, op: ReduceOp, axis: impl Axis, keepdim: bool) -> Result<Var> {
        let x = self.value();
        let axis = axis.resolve(x.rank(), op.name())?;
        let arg = if op == ReduceOp::Max { ReduceOp::ArgMax } else { ReduceOp::ArgMin };
        let at = x.reduce(arg, axis, true)?; // where the gradient goes, (.., 1, ..)
        let y = x.reduce(op, axis, keepdim)?;
        Ok(Var::from_op(
            y,
            &[self],
            rule(op.name(), move |g: &Tensor| {
                let g = keep_axis(g, axis, keepdim)?;
                Ok(vec![Some(x.zeros_like()?.scatter_add(&at, &g, axis)?)])
            }),
        ))
    }
}
