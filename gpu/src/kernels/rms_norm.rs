//! Launchers of the fused RMSNorm, and of RMSNorm followed by RoPE in one dispatch (per-head
//! QK-norm), also written straight into a KV cache's rows (`rope_into`). Tolerance against the
//! CPU ~1e-6 relative.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Layout, Result, RmsNormSpec, Src};

use super::copy::{contiguous_f32, contiguous_rows_f32};
use super::{groups_2d, source};
use crate::backend::GpuBackend;
use crate::pool::GpuBuffer;

const RMS_ROW: &str = include_str!("rms_row.wgsl");
const RMS_NORM: &str = include_str!("rms_norm.wgsl");

fixed_kernel!(RmsNorm, "rms_norm", [Read, Read, ReadWrite], source(RMS_ROW, RMS_NORM));

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormParams {
    rows: u32,
    d: u32,
    eps: f32,
    mode: u32,
}

/// The buffer bound as the norm's weight and the kernels' `mode`: the weight (1, or 2 for Gemma's
/// `1 + w`), or x again when there is none (mode 0; the kernel never reads it).
fn weight_binding(
    b: &GpuBackend,
    op: &str,
    x: &Arc<wgpu::Buffer>,
    weight: Option<Src>,
    spec: RmsNormSpec,
) -> Result<(Arc<wgpu::Buffer>, Option<crate::pool::GpuBuffer>, u32)> {
    Ok(match weight {
        Some(w) => {
            let (wb, kw) = contiguous_f32(b, op, w)?;
            (wb, kw, if spec.add_unit_offset { 2 } else { 1 })
        }
        None => (x.clone(), None, 0),
    })
}

/// `rms_norm.wgsl`'s parameters: the norm's, and where x's first row sits in its buffer.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RmsNormParams {
    norm: NormParams,
    x_offset: u32,
    pad: [u32; 3],
}

pub fn rms_norm(b: &GpuBackend, x: Src, weight: Option<Src>, spec: RmsNormSpec) -> Result<BufferRef> {
    const OP: &str = "rms_norm";
    let (xb, x_offset, _kx) = contiguous_rows_f32(b, OP, x)?;
    let (wb, _kw, mode) = weight_binding(b, OP, &xb, weight, spec)?;
    let n = x.layout.elem_count();
    let d = x.layout.dims().last().copied().unwrap_or(1);
    let out = b.alloc(OP, n, DType::F32)?;
    if n > 0 && d > 0 {
        let kernel = b.kernel(&RmsNorm)?;
        let norm = NormParams { rows: (n / d) as u32, d: d as u32, eps: spec.eps as f32, mode };
        let params = RmsNormParams { norm, x_offset, pad: [0; 3] };
        b.dispatch(OP, kernel, &params, &[&xb, &wb, &out.buffer], groups_2d(n / d))?;
    }
    Ok(Arc::new(out))
}

const RMS_NORM_ROPE: &str = include_str!("rms_norm_rope.wgsl");

fixed_kernel!(RmsNormRope, "rms_norm_rope", [Read, Read, Read, Read, ReadWrite], source(RMS_ROW, RMS_NORM_ROPE));

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormRopeParams {
    rows: u32,
    d: u32,
    eps: f32,
    mode: u32,
    t: u32,
    interleaved: u32,
    cos_offset: u32,
    sin_offset: u32,
    x_offset: u32,
    norm: u32,
    y_offset: u32,
    y_outer: u32,
}

/// `rope(rms_norm(x))` in one dispatch (per-head QK-norm then RoPE): x [.., T, D] contiguous f32,
/// cos and sin [T, D/2], each read from its offset. The normed row stays in registers; the arithmetic is that of the two
/// kernels in a row, so results match theirs to rounding.
pub fn rms_norm_rope(
    b: &GpuBackend,
    x: Src,
    weight: Option<Src>,
    spec: RmsNormSpec,
    rope: (Src, Src, bool),
) -> Result<BufferRef> {
    const OP: &str = "rms_norm_rope";
    let n = x.layout.elem_count();
    let out = b.alloc(OP, n, DType::F32)?;
    let (t, d) = rows_of(OP, x)?;
    let rows = Rows { buffer: &out.buffer, offset: 0, outer: t * d };
    norm_rope(b, OP, x, Some((weight, spec)), rope, rows)?;
    Ok(Arc::new(out))
}

/// `rope(x)` or, with `norm`, `rope(rms_norm(x))`, written into the view `dst` (a step's keys
/// into the rows of its KV cache: `Backend::rope_into`). The view's rows are contiguous, its
/// groups of T rows one stride apart (`tensor::ops::rope::uniform_row_groups`); anything else,
/// or a destination sharing x's buffer, is unsupported (the tensor layer then copies).
pub fn rope_into(
    b: &GpuBackend,
    x: Src,
    norm: Option<(Option<Src>, RmsNormSpec)>,
    rope: (Src, Src, bool),
    dst: &GpuBuffer,
    dst_layout: &Layout,
) -> Result<()> {
    const OP: &str = "rope_into";
    let outer = tensor::ops::rope::uniform_row_groups(dst_layout)
        .ok_or_else(|| tensor::Error::unsupported(OP, "a destination whose rows are not one stride apart"))?;
    // The tensor layer checked the dtypes (f32) and shapes; a backend call can still be wrong.
    if x.dtype != DType::F32 || dst_layout.dims() != x.layout.dims() {
        return Err(tensor::Error::unsupported(OP, "an f32 destination of x's shape"));
    }
    if Arc::ptr_eq(&dst.buffer, &b.buffer(OP, &x)?.buffer) {
        return Err(tensor::Error::unsupported(OP, "a destination in x's own buffer"));
    }
    let offset =
        u32::try_from(dst_layout.offset()).map_err(|_| tensor::Error::unsupported(OP, "an offset past 2^32"))?;
    norm_rope(b, OP, x, norm, rope, Rows { buffer: &dst.buffer, offset, outer })
}

/// Where `rms_norm_rope.wgsl` writes: row r at `offset + (r / T) * outer + (r % T) * D`.
struct Rows<'a> {
    buffer: &'a Arc<wgpu::Buffer>,
    offset: u32,
    outer: usize,
}

/// (T, D) of x [.., T, D] with an even D.
fn rows_of(op: &str, x: Src) -> Result<(usize, usize)> {
    let dims = x.layout.dims();
    if dims.len() < 2 || !dims[dims.len() - 1].is_multiple_of(2) {
        return Err(tensor::Error::shape(op, format!("needs x [.., T, D] with even D, got {dims:?}")));
    }
    Ok((dims[dims.len() - 2], dims[dims.len() - 1]))
}

/// One dispatch of `rms_norm_rope.wgsl`: the rotation of x's rows, after the norm when `norm` is
/// given, into `out`.
fn norm_rope(
    b: &GpuBackend,
    op: &str,
    x: Src,
    norm: Option<(Option<Src>, RmsNormSpec)>,
    (cos, sin, interleaved): (Src, Src, bool),
    out: Rows,
) -> Result<()> {
    let (t, d) = rows_of(op, x)?;
    let (xb, x_offset, _kx) = contiguous_rows_f32(b, op, x)?;
    let (cb, cos_offset, _kc) = contiguous_rows_f32(b, op, cos)?;
    let (sb, sin_offset, _ks) = contiguous_rows_f32(b, op, sin)?;
    let (weight, spec) = norm.unwrap_or((None, RmsNormSpec { eps: 0.0, add_unit_offset: false }));
    let (wb, _kw, mode) = weight_binding(b, op, &xb, weight, spec)?;
    let n = x.layout.elem_count();
    if n == 0 || t == 0 {
        return Ok(());
    }
    let too_far = |_| tensor::Error::unsupported(op, "a destination stride past 2^32 elements");
    let kernel = b.kernel(&RmsNormRope)?;
    let params = NormRopeParams {
        rows: (n / d) as u32,
        d: d as u32,
        eps: spec.eps as f32,
        mode,
        t: t as u32,
        interleaved: interleaved as u32,
        cos_offset,
        sin_offset,
        x_offset,
        norm: norm.is_some() as u32,
        y_offset: out.offset,
        y_outer: u32::try_from(out.outer).map_err(too_far)?,
    };
    b.dispatch(op, kernel, &params, &[&xb, &wb, &cb, &sb, out.buffer], groups_2d(n / d))
}

const ADD_RMS_NORM: &str = include_str!("add_rms_norm.wgsl");

fixed_kernel!(AddRmsNorm, "add_rms_norm", [Read, Read, Read, ReadWrite, ReadWrite], source(RMS_ROW, ADD_RMS_NORM));

/// `(x + r, rms_norm(x + r))` in one dispatch (a residual add and the norm after it): x and r
/// contiguous f32 of one shape. The sum is that of the add kernel, the norm that of
/// `rms_norm.wgsl` over it, so results match the two ops to rounding.
pub fn add_rms_norm(
    b: &GpuBackend,
    x: Src,
    r: Src,
    weight: Option<Src>,
    spec: RmsNormSpec,
) -> Result<(BufferRef, BufferRef)> {
    const OP: &str = "add_rms_norm";
    let (xb, _kx) = contiguous_f32(b, OP, x)?;
    let (rb, _kr) = contiguous_f32(b, OP, r)?;
    let (wb, _kw, mode) = weight_binding(b, OP, &xb, weight, spec)?;
    let n = x.layout.elem_count();
    let d = x.layout.dims().last().copied().unwrap_or(1);
    let (sum, out) = (b.alloc(OP, n, DType::F32)?, b.alloc(OP, n, DType::F32)?);
    if n > 0 && d > 0 {
        let kernel = b.kernel(&AddRmsNorm)?;
        let params = NormParams { rows: (n / d) as u32, d: d as u32, eps: spec.eps as f32, mode };
        b.dispatch(OP, kernel, &params, &[&xb, &rb, &wb, &sum.buffer, &out.buffer], groups_2d(n / d))?;
    }
    Ok((Arc::new(sum), Arc::new(out)))
}
