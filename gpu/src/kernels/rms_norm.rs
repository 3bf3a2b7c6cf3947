//! Launcher of the fused RMSNorm. Tolerance against the CPU ~1e-6 relative.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Result, RmsNormSpec, Src};

use super::copy::contiguous_f32;
use super::{groups_2d, source};
use crate::backend::GpuBackend;

const RMS_NORM: &str = include_str!("rms_norm.wgsl");

fixed_kernel!(RmsNorm, "rms_norm", [Read, Read, ReadWrite], source("", RMS_NORM));

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormParams {
    rows: u32,
    d: u32,
    eps: f32,
    mode: u32,
}

pub fn rms_norm(b: &GpuBackend, x: Src, weight: Option<Src>, spec: RmsNormSpec) -> Result<BufferRef> {
    const OP: &str = "rms_norm";
    let (xb, _kx) = contiguous_f32(b, OP, x)?;
    let (wb, _kw, mode) = match weight {
        Some(w) => {
            let (wb, kw) = contiguous_f32(b, OP, w)?;
            (wb, kw, if spec.add_unit_offset { 2 } else { 1 })
        }
        // Weightless: bind x again in the weight slot; the kernel never reads it.
        None => (xb.clone(), None, 0),
    };
    let n = x.layout.elem_count();
    let d = x.layout.dims().last().copied().unwrap_or(1);
    let out = b.alloc(OP, n, DType::F32)?;
    if n > 0 && d > 0 {
        let kernel = b.kernel(&RmsNorm)?;
        let params = NormParams { rows: (n / d) as u32, d: d as u32, eps: spec.eps as f32, mode };
        b.dispatch(OP, kernel, &params, &[&xb, &wb, &out.buffer], groups_2d(n / d))?;
    }
    Ok(Arc::new(out))
}
