//! Launchers of the fused RMSNorm and RoPE. Tolerance against the CPU ~1e-6 relative.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Error, Result, RmsNormSpec, Src};

use super::{grid_1d, groups_2d, source};
use crate::backend::GpuBackend;
use crate::pipelines::Access;

const RMS_NORM: &str = include_str!("rms_norm.wgsl");
const ROPE: &str = include_str!("rope.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormParams {
    rows: u32,
    d: u32,
    eps: f32,
    mode: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RopeParams {
    pairs: u32,
    d: u32,
    t: u32,
    interleaved: u32,
}

fn contiguous_buffer(
    b: &GpuBackend,
    op: &str,
    src: Src,
) -> Result<(Arc<wgpu::Buffer>, Option<crate::pool::GpuBuffer>)> {
    if src.dtype != DType::F32 {
        return Err(Error::unsupported_dtype(op, src.dtype));
    }
    if src.layout.is_contiguous() && src.layout.offset() == 0 {
        Ok((b.buffer(op, &src)?.buffer.clone(), None))
    } else {
        let c = super::copy::contiguous(b, op, src)?;
        Ok((c.buffer.clone(), Some(c)))
    }
}

pub fn rms_norm(b: &GpuBackend, x: Src, weight: Option<Src>, spec: RmsNormSpec) -> Result<BufferRef> {
    const OP: &str = "rms_norm";
    let (xb, _kx) = contiguous_buffer(b, OP, x)?;
    let (wb, _kw, mode) = match weight {
        Some(w) => {
            let (wb, kw) = contiguous_buffer(b, OP, w)?;
            (wb, kw, if spec.add_unit_offset { 2 } else { 1 })
        }
        // Weightless: bind x again in the weight slot; the kernel never reads it.
        None => (xb.clone(), None, 0),
    };
    let n = x.layout.elem_count();
    let d = x.layout.dims().last().copied().unwrap_or(1);
    let out = b.alloc(OP, n, DType::F32)?;
    if n > 0 && d > 0 {
        let kernel = b.kernel("rms_norm", &[Access::Read, Access::Read, Access::ReadWrite], || source("", RMS_NORM))?;
        let params = NormParams { rows: (n / d) as u32, d: d as u32, eps: spec.eps as f32, mode };
        b.dispatch(OP, kernel, &params, &[&xb, &wb, &out.buffer], groups_2d(n / d))?;
    }
    Ok(Arc::new(out))
}

pub fn rope(b: &GpuBackend, x: Src, cos: Src, sin: Src, interleaved: bool) -> Result<BufferRef> {
    const OP: &str = "rope";
    let (xb, _kx) = contiguous_buffer(b, OP, x)?;
    let (cb, _kc) = contiguous_buffer(b, OP, cos)?;
    let (sb, _ks) = contiguous_buffer(b, OP, sin)?;
    let r = x.layout.rank();
    let (t, d) = (x.layout.dims()[r - 2], x.layout.dims()[r - 1]);
    let n = x.layout.elem_count();
    let out = b.alloc(OP, n, DType::F32)?;
    let pairs = n / 2;
    if pairs > 0 {
        let kernel =
            b.kernel("rope", &[Access::Read, Access::Read, Access::Read, Access::ReadWrite], || source("", ROPE))?;
        let params = RopeParams { pairs: pairs as u32, d: d as u32, t: t as u32, interleaved: interleaved as u32 };
        b.dispatch(OP, kernel, &params, &[&xb, &cb, &sb, &out.buffer], grid_1d(pairs))?;
    }
    Ok(Arc::new(out))
}
