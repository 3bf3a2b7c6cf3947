//! The op tables: what each op means, and the `Tensor` methods that check operands and call
//! the device's backend. One file per op family; the CPU kernels in `cpu/`, the GPU kernels in
//! the gpu crate and the derivatives in autograd's `rules/` carry the same family names (a test,
//! `tests/op_families.rs`, compares the listings). The fused families (rms_norm, rope, glu,
//! attention) each keep a composite of primitive ops as their definition and fallback.

pub mod attention;
pub mod binary;
pub mod compare;
pub mod concat;
pub mod cumsum;
pub mod glu;
pub mod index;
pub mod matmul;
pub mod reduce;
pub mod rms_norm;
pub mod rope;
pub mod softmax;
pub mod topk;
pub mod unary;

pub use binary::BinaryOp;
pub use compare::CmpOp;
pub use reduce::ReduceOp;
pub use unary::UnaryOp;

use crate::{DType, Error, Result, Tensor};

impl Tensor {
    /// Runs a backend's fused op, falling back to the composite when the backend says it has none.
    pub(crate) fn fused_or(
        fused: impl FnOnce() -> Result<Tensor>,
        composite: impl FnOnce() -> Result<Tensor>,
    ) -> Result<Tensor> {
        match fused() {
            Err(e) if e.is_unsupported() => composite(),
            other => other,
        }
    }

    /// Runs a float op. f32 and f64 compute as they are; bf16/f16 are storage types, computed in
    /// f32 and cast back; integer tensors are refused with an error naming the op.
    pub(crate) fn float_op(&self, op: &str, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        match self.dtype() {
            DType::F32 | DType::F64 => f(self),
            DType::BF16 | DType::F16 => f(&self.to_dtype(DType::F32)?)?.to_dtype(self.dtype()),
            DType::U32 | DType::I64 => Err(Error::dtype(op, format!("needs a float tensor, got {}", self.dtype()))),
        }
    }
}
