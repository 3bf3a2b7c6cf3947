//! Launchers of index_select, index_add, gather and scatter_add. Sources are made contiguous,
//! i64 ids converted to u32 (an id beyond 32 bits sets the error flag). Exact, except that
//! index_add and scatter_add add in index order like the CPU (so also exact in practice).

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Error, Layout, Result, Shape, Src};

use super::{LayoutUniform, grid_1d, source};
use crate::backend::GpuBackend;
use crate::pipelines::{Access, KernelKey};
use crate::pool::GpuBuffer;
use crate::recorder::Binding;
use crate::split::Rows;

const BODY: &str = include_str!("index.wgsl");
const SELECT16: &str = include_str!("index_select16.wgsl");

/// Which of the four index ops `index.wgsl` runs (its `MODE` constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mode {
    Select = 0,
    Add = 1,
    Gather = 2,
    ScatterAdd = 3,
}

impl KernelKey for Mode {
    fn name(&self) -> String {
        format!("index/{self:?}")
    }

    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite]
    }

    fn source(&self) -> String {
        source(&format!("const MODE: u32 = {}u;", *self as u32), BODY)
    }
}

fixed_kernel!(
    /// index_select of bf16/f16 rows, two halves per thread.
    Select16,
    "index/select16",
    [Read, Read, ReadWrite, ReadWrite],
    source("", SELECT16)
);

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    outer: u32,
    a: u32,
    inner: u32,
    n_ids: u32,
    index: LayoutUniform,
    data: LayoutUniform,
    axis: u32,
    /// index_select: the rows `base .. base + rows` are bound, row `base` at element `offset`,
    /// rows `stride` elements apart (all rows, from 0, unless the table is split, see `split`).
    base: u32,
    rows: u32,
    offset: u32,
    stride: u32,
    pad: [u32; 3],
}

impl Params {
    /// index_select and index_add work on whole slices: `outer` × `a` × `inner` with `n_ids`
    /// ids along the middle axis; the layouts are unused.
    fn slices(outer: usize, a: usize, inner: usize, n_ids: usize) -> Self {
        Params {
            outer: outer as u32,
            a: a as u32,
            inner: inner as u32,
            n_ids: n_ids as u32,
            index: Default::default(),
            data: Default::default(),
            axis: 0,
            base: 0,
            rows: a as u32,
            offset: 0,
            stride: inner as u32,
            pad: [0; 3],
        }
    }

    /// gather and scatter_add work element by element: the contiguous layouts of the index and
    /// the data tensor, and the axis the index runs along; the slice sizes are unused.
    fn elements(op: &str, index: &Shape, data: &Shape, axis: usize) -> Result<Self> {
        Ok(Params {
            outer: 0,
            a: 0,
            inner: 0,
            n_ids: 0,
            index: LayoutUniform::of(op, &Layout::contiguous(index.clone()))?,
            data: LayoutUniform::of(op, &Layout::contiguous(data.clone()))?,
            axis: axis as u32,
            base: 0,
            rows: 0,
            offset: 0,
            stride: 0,
            pad: [0; 3],
        })
    }
}

/// A contiguous f32 copy of a view (or None when it already is one).
fn contiguous_f32(b: &GpuBackend, op: &str, src: Src) -> Result<(Arc<wgpu::Buffer>, Option<GpuBuffer>)> {
    if src.dtype != DType::F32 {
        return Err(Error::unsupported_dtype(op, src.dtype));
    }
    contiguous_any(b, op, src)
}

/// A contiguous copy of a view of any dtype (or None when it already is one).
fn contiguous_any(b: &GpuBackend, op: &str, src: Src) -> Result<(Arc<wgpu::Buffer>, Option<GpuBuffer>)> {
    if src.layout.is_contiguous() && src.layout.offset() == 0 {
        Ok((b.buffer(op, &src)?.buffer.clone(), None))
    } else {
        let c = super::copy::contiguous(b, op, src)?;
        Ok((c.buffer.clone(), Some(c)))
    }
}

/// Ids as a contiguous u32 buffer.
pub(crate) fn ids_u32(b: &GpuBackend, op: &str, ids: Src) -> Result<(Arc<wgpu::Buffer>, Option<BufferRef>)> {
    match ids.dtype {
        DType::U32 if ids.layout.is_contiguous() && ids.layout.offset() == 0 => {
            Ok((b.buffer(op, &ids)?.buffer.clone(), None))
        }
        DType::U32 | DType::I64 => {
            let converted = super::copy::cast(b, ids, DType::U32)?;
            let buffer = converted
                .as_any()
                .downcast_ref::<GpuBuffer>()
                .map(|g| g.buffer.clone())
                .ok_or_else(|| Error::backend(op, "cast produced a foreign buffer"))?;
            Ok((buffer, Some(converted)))
        }
        other => Err(Error::dtype(op, format!("ids must be u32 or i64, got {other}"))),
    }
}

/// What index_add and scatter_add work on: a contiguous copy of the destination, which the
/// kernel adds into and which is the result, the source as contiguous f32 and the ids as u32;
/// `_keep` holds the temporaries of those conversions until the dispatch is recorded.
struct AddOperands {
    out: GpuBuffer,
    data: Arc<wgpu::Buffer>,
    ids: Arc<wgpu::Buffer>,
    _keep: (Option<GpuBuffer>, Option<BufferRef>),
}

fn add_operands(b: &GpuBackend, op: &str, dst: Src, src: Src, ids: Src) -> Result<AddOperands> {
    let out = super::copy::contiguous(b, op, dst)?;
    let (data, keep) = contiguous_f32(b, op, src)?;
    let (ids, keep_ids) = ids_u32(b, op, ids)?;
    Ok(AddOperands { out, data, ids, _keep: (keep, keep_ids) })
}

fn split(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (dims[..axis].iter().product(), dims[axis], dims[axis + 1..].iter().product())
}

/// The rows of `src` that `ids` pick along `axis`, in `src`'s dtype: f32, or bf16/f16 (a
/// half-precision embedding table is gathered as it is stored; the caller widens the rows).
pub fn index_select(b: &GpuBackend, src: Src, axis: usize, ids: Src) -> Result<BufferRef> {
    const OP: &str = "index_select";
    if b.is_split(&b.buffer(OP, &src)?.buffer) {
        return select_split(b, src, axis, ids);
    }
    let half = matches!(src.dtype, DType::BF16 | DType::F16);
    let (data, _keep) = if half { contiguous_any(b, OP, src)? } else { contiguous_f32(b, OP, src)? };
    let (id_buffer, _keep_ids) = ids_u32(b, OP, ids)?;
    let (outer, a, inner) = split(src.layout.dims(), axis);
    let n_ids = ids.layout.elem_count();
    let total = outer * n_ids * inner;
    let out = b.alloc(OP, total, src.dtype)?;
    if total > 0 && half {
        let params = Params::slices(outer, a, inner, n_ids);
        let kernel = b.kernel(&Select16)?;
        b.dispatch(
            OP,
            kernel,
            &params,
            &[&data, &id_buffer, &out.buffer, &b.error_flag()],
            grid_1d(total.div_ceil(2)),
        )?;
    } else if total > 0 {
        let params = Params::slices(outer, a, inner, n_ids);
        b.dispatch(
            OP,
            b.kernel(&Mode::Select)?,
            &params,
            &[&data, &id_buffer, &out.buffer, &b.error_flag()],
            grid_1d(total),
        )?;
    }
    Ok(Arc::new(out))
}

/// Whether the dims after the first are laid out contiguously (dims of extent 1 aside), so
/// that each index along dim 0 is one run of elements.
fn rows_contiguous(layout: &Layout) -> bool {
    let mut expected = 1;
    for (&d, &s) in layout.dims().iter().zip(layout.strides()).skip(1).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected *= d;
    }
    true
}

/// index_select along dim 0 of a table over the binding limit (an embedding lookup): one
/// dispatch per window of whole rows (`split`), each writing the output rows whose ids fall in
/// its window; every id falls in exactly one, so each output element is written once. The
/// kernels are those of the ordinary path, told which rows are bound.
fn select_split(b: &GpuBackend, src: Src, axis: usize, ids: Src) -> Result<BufferRef> {
    const OP: &str = "index_select";
    let half = matches!(src.dtype, DType::BF16 | DType::F16);
    if !half && src.dtype != DType::F32 {
        return Err(Error::unsupported_dtype(OP, src.dtype));
    }
    let (dims, strides) = (src.layout.dims(), src.layout.strides());
    let inner: usize = dims[1..].iter().product();
    if axis != 0 || !rows_contiguous(src.layout) || (half && inner % 2 == 1) {
        return Err(Error::backend(
            OP,
            format!(
                "a table over this adapter's storage binding limit of {} bytes is gathered only along dim 0, with contiguous rows (of an even length in half precision); got axis {axis} of a {src_layout:?}",
                b.binding_limit(),
                src_layout = src.layout
            ),
        ));
    }
    let (id_buffer, _keep_ids) = ids_u32(b, OP, ids)?;
    let n_ids = ids.layout.elem_count();
    let total = n_ids * inner;
    let out = b.alloc(OP, total, src.dtype)?;
    if total == 0 {
        return Ok(Arc::new(out));
    }
    let rows = Rows {
        offset: src.layout.offset(),
        count: dims[0],
        stride: strides[0],
        span: inner,
        elem_bytes: src.dtype.size_in_bytes(),
    };
    let (kernel, threads) =
        if half { (b.kernel(&Select16)?, total.div_ceil(2)) } else { (b.kernel(&Mode::Select)?, total) };
    for window in b.row_windows(OP, &src, rows)? {
        let params = Params {
            base: super::to_u32(OP, window.rows.start)?,
            rows: super::to_u32(OP, window.rows.len())?,
            offset: super::to_u32(OP, window.offset)?,
            stride: super::to_u32(OP, strides[0])?,
            ..Params::slices(1, dims[0], inner, n_ids)
        };
        let bindings = vec![
            window.binding,
            Binding::whole(&id_buffer),
            Binding::whole(&out.buffer),
            Binding::whole(&b.error_flag()),
        ];
        b.dispatch_bound(OP, kernel.clone(), &params, bindings, grid_1d(threads))?;
    }
    Ok(Arc::new(out))
}

pub fn index_add(b: &GpuBackend, dst: Src, axis: usize, ids: Src, src: Src) -> Result<BufferRef> {
    const OP: &str = "index_add";
    let AddOperands { out, data, ids: id_buffer, _keep } = add_operands(b, OP, dst, src, ids)?;
    let (outer, a, inner) = split(dst.layout.dims(), axis);
    let n_ids = ids.layout.elem_count();
    if outer * inner > 0 && n_ids > 0 {
        let params = Params::slices(outer, a, inner, n_ids);
        b.dispatch(
            OP,
            b.kernel(&Mode::Add)?,
            &params,
            &[&data, &id_buffer, &out.buffer, &b.error_flag()],
            grid_1d(outer * inner),
        )?;
    }
    Ok(Arc::new(out))
}

pub fn gather(b: &GpuBackend, src: Src, axis: usize, index: Src) -> Result<BufferRef> {
    const OP: &str = "gather";
    let (data, _keep) = contiguous_f32(b, OP, src)?;
    let (id_buffer, _keep_ids) = ids_u32(b, OP, index)?;
    let n = index.layout.elem_count();
    let out = b.alloc(OP, n, DType::F32)?;
    if n > 0 {
        let params = Params::elements(OP, index.layout.shape(), src.layout.shape(), axis)?;
        b.dispatch(
            OP,
            b.kernel(&Mode::Gather)?,
            &params,
            &[&data, &id_buffer, &out.buffer, &b.error_flag()],
            grid_1d(n),
        )?;
    }
    Ok(Arc::new(out))
}

pub fn scatter_add(b: &GpuBackend, dst: Src, axis: usize, index: Src, src: Src) -> Result<BufferRef> {
    const OP: &str = "scatter_add";
    let AddOperands { out, data, ids: id_buffer, _keep } = add_operands(b, OP, dst, src, index)?;
    let n = dst.layout.elem_count();
    if n > 0 && index.layout.elem_count() > 0 {
        let params = Params::elements(OP, index.layout.shape(), dst.layout.shape(), axis)?;
        b.dispatch(
            OP,
            b.kernel(&Mode::ScatterAdd)?,
            &params,
            &[&data, &id_buffer, &out.buffer, &b.error_flag()],
            grid_1d(n),
        )?;
    }
    Ok(Arc::new(out))
}
