//! Matmul's derivative: for `y = a @ b`, `da = g @ b^T` and `db = a^T @ g`, each summed over
//! the batch dims it was broadcast along.

use tensor::{Result, Tensor};

use crate::Var;
use crate::rules::rule;

impl Var {
    /// Batched matmul with broadcasting of batch dims.
    pub fn matmul(&self, rhs: &Var) -> Result<Var> {
        let (a, b) = (self.value(), rhs.value());
        let y = a.matmul(&b)?;
        Ok(Var::from_op(
            y,
            &[self, rhs],
            rule("matmul", move |g: &Tensor| {
                let ga = g.matmul(&b.t()?.to_dtype(g.dtype())?)?.sum_to_shape(a.shape())?;
                let gb = a.t()?.matmul(g)?.sum_to_shape(b.shape())?.to_dtype(b.dtype())?;
                Ok(vec![Some(ga), Some(gb)])
            }),
        ))
    }

    /// `x @ w^T` with `w` stored [out, in] as Hugging Face Linear weights are.
    pub fn linear(&self, weight: &Var) -> Result<Var> {
        self.matmul(&weight.t()?)
    }
}
