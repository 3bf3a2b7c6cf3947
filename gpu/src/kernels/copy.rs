//! Launchers that move and convert data: strided copies (`contiguous`, `copy_into`, the parts of
//! `concat`), fills and dtype casts. Exact, except casts to 16-bit types (round to nearest even,
//! as on the CPU; f16 through WGSL's `pack2x16float`).

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Error, HostData, Layout, Result, Src};

use super::{LayoutUniform, grid_1d, source};
use crate::backend::GpuBackend;
use crate::pipelines::{Access, KernelKey};
use crate::pool::GpuBuffer;
use crate::recorder::Binding;
use crate::split::bind_view;

const COPY: &str = include_str!("copy.wgsl");
const COPY16: &str = include_str!("copy16.wgsl");
const COPY_PARAMS: &str = include_str!("copy_params.wgsl");
const FILL: &str = include_str!("fill.wgsl");
const CAST: &str = include_str!("cast.wgsl");

/// A strided copy, by element width: one 32-bit word, a pair of words, or 16-bit halves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum StridedCopy {
    Word,
    Pair,
    Half,
}

impl KernelKey for StridedCopy {
    fn name(&self) -> String {
        match self {
            StridedCopy::Word => "copy/u32",
            StridedCopy::Pair => "copy/vec2<u32>",
            StridedCopy::Half => "copy/16",
        }
        .into()
    }

    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::ReadWrite]
    }

    fn source(&self) -> String {
        match self {
            StridedCopy::Word => source(&format!("{COPY_PARAMS}\nalias W = u32;"), COPY),
            StridedCopy::Pair => source(&format!("{COPY_PARAMS}\nalias W = vec2<u32>;"), COPY),
            StridedCopy::Half => source(COPY_PARAMS, COPY16),
        }
    }
}

fixed_kernel!(Fill, "fill", [ReadWrite], source("", FILL));

/// A conversion from one dtype to another (neither f64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Cast {
    from: DType,
    to: DType,
}

impl KernelKey for Cast {
    fn name(&self) -> String {
        format!("cast/{}/{}", self.from, self.to)
    }

    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::ReadWrite, Access::ReadWrite]
    }

    fn source(&self) -> String {
        source(&cast_store(self.from, self.to), CAST)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CopyParams {
    n: u32,
    pad: [u32; 3],
    src: LayoutUniform,
    dst: LayoutUniform,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct FillParams {
    n: u32,
    low: u32,
    high: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CastParams {
    n: u32,
    pad: [u32; 3],
    src: LayoutUniform,
}

/// Copies the elements of `src` (in row-major order) to the elements `dst_layout` selects of
/// `dst`. Same dtype, same element count. A source over the binding limit is read through the
/// window its view lies in (`split::bind_view`), so rows of a split table can be copied out.
pub fn copy_view(b: &GpuBackend, op: &str, src: Src, dst: &GpuBuffer, dst_layout: &Layout) -> Result<()> {
    let n = src.layout.elem_count();
    if n == 0 {
        return Ok(());
    }
    let (src_binding, src_layout) = bind_view(b, op, &src)?;
    let src = Src { layout: &src_layout, ..src };
    let (kernel, layouts) = match src.dtype.size_in_bytes() {
        4 | 8 => {
            let kernel =
                b.kernel(if src.dtype.size_in_bytes() == 4 { &StridedCopy::Word } else { &StridedCopy::Pair })?;
            // Merging dims needs both views of one shape; reshape the source to the destination's.
            let src_view = src.layout.reshape(dst_layout.shape()).unwrap_or_else(|| src.layout.clone());
            let layouts = if src_view.dims() == dst_layout.dims() {
                LayoutUniform::merged(op, [&src_view, dst_layout])?
            } else {
                vec![LayoutUniform::of(op, src.layout)?, LayoutUniform::of(op, dst_layout)?]
            };
            (kernel, layouts)
        }
        _ => {
            let kernel = b.kernel(&StridedCopy::Half)?;
            (kernel, vec![LayoutUniform::of(op, src.layout)?, LayoutUniform::of(op, dst_layout)?])
        }
    };
    let params = CopyParams { n: n as u32, pad: [0; 3], src: layouts[0], dst: layouts[1] };
    b.dispatch_bound(op, kernel, &params, vec![src_binding, Binding::whole(&dst.buffer)], grid_1d(n))
}

/// A contiguous copy of a view.
pub fn contiguous(b: &GpuBackend, op: &str, src: Src) -> Result<GpuBuffer> {
    let n = src.layout.elem_count();
    let out = b.alloc(op, n, src.dtype)?;
    copy_view(b, op, src, &out, &Layout::contiguous(src.layout.shape().clone()))?;
    Ok(out)
}

/// `len` elements of `dtype`, all `value`.
pub fn fill(b: &GpuBackend, dtype: DType, len: usize, value: f64) -> Result<BufferRef> {
    const OP: &str = "full";
    if dtype == DType::F64 {
        return Err(Error::unsupported_dtype(OP, dtype));
    }
    let out = b.alloc(OP, len, dtype)?;
    let pattern = HostData::filled(dtype, 2, value);
    let words: Vec<u32> = bytemuck::pod_collect_to_vec(pattern.as_bytes());
    let (low, high) = match dtype.size_in_bytes() {
        2 => (words[0], words[0]),
        8 => (words[0], words[1]),
        _ => (words[0], words[0]),
    };
    let n_words = GpuBackend::words(len, dtype);
    if len > 0 {
        let kernel = b.kernel(&Fill)?;
        b.dispatch(OP, kernel, &FillParams { n: n_words as u32, low, high, pad: 0 }, &[&out.buffer], grid_1d(n_words))?;
    }
    Ok(Arc::new(out))
}

/// WGSL reading source element `i` as f32.
fn load_f32(from: DType) -> &'static str {
    match from {
        DType::F32 => "bitcast<f32>(src_word(i))",
        DType::U32 => "f32(src_word(i))",
        DType::BF16 => "bf16_to_f32(src_half(i))",
        DType::F16 => "f16_to_f32(src_half(i))",
        DType::I64 => "f32(bitcast<i32>(src_pair(i).y)) * 4294967296.0 + f32(src_pair(i).x)",
        DType::F64 => "0.0",
    }
}

/// The generated `store(o)` of a cast from `from` to `to`.
fn cast_store(from: DType, to: DType) -> String {
    let load = load_f32(from);
    let load_fn = format!("fn load(i: u32) -> f32 {{ return {load}; }}");
    let body = match to {
        DType::F32 => "if (o < params.n) { dst[o] = bitcast<u32>(load(o)); }".to_string(),
        DType::U32 => match from {
            DType::I64 => "if (o < params.n) { let p = src_pair(o); if (p.y != 0u) { atomicOr(&error_flag[0], 1u); } dst[o] = p.x; }".to_string(),
            DType::U32 => "if (o < params.n) { dst[o] = src_word(o); }".to_string(),
            // Saturating like Rust's `as u32`: negatives and NaN to 0.
            _ => "if (o < params.n) { let x = load(o); dst[o] = select(u32(clamp(x, 0.0, 4294967040.0)), 0u, is_nan(x)); }".to_string(),
        },
        DType::I64 => match from {
            DType::U32 => "if (o < params.n) { dst[2u * o] = src_word(o); dst[2u * o + 1u] = 0u; }".to_string(),
            DType::I64 => "if (o < params.n) { let p = src_pair(o); dst[2u * o] = p.x; dst[2u * o + 1u] = p.y; }".to_string(),
            _ => "if (o < params.n) { let x = load(o); let v = select(i32(clamp(x, -2147483648.0, 2147483520.0)), 0, is_nan(x)); dst[2u * o] = bitcast<u32>(v); dst[2u * o + 1u] = select(0u, 0xffffffffu, v < 0); }".to_string(),
        },
        DType::BF16 | DType::F16 => {
            let convert = if to == DType::BF16 { "f32_to_bf16" } else { "f32_to_f16" };
            format!(
                "let i = 2u * o; if (i < params.n) {{ var word = {convert}(load(i)); if (i + 1u < params.n) {{ word = word | ({convert}(load(i + 1u)) << 16u); }} dst[o] = word; }}"
            )
        }
        DType::F64 => String::new(),
    };
    format!("{load_fn}\nfn store(o: u32) {{ {body} }}")
}

/// Converts a view to `to`, contiguous.
pub fn cast(b: &GpuBackend, src: Src, to: DType) -> Result<BufferRef> {
    const OP: &str = "cast";
    if src.dtype == DType::F64 || to == DType::F64 {
        return Err(Error::dtype(OP, "f64 is not supported on the GPU (gradient checks run on the CPU)"));
    }
    let n = src.layout.elem_count();
    if src.dtype == to {
        return Ok(Arc::new(contiguous(b, OP, src)?));
    }
    let out = b.alloc(OP, n, to)?;
    let threads = if to.size_in_bytes() == 2 { n.div_ceil(2) } else { n };
    if n > 0 {
        let kernel = b.kernel(&Cast { from: src.dtype, to })?;
        // A view inside one window of a split table (rows of an embedding) is cast in place.
        let (src_binding, src_layout) = bind_view(b, OP, &src)?;
        let params = CastParams { n: n as u32, pad: [0; 3], src: LayoutUniform::of(OP, &src_layout)? };
        let bindings = vec![src_binding, Binding::whole(&out.buffer), Binding::whole(&b.error_flag())];
        b.dispatch_bound(OP, kernel, &params, bindings, grid_1d(threads))?;
    }
    Ok(Arc::new(out))
}

/// An f32 view whose elements are contiguous from some offset (rows of a larger table), bound
/// whole with that element offset for the kernel to add, or copied where it is strided.
pub fn contiguous_rows_f32(b: &GpuBackend, op: &str, src: Src) -> Result<(Arc<wgpu::Buffer>, u32, Option<GpuBuffer>)> {
    if src.dtype == DType::F32 && src.layout.is_contiguous() {
        let offset =
            u32::try_from(src.layout.offset()).map_err(|_| Error::backend(op, "a table offset past 2^32 elements"))?;
        return Ok((b.buffer(op, &src)?.buffer.clone(), offset, None));
    }
    let (buffer, kept) = contiguous_f32(b, op, src)?;
    Ok((buffer, 0, kept))
}

/// The buffer of an f32 view with its elements in row-major order from offset 0: the view's own
/// buffer when it already is, else a contiguous copy (returned too, to keep it alive).
pub fn contiguous_f32(b: &GpuBackend, op: &str, src: Src) -> Result<(Arc<wgpu::Buffer>, Option<GpuBuffer>)> {
    if src.dtype != DType::F32 {
        return Err(Error::unsupported_dtype(op, src.dtype));
    }
    if src.layout.is_contiguous() && src.layout.offset() == 0 {
        Ok((b.buffer(op, &src)?.buffer.clone(), None))
    } else {
        let c = contiguous(b, op, src)?;
        Ok((c.buffer.clone(), Some(c)))
    }
}
