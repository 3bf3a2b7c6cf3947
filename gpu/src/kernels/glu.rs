//! Launcher of the fused gated linear unit, on the two-operand kernel of `binary.rs`.
//! Tolerance against the CPU ~1e-6 relative.

use tensor::{BufferRef, DType, Error, GluActivation, Result, Src};

use super::binary::launch;
use crate::backend::GpuBackend;

/// The fused gated unit `act(gate) * up`.
pub fn glu(b: &GpuBackend, gate: Src, up: Src, act: GluActivation) -> Result<BufferRef> {
    if gate.dtype != DType::F32 {
        return Err(Error::unsupported_dtype("glu", gate.dtype));
    }
    let (name, expr) = match act {
        GluActivation::Silu => ("silu", "x * sigmoid(x) * y"),
        GluActivation::GeluTanh => ("gelu_tanh", "gelu_tanh(x) * y"),
    };
    let generated =
        format!("{}\nalias T = f32;\nalias R = f32;\nfn op(x: T, y: T) -> R {{ return {expr}; }}", super::unary::MATH);
    launch(b, "glu", format!("glu/{name}"), generated, gate, up, DType::F32)
}
