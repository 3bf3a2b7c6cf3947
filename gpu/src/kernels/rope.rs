//! Launcher of the fused rotary embedding. Tolerance against the CPU ~1e-6 relative.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Result, Src};

use super::copy::contiguous_rows_f32;
use super::{grid_1d, source};
use crate::backend::GpuBackend;

const ROPE: &str = include_str!("rope.wgsl");

fixed_kernel!(Rope, "rope", [Read, Read, Read, ReadWrite], source("", ROPE));

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RopeParams {
    pairs: u32,
    d: u32,
    t: u32,
    interleaved: u32,
    cos_offset: u32,
    sin_offset: u32,
    x_offset: u32,
    pad: u32,
}

pub fn rope(b: &GpuBackend, x: Src, cos: Src, sin: Src, interleaved: bool) -> Result<BufferRef> {
    const OP: &str = "rope";
    let (xb, x_offset, _kx) = contiguous_rows_f32(b, OP, x)?;
    let (cb, cos_offset, _kc) = contiguous_rows_f32(b, OP, cos)?;
    let (sb, sin_offset, _ks) = contiguous_rows_f32(b, OP, sin)?;
    let r = x.layout.rank();
    let (t, d) = (x.layout.dims()[r - 2], x.layout.dims()[r - 1]);
    let n = x.layout.elem_count();
    let out = b.alloc(OP, n, DType::F32)?;
    let pairs = n / 2;
    if pairs > 0 {
        let kernel = b.kernel(&Rope)?;
        let params = RopeParams {
            pairs: pairs as u32,
            d: d as u32,
            t: t as u32,
            interleaved: interleaved as u32,
            cos_offset,
            sin_offset,
            x_offset,
            pad: 0,
        };
        b.dispatch(OP, kernel, &params, &[&xb, &cb, &sb, &out.buffer], grid_1d(pairs))?;
    }
    Ok(Arc::new(out))
}
