//! Launcher of the binary ops, and the two-operand kernel they share with comparisons
//! (`compare.rs`) and the fused gated unit (`glu.rs`): the op is a generated WGSL function `op(x, y)` over element type `T`
//! giving `R`. Each `match` covers every variant of its table. Tolerance against the CPU: exact
//! for + - * and comparisons, ~1 ulp for division, ~1e-6 relative for pow and the activations.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::ops::BinaryOp;
use tensor::{BufferRef, DType, Error, Result, Src};

use super::{LayoutUniform, grid_1d, source};
use crate::backend::GpuBackend;
use crate::pipelines::Access;

const BODY: &str = include_str!("binary.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    pad: [u32; 3],
    a: LayoutUniform,
    b: LayoutUniform,
}

fn float_expression(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "x + y",
        BinaryOp::Sub => "x - y",
        BinaryOp::Mul => "x * y",
        BinaryOp::Div => "x / y",
        BinaryOp::Pow => "powf(x, y)",
        BinaryOp::Maximum => "select(x, y, y > x)",
        BinaryOp::Minimum => "select(x, y, y < x)",
    }
}

fn int_expression(op: BinaryOp) -> Option<&'static str> {
    Some(match op {
        BinaryOp::Add => "x + y",
        BinaryOp::Sub => "x - y",
        BinaryOp::Mul => "x * y",
        // Division by zero gives 0, as on the CPU.
        BinaryOp::Div => "select(x / max(y, 1u), 0u, y == 0u)",
        BinaryOp::Maximum => "max(x, y)",
        BinaryOp::Minimum => "min(x, y)",
        BinaryOp::Pow => return None,
    })
}

pub(crate) fn wgsl_type(dtype: DType) -> Option<&'static str> {
    match dtype {
        DType::F32 => Some("f32"),
        DType::U32 => Some("u32"),
        _ => None,
    }
}

/// Runs the generated two-operand kernel `key` with body `op(x: T, y: T) -> R { return expr; }`.
pub(crate) fn launch(
    b: &GpuBackend,
    name: &str,
    key: String,
    generated: String,
    lhs: Src,
    rhs: Src,
    out_dtype: DType,
) -> Result<BufferRef> {
    let n = lhs.layout.elem_count();
    let out = b.alloc(name, n, out_dtype)?;
    if n > 0 {
        let kernel = b.kernel(&key, &[Access::Read, Access::Read, Access::ReadWrite], || source(&generated, BODY))?;
        let layouts = LayoutUniform::merged(name, &[lhs.layout, rhs.layout])?;
        let params = Params { n: n as u32, pad: [0; 3], a: layouts[0], b: layouts[1] };
        b.dispatch(
            name,
            kernel,
            &params,
            &[&b.buffer(name, &lhs)?.buffer, &b.buffer(name, &rhs)?.buffer, &out.buffer],
            grid_1d(n),
        )?;
    }
    Ok(Arc::new(out))
}

pub fn binary(b: &GpuBackend, op: BinaryOp, lhs: Src, rhs: Src) -> Result<BufferRef> {
    let t = wgsl_type(lhs.dtype).ok_or_else(|| Error::unsupported_dtype(op.name(), lhs.dtype))?;
    let expr = if lhs.dtype == DType::F32 {
        float_expression(op)
    } else {
        int_expression(op).ok_or_else(|| Error::dtype(op.name(), format!("not defined for {}", lhs.dtype)))?
    };
    let generated =
        format!("{}\nalias T = {t};\nalias R = {t};\nfn op(x: T, y: T) -> R {{ return {expr}; }}", super::unary::MATH);
    launch(b, op.name(), format!("binary/{}/{t}", op.name()), generated, lhs, rhs, lhs.dtype)
}
