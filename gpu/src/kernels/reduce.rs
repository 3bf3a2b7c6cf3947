//! Launchers of the reductions (sum, max, min, argmax, argmin). Inputs are made
//! contiguous first. Tolerance against the CPU: exact for max/min/arg; sums differ in the order
//! of additions (tree vs 8 lanes), ~1e-6 relative.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::ops::ReduceOp;
use tensor::{BufferRef, DType, Result, Src};

use super::{Elem, grid_1d, groups_2d, source};
use crate::backend::GpuBackend;
use crate::pipelines::{Access, KernelKey};

const BODY: &str = include_str!("reduce.wgsl");
/// The WGSL twin of [`Params`], prepended to reduce.wgsl and cumsum.wgsl.
pub(crate) const PARAMS: &str = include_str!("axis_params.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct Params {
    pub outer: u32,
    pub k: u32,
    pub inner: u32,
    pub pad: u32,
}

/// A reduction over `k` of [outer, k, inner], for one op and element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Kernel {
    op: ReduceOp,
    elem: Elem,
}

impl KernelKey for Kernel {
    fn name(&self) -> String {
        format!("reduce/{}/{}", self.op.name(), self.elem.wgsl())
    }

    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::ReadWrite]
    }

    fn source(&self) -> String {
        let t = self.elem.wgsl();
        let (lowest, highest) = match self.elem {
            Elem::F32 => ("bitcast<f32>(0xff800000u)", "bitcast<f32>(0x7f800000u)"),
            Elem::U32 => ("0u", "0xffffffffu"),
        };
        let nan_check = self.elem.nan_check();
        let r = if self.op.is_arg() { "u32" } else { t };
        let (sum, arg, identity, cmp) = match self.op {
            ReduceOp::Sum => (true, false, "T(0)", ">"),
            ReduceOp::Max => (false, false, lowest, ">"),
            ReduceOp::ArgMax => (false, true, lowest, ">"),
            ReduceOp::Min => (false, false, highest, "<"),
            ReduceOp::ArgMin => (false, true, highest, "<"),
        };
        let generated = format!(
            "alias T = {t};\nalias R = {r};\nconst SUM: bool = {sum};\nconst ARG: bool = {arg};\n\
             fn identity() -> T {{ return {identity}; }}\n\
             fn nan_t(x: T) -> bool {{ return {nan_check}; }}\n\
             fn better(a: T, ai: u32, b: T, bi: u32) -> bool {{\n\
                 if (nan_t(a)) {{ return nan_t(b) && bi < ai; }}\n\
                 if (nan_t(b)) {{ return true; }}\n\
                 if (b {cmp} a) {{ return true; }}\n\
                 return b == a && bi < ai;\n\
             }}"
        );
        source(&format!("{PARAMS}\n{generated}"), BODY)
    }
}

/// The tensor as a contiguous [outer, k, inner] buffer around `axis`.
pub(crate) fn around_axis(
    b: &GpuBackend,
    op: &str,
    src: Src,
    axis: usize,
) -> Result<(Arc<wgpu::Buffer>, Option<crate::pool::GpuBuffer>, [usize; 3])> {
    let dims = src.layout.dims();
    let shape = [dims[..axis].iter().product(), dims[axis], dims[axis + 1..].iter().product()];
    if src.layout.is_contiguous() && src.layout.offset() == 0 {
        Ok((b.buffer(op, &src)?.buffer.clone(), None, shape))
    } else {
        let c = super::copy::contiguous(b, op, src)?;
        Ok((c.buffer.clone(), Some(c), shape))
    }
}

pub fn reduce(b: &GpuBackend, op: ReduceOp, src: Src, axis: usize) -> Result<BufferRef> {
    let key = Kernel { op, elem: Elem::of(op.name(), src.dtype)? };
    let (input, _keep, [outer, k, inner]) = around_axis(b, op.name(), src, axis)?;
    let out_dtype = if op.is_arg() { DType::U32 } else { src.dtype };
    let out = b.alloc(op.name(), outer * inner, out_dtype)?;
    if outer * inner > 0 {
        let kernel = b.kernel(&key)?;
        let groups = if inner == 1 { groups_2d(outer) } else { grid_1d(outer * inner) };
        let params = Params { outer: outer as u32, k: k as u32, inner: inner as u32, pad: 0 };
        b.dispatch(op.name(), kernel, &params, &[&input, &out.buffer], groups)?;
    }
    Ok(Arc::new(out))
}
