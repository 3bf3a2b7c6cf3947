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

fixed_kernel!(
    RmsNormRope,
    "rms_norm_rope",
    [Read, Read, Read, Read, ReadWrite, Read, ReadWrite],
    source(RMS_ROW, RMS_NORM_ROPE)
);

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
    norm: u32,
    v_rows: u32,
    v_d: u32,
    pad: u32,
    x_at: Placed,
    y_at: Placed,
    v_at: Placed,
    vy_at: Placed,
}

/// Where an operand's rows sit in its buffer: row (o, p), o counting heads and sequences and p
/// positions, starts at element `offset + o * outer + p * row` (`rms_norm_rope.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Placed {
    offset: u32,
    outer: u32,
    row: u32,
    pad: u32,
}

impl Placed {
    /// Rows laid out one after another from the buffer's start.
    fn contiguous(t: usize, d: usize) -> Placed {
        Placed { offset: 0, outer: (t * d) as u32, row: d as u32, pad: 0 }
    }

    /// The rows of a view, if its layout has that form (`tensor::ops::rope::row_groups`) and its
    /// offsets fit 32 bits.
    fn of(layout: &Layout) -> Option<Placed> {
        let groups = tensor::ops::rope::row_groups(layout)?;
        let fit = |v: usize| u32::try_from(v).ok();
        Some(Placed { offset: fit(layout.offset())?, outer: fit(groups.outer)?, row: fit(groups.row)?, pad: 0 })
    }
}

/// An f32 operand's buffer and placement: its own buffer when its rows have a [`Placed`] form,
/// else a contiguous copy (returned too, to keep it alive).
fn placed_f32(b: &GpuBackend, op: &str, src: Src) -> Result<(Arc<wgpu::Buffer>, Placed, Option<GpuBuffer>)> {
    if let Some(at) = Placed::of(src.layout).filter(|_| src.dtype == DType::F32) {
        return Ok((b.buffer(op, &src)?.buffer.clone(), at, None));
    }
    let dims = src.layout.dims();
    let (t, d) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let (buffer, kept) = contiguous_f32(b, op, src)?;
    Ok((buffer, Placed::contiguous(t, d), kept))
}

/// `rope(rms_norm(x))` in one dispatch (per-head QK-norm then RoPE): x [.., T, D] f32 (rows of
/// any view, read in place where they are one stride apart), cos and sin [T, D/2], each read from
/// its offset. The normed row stays in registers; the arithmetic is that of the two kernels in a
/// row, so results match theirs to rounding.
pub fn rms_norm_rope(
    b: &GpuBackend,
    x: Src,
    weight: Option<Src>,
    spec: RmsNormSpec,
    rope: (Src, Src, bool),
) -> Result<BufferRef> {
    const OP: &str = "rms_norm_rope";
    let (t, d) = rows_of(OP, x)?;
    let out = b.alloc(OP, x.layout.elem_count(), DType::F32)?;
    let y = (&out.buffer, Placed::contiguous(t, d));
    norm_rope(b, OP, x, Some((weight, spec)), rope, y, None)?;
    Ok(Arc::new(out))
}

/// `rope(x)` or, with `norm`, `rope(rms_norm(x))`, written into the view `dst`, and `values`
/// copied into theirs in the same dispatch: a step's keys and values into the rows of its KV
/// cache (`Backend::rope_into`). Destinations whose rows are not one stride apart
/// (`tensor::ops::rope::row_groups`), or that share a buffer with an operand read, are
/// unsupported (the tensor layer then runs the op and copies).
pub fn rope_into(
    b: &GpuBackend,
    x: Src,
    norm: Option<(Option<Src>, RmsNormSpec)>,
    rope: (Src, Src, bool),
    (dst, dst_layout): (&GpuBuffer, &Layout),
    values: Option<(Src, &GpuBuffer, &Layout)>,
) -> Result<()> {
    const OP: &str = "rope_into";
    let unsupported = |what: &str| tensor::Error::unsupported(OP, what.to_string());
    // The tensor layer checked dtypes (f32) and shapes; a backend call can still be wrong.
    if x.dtype != DType::F32 || dst_layout.dims() != x.layout.dims() {
        return Err(unsupported("an f32 destination of x's shape"));
    }
    let y_at =
        Placed::of(dst_layout).ok_or_else(|| unsupported("a destination whose rows are not one stride apart"))?;
    let values = match values {
        None => None,
        Some((v, vy, vy_layout)) => {
            let rows = |dims: &[usize]| dims[..dims.len() - 1].to_vec();
            if v.dtype != DType::F32
                || vy_layout.dims() != v.layout.dims()
                || rows(v.layout.dims()) != rows(x.layout.dims())
            {
                return Err(unsupported("f32 values with a row for each of x's, and a destination of their shape"));
            }
            let at = Placed::of(vy_layout).ok_or_else(|| unsupported("values' rows not one stride apart"))?;
            Some((v, (&vy.buffer, at)))
        }
    };
    norm_rope(b, OP, x, norm, rope, (&dst.buffer, y_at), values)
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
/// given, into `y`; and `values`' rows copied into theirs.
fn norm_rope(
    b: &GpuBackend,
    op: &str,
    x: Src,
    norm: Option<(Option<Src>, RmsNormSpec)>,
    (cos, sin, interleaved): (Src, Src, bool),
    y: (&Arc<wgpu::Buffer>, Placed),
    values: Option<(Src, (&Arc<wgpu::Buffer>, Placed))>,
) -> Result<()> {
    let (t, d) = rows_of(op, x)?;
    let (xb, x_at, _kx) = placed_f32(b, op, x)?;
    let (cb, cos_offset, _kc) = contiguous_rows_f32(b, op, cos)?;
    let (sb, sin_offset, _ks) = contiguous_rows_f32(b, op, sin)?;
    let (weight, spec) = norm.unwrap_or((None, RmsNormSpec { eps: 0.0, add_unit_offset: false }));
    let (wb, _kw, mode) = weight_binding(b, op, &xb, weight, spec)?;
    // Without values the value bindings repeat x's and y's buffers, never touched (v_rows = 0).
    let (vb, v_at, _kv, vy, v_d) = match values {
        Some((v, (vy, vy_at))) => {
            let (vb, v_at, kv) = placed_f32(b, op, v)?;
            (vb, v_at, kv, (vy, vy_at), v.layout.dims().last().copied().unwrap_or(0))
        }
        None => (xb.clone(), x_at, None, y, 0),
    };
    // A buffer bound for writing must not also be bound for reading in the same dispatch.
    let read = [&xb, &wb, &cb, &sb, &vb];
    if [y.0, vy.0].iter().any(|out| read.iter().any(|r| Arc::ptr_eq(r, out))) {
        return Err(tensor::Error::unsupported(op.to_string(), "a destination in the buffer of an operand it reads"));
    }
    let n = x.layout.elem_count();
    if n == 0 || t == 0 {
        return Ok(());
    }
    let rows = (n / d) as u32;
    let kernel = b.kernel(&RmsNormRope)?;
    let params = NormRopeParams {
        rows,
        d: d as u32,
        eps: spec.eps as f32,
        mode,
        t: t as u32,
        interleaved: interleaved as u32,
        cos_offset,
        sin_offset,
        norm: norm.is_some() as u32,
        v_rows: if values.is_some() { rows } else { 0 },
        v_d: v_d as u32,
        pad: 0,
        x_at,
        y_at: y.1,
        v_at,
        vy_at: vy.1,
    };
    b.dispatch(op, kernel, &params, &[&xb, &wb, &cb, &sb, y.0, &vb, vy.0], groups_2d(n / d))
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
