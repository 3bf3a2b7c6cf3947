//! Launcher of softmax and log-softmax over the last axis. Tolerance against the CPU ~1e-6
//! relative (the sum's order of additions differs).

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Error, Result, Src};

use super::{groups_2d, source};
use crate::backend::GpuBackend;

const BODY: &str = include_str!("softmax.wgsl");

fixed_kernel!(Softmax, "softmax", [Read, ReadWrite], source("", BODY));

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    d: u32,
    log: u32,
    pad: u32,
}

pub fn softmax(b: &GpuBackend, src: Src, log: bool) -> Result<BufferRef> {
    const OP: &str = "softmax";
    if src.dtype != DType::F32 {
        return Err(Error::unsupported_dtype(OP, src.dtype));
    }
    let n = src.layout.elem_count();
    let d = src.layout.dims().last().copied().unwrap_or(1);
    let input = if src.layout.is_contiguous() && src.layout.offset() == 0 {
        None
    } else {
        Some(super::copy::contiguous(b, OP, src)?)
    };
    let input_buffer = match &input {
        Some(c) => c.buffer.clone(),
        None => b.buffer(OP, &src)?.buffer.clone(),
    };
    let out = b.alloc(OP, n, DType::F32)?;
    if n > 0 && d > 0 {
        let rows = n / d;
        let kernel = b.kernel(&Softmax)?;
        let params = Params { rows: rows as u32, d: d as u32, log: log as u32, pad: 0 };
        b.dispatch(OP, kernel, &params, &[&input_buffer, &out.buffer], groups_2d(rows))?;
    }
    Ok(Arc::new(out))
}
