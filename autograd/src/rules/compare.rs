//! `where_cond`: the mask is data; each branch gets the gradient where it was picked.

use tensor::{Result, Tensor};

use crate::Var;
use crate::rules::rule;

impl Var {
    /// `mask != 0 ? on_true : on_false`, broadcasting all three.
    pub fn where_cond(mask: &Tensor, on_true: &Var, on_false: &Var) -> Result<Var> {
        let (t, f) = (on_true.value(), on_false.value());
        let y = mask.where_cond(&t, &f)?;
        let mask = mask.clone();
        let (ts, fs) = (t.shape().clone(), f.shape().clone());
        Ok(Var::from_op(
            y,
            &[on_true, on_false],
            rule("where_cond", move |g: &Tensor| {
                let zero = Tensor::zeros((), g.dtype(), g.device())?;
                Ok(vec![
                    Some(mask.where_cond(g, &zero)?.sum_to_shape(&ts)?),
                    Some(mask.where_cond(&zero, g)?.sum_to_shape(&fs)?),
                ])
            }),
        ))
    }

    /// Replaces entries where `mask` is set by a constant (e.g. -inf before a softmax).
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Result<Var> {
        let fill = Var::constant(Tensor::full(value, (), self.dtype(), &self.device())?);
        Var::where_cond(mask, &fill, self)
    }
}
