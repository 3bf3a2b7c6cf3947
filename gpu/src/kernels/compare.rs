//! Launchers of the comparisons (on the two-operand kernel of `binary.rs`) and of `where_cond`.
//! Exact.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::ops::CmpOp;
use tensor::{BufferRef, DType, Result, Src};

use super::binary::{TwoOperand, launch};
use super::{Elem, LayoutUniform, grid_1d, source};
use crate::backend::GpuBackend;
use crate::pipelines::{Access, KernelKey};

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

/// `where_cond` for one condition type `C` and one value type `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Where {
    cond: Elem,
    value: Elem,
}

impl KernelKey for Where {
    fn name(&self) -> String {
        format!("where/{}/{}", self.cond.wgsl(), self.value.wgsl())
    }

    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::Read, Access::Read, Access::ReadWrite]
    }

    fn source(&self) -> String {
        source(&format!("alias C = {};\nalias T = {};", self.cond.wgsl(), self.value.wgsl()), WHERE)
    }
}

/// The WGSL condition of a comparison of `x` and `y`.
pub(crate) fn condition(op: CmpOp) -> &'static str {
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
    launch(b, TwoOperand::Compare(op), lhs, rhs, DType::U32)
}

pub fn where_cond(b: &GpuBackend, cond: Src, on_true: Src, on_false: Src) -> Result<BufferRef> {
    const OP: &str = "where_cond";
    let key = Where { cond: Elem::of(OP, cond.dtype)?, value: Elem::of(OP, on_true.dtype)? };
    let n = cond.layout.elem_count();
    let out = b.alloc(OP, n, on_true.dtype)?;
    if n > 0 {
        let kernel = b.kernel(&key)?;
        let layouts = LayoutUniform::merged(OP, [cond.layout, on_true.layout, on_false.layout])?;
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
