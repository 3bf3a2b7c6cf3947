//! Launcher of top-k over the last axis. Exact (same order as the CPU, ties to the lower index).
//! k passes over each row: made for routers (k <= 8 of a few hundred experts) and small k.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Result, Src};

use super::{Elem, grid_1d, source};
use crate::backend::GpuBackend;
use crate::pipelines::{Access, KernelKey};

const BODY: &str = include_str!("topk.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    n: u32,
    k: u32,
    pad: u32,
}

/// Top-k over rows of one element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Kernel(Elem);

impl KernelKey for Kernel {
    fn name(&self) -> String {
        format!("topk/{}", self.0.wgsl())
    }

    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::ReadWrite, Access::ReadWrite]
    }

    fn source(&self) -> String {
        let (t, nan) = (self.0.wgsl(), self.0.nan_check());
        source(&format!("alias T = {t};\nfn nan_t(x: T) -> bool {{ return {nan}; }}"), BODY)
    }
}

pub fn topk(b: &GpuBackend, src: Src, k: usize) -> Result<(BufferRef, BufferRef)> {
    const OP: &str = "topk";
    let key = Kernel(Elem::of(OP, src.dtype)?);
    let n = src.layout.dims().last().copied().unwrap_or(1);
    let rows = src.layout.elem_count().checked_div(n).unwrap_or(0);
    let input = super::copy::contiguous(b, OP, src)?;
    let values = b.alloc(OP, rows * k, src.dtype)?;
    let indices = b.alloc(OP, rows * k, DType::U32)?;
    if rows > 0 && k > 0 {
        let kernel = b.kernel(&key)?;
        let params = Params { rows: rows as u32, n: n as u32, k: k as u32, pad: 0 };
        b.dispatch(OP, kernel, &params, &[&input.buffer, &values.buffer, &indices.buffer], grid_1d(rows))?;
    }
    Ok((Arc::new(values), Arc::new(indices)))
}
