//! The gated linear unit's derivative (the forward is the device's fused kernel).

use tensor::ops::UnaryOp;
use tensor::{GluActivation, Result, Tensor};

use crate::Var;
use crate::rules::rule;
use crate::rules::unary::derivative;

impl Var {
    /// Gated linear unit `act(self) * up`: `d up = g act(gate)`, `d gate = g up act'(gate)`.
    pub fn glu(&self, up: &Var, act: GluActivation) -> Result<Var> {
        let (gate, u) = (self.value(), up.value());
        let y = gate.glu(&u, act)?;
        let op = match act {
            GluActivation::Silu => UnaryOp::Silu,
            GluActivation::GeluTanh => UnaryOp::GeluTanh,
        };
        Ok(Var::from_op(
            y,
            &[self, up],
            rule("glu", move |g: &Tensor| {
                let a = gate.unary(op)?;
                Ok(vec![Some(g.mul(&u)?.mul(&derivative(op, &gate, &a)?)?), Some(g.mul(&a)?)])
            }),
        ))
    }
}
