//! Launchers of the comparisons (on the two-operand kernel of `binary.rs`) and of `where_cond`.
//! Exact.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::ops::CmpOp;
use tensor::{BufferRef, DType, Error, Result, Src};

use super::binary::launch;
use super::{LayoutUniform, grid_1d, source};
use crate::backend::GpuBackend;
use crate::pipelines::Access;

const WHERE: &str = include_str!("where_cond.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    pad: [u32; 3],
    cond: LayoutUniform,
    a: LayoutUniform,
    b: LayoutUniform,
}

fn where_type(dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok("f32"),
        DType::U32 => Ok("u32"),
        other => Err(Error::unsupported_dtype("where_cond", other)),
    }
}

fn compare_expression(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "x == y",
        CmpOp::Ne => "x != y",
        CmpOp::Lt => "x < y",
        CmpOp::Le => "x <= y",
        CmpOp::Gt => "x > y",
        CmpOp::Ge => "x >= y",
    }
}

pub fn compare(b: &GpuBackend, op: CmpOp, lhs: Src, rhs: Src) -> Result<BufferRef> {
    let t = super::binary::wgsl_type(lhs.dtype).ok_or_else(|| Error::unsupported_dtype(op.name(), lhs.dtype))?;
    let generated = format!(
        "alias T = {t};\nalias R = u32;\nfn op(x: T, y: T) -> R {{ return select(0u, 1u, {}); }}",
        compare_expression(op)
    );
    launch(b, op.name(), format!("compare/{}/{t}", op.name()), generated, lhs, rhs, DType::U32)
}

pub fn where_cond(b: &GpuBackend, cond: Src, on_true: Src, on_false: Src) -> Result<BufferRef> {
    const OP: &str = "where_cond";
    let (c, t) = (where_type(cond.dtype)?, where_type(on_true.dtype)?);
    let n = cond.layout.elem_count();
    let out = b.alloc(OP, n, on_true.dtype)?;
    if n > 0 {
        let kernel = b.kernel(
            &format!("where/{c}/{t}"),
            &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
            || source(&format!("alias C = {c};\nalias T = {t};"), WHERE),
        )?;
        let layouts = LayoutUniform::merged(OP, &[cond.layout, on_true.layout, on_false.layout])?;
        let params = Params { n: n as u32, pad: [0; 3], cond: layouts[0], a: layouts[1], b: layouts[2] };
        let buffers = [
            &b.buffer(OP, &cond)?.buffer,
            &b.buffer(OP, &on_true)?.buffer,
            &b.buffer(OP, &on_false)?.buffer,
            &out.buffer,
        ];
        b.dispatch(OP, kernel, &params, &buffers, grid_1d(n))?;
    }
    Ok(Arc::new(out))
}
