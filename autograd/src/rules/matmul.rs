//! Matmul's derivative: for `y = a @ b`, `da = g @ b^T` and `db = a^T @ g`, each summed over
//! the batch dims it was broadcast along; and the mixture-of-experts matmul's.

use tensor::{DType, Result, Tensor};

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

    /// Row `r` of `self` [R, K] times expert `ids[r]`'s weight from `weights` [E, K, N].
    /// `dx = expert_matmul(g, weights^T)`; each expert's weight gradient is `x_e^T g_e` over
    /// the rows routed to it.
    pub fn expert_matmul(&self, weights: &Var, ids: &Tensor) -> Result<Var> {
        let (x, w) = (self.value(), weights.value());
        let y = x.expert_matmul(&w, ids)?;
        let ids = ids.clone();
        Ok(Var::from_op(
            y,
            &[self, weights],
            rule("expert_matmul", move |g: &Tensor| {
                let dx = g.expert_matmul(&w.transpose(1, 2)?.to_dtype(g.dtype())?, &ids)?;
                let (e, k, n) = (w.dims()[0], w.dims()[1], w.dims()[2]);
                let routed: Vec<u32> = ids.to_dtype(DType::U32)?.to_vec()?;
                let mut per_expert = Vec::with_capacity(e);
                for expert in 0..e as u32 {
                    let rows: Vec<u32> =
                        routed.iter().enumerate().filter(|(_, r)| **r == expert).map(|(i, _)| i as u32).collect();
                    per_expert.push(if rows.is_empty() {
                        Tensor::zeros([k, n], g.dtype(), g.device())?
                    } else {
                        let count = rows.len();
                        let rows = Tensor::from_vec(rows, [count], g.device())?;
                        x.index_select(&rows, 0usize)?.t()?.matmul(&g.index_select(&rows, 0usize)?)?
                    });
                }
                let dw = Tensor::stack(&per_expert.iter().collect::<Vec<_>>(), 0usize)?.to_dtype(w.dtype())?;
                Ok(vec![Some(dx), Some(dw)])
            }),
        ))
    }
}
