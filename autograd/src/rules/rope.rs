//! The rotary embedding's derivative: the rotation back.

use tensor::{Result, Tensor};

use crate::Var;
use crate::rules::rule;

impl Var {
    /// Rotary embedding with constant `cos`/`sin` tables [T, D/2]. A rotation's adjoint is the
    /// rotation back: `dx = rope(g, cos, -sin)`.
    pub fn rope(&self, cos: &Tensor, sin: &Tensor, interleaved: bool) -> Result<Var> {
        let y = self.value().rope(cos, sin, interleaved)?;
        // -sin is formed in the backward pass only: inference never pays for it (on a GPU it
        // was a dispatch per rotation, two per layer of a decoding step).
        let (cos, sin) = (cos.clone(), sin.clone());
        let back = move |g: &Tensor| Ok(vec![Some(g.rope(&cos, &sin.neg()?, interleaved)?)]);
        Ok(Var::from_op(y, &[self], rule("rope", back)))
    }
}
