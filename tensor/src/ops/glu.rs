//! Gated linear units (SwiGLU, GeGLU), a fused op: the backend's kernel, with `glu_composite`
//! from primitive ops as the readable definition, the test oracle and the fallback.

use crate::backend::GluActivation;
use crate::{DType, Error, Result, Tensor};

impl Tensor {
    /// Gated linear unit `act(self) * up` (Shazeer 2020): SwiGLU with `Silu`, GeGLU with `GeluTanh`.
    pub fn glu(&self, up: &Tensor, act: GluActivation) -> Result<Tensor> {
        const OP: &str = "glu";
        self.check_same_device(OP, up)?;
        self.check_same_dtype(OP, up)?;
        if self.shape() != up.shape() {
            return Err(Error::shape(OP, format!("gate {:?} and up {:?} differ", self.shape(), up.shape())));
        }
        let up = up.to_dtype(if self.dtype().is_half() { DType::F32 } else { up.dtype() })?;
        self.float_op(OP, |gate| {
            Tensor::fused_or(
                || {
                    let buffer = gate.device().backend().glu(gate.src(), up.src(), act)?;
                    Ok(gate.new_like(buffer, gate.shape().clone(), gate.dtype()))
                },
                || gate.glu_composite(&up, act),
            )
        })
    }

    /// The gated linear unit from primitives.
    pub fn glu_composite(&self, up: &Tensor, act: GluActivation) -> Result<Tensor> {
        let gated = match act {
            GluActivation::Silu => self.silu()?,
            GluActivation::GeluTanh => self.gelu_tanh()?,
        };
        gated.mul(up)
    }
}
