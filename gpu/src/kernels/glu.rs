//! Launcher of the fused gated linear unit, on the two-operand kernel of `binary.rs`.
//! Tolerance against the CPU ~1e-6 relative.

use tensor::{BufferRef, DType, Error, GluActivation, Result, Src};

use super::binary::{TwoOperand, launch};
use crate::backend::GpuBackend;

/// The activation's name in the kernel's name.
pub(crate) fn name(act: GluActivation) -> &'static str {
    match act {
        GluActivation::Silu => "silu",
        GluActivation::GeluTanh => "gelu_tanh",
    }
}

/// `op(x, y)` of the fused unit: the activation of the gate `x` times `y`.
pub(crate) fn expression(act: GluActivation) -> &'static str {
    match act {
        GluActivation::Silu => "x * sigmoid(x) * y",
        GluActivation::GeluTanh => "gelu_tanh(x) * y",
    }
}

/// The fused gated unit `act(gate) * up`.
pub fn glu(b: &GpuBackend, gate: Src, up: Src, act: GluActivation) -> Result<BufferRef> {
    if gate.dtype != DType::F32 {
        return Err(Error::unsupported_dtype("glu", gate.dtype));
    }
    launch(b, TwoOperand::Glu(act), gate, up, DType::F32)
}
