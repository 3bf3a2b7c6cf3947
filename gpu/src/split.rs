//! Tensors larger than one storage binding. An adapter limits how many bytes one binding of a
//! kernel may see (`max_storage_buffer_binding_size`: 128 MiB on lavapipe and some drivers),
//! while its buffers may be larger (`max_buffer_size`). The f32 embedding table or LM head of an
//! 8B model (2.1 GB) is such a tensor. It is kept in one buffer, and the few ops that meet it
//! bind a *window* of it at a time: a byte range starting on the adapter's storage offset
//! alignment and no longer than the limit, holding whole rows of the view.
//!
//! - `index_select` along dim 0 (the embedding lookup) runs once per window of rows; each run
//!   writes the output rows whose ids fall inside its window (`kernels/index.rs`).
//! - `matmul` with such a weight (`x @ W^T`, W [N, K] split by rows, the LM head) runs once per
//!   window into the matching columns of the output (`kernels/matmul.rs`).
//! - Copies and casts of a view whose elements lie inside one window bind that window
//!   ([`bind_view`]); upload and download copy whole buffers and bind nothing.
//! - Block-quantized matrices (`DeviceQMatrix`) are gathered (`qindex_select`) and multiplied
//!   (`qmatmul`, both kernels) a window of rows at a time, and stacked experts
//!   (`qexpert_matmul`) a window of whole experts at a time (`kernels/qmatmul.rs`). Q8_0, Q4_0,
//!   Q5_0 and MXFP4 keep every block's quants first and the scales after them, so a row lies in two
//!   regions of the buffer: [`GpuBackend::region_windows`] cuts both at the same rows, and the
//!   kernels bind the buffer twice (quants and scales), each window with the offset of its first
//!   row. The other types are one region (whole blocks per row) bound once, as dense rows are.
//! - Stacked dense experts (`expert_matmul`'s f32, bf16 or f16 [E, K, N] view, E outermost) are
//!   multiplied a window of whole experts at a time (the experts as [`Rows`]) on both of its
//!   paths: each dispatch computes, over every row, the rows routed to its window's experts and
//!   writes them in place; the grouped path's plan runs once for all (`kernels/matmul/expert.rs`).
//!
//! Every other kernel binds its operands whole, and `GpuBackend::dispatch_bound` refuses a
//! buffer over the limit with an error naming the op, so nothing reads past a binding.
//! `LLM_GPU_MAX_BINDING_MIB` lowers the limit so the tests split tensors of a few MiB.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use tensor::{Error, Layout, Result, Src};

use crate::backend::GpuBackend;
use crate::recorder::Binding;

/// Whole rows of a view, bound through one window of its buffer.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    /// The rows of the view this window holds.
    pub rows: Range<usize>,
    pub binding: Binding,
    /// The element offset, inside the window, of the first of those rows.
    pub offset: usize,
}

/// Where rows sit in a buffer: row `r` starts at element `offset + r * stride` and its elements
/// span `span` elements from there (`span <= stride`, so rows do not interleave).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rows {
    pub offset: usize,
    pub count: usize,
    pub stride: usize,
    pub span: usize,
    pub elem_bytes: usize,
}

impl GpuBackend {
    /// The bytes a window may hold: the binding limit, less 16 so that a window's end can be
    /// rounded up to whole 16-byte vectors (the vectorised kernels read them).
    fn window_budget(&self) -> u64 {
        self.binding_limit() / 16 * 16 - 16
    }

    /// Where a window containing byte `start` begins: `start` rounded down to the adapter's
    /// storage offset alignment.
    fn window_start(&self, start: u64) -> u64 {
        let align = self.ctx.limits.min_storage_buffer_offset_alignment.max(16) as u64;
        start / align * align
    }

    /// The window of `buffer` from `start` (aligned) to `end` bytes, rounded up to 16 bytes.
    fn window(buffer: &wgpu::Buffer, start: u64, end: u64) -> (u64, u64) {
        let end = end.div_ceil(16).saturating_mul(16).min(buffer.size());
        (start, end - start)
    }

    /// `rows` of `src`'s buffer (over the binding limit) cut into windows, each holding as many
    /// whole rows as fit. An error names `op` if a single row is larger than a binding.
    pub(crate) fn row_windows(&self, op: &str, src: &Src, rows: Rows) -> Result<Vec<Window>> {
        let windows = self.region_windows(op, src, &[rows])?;
        Ok(windows.into_iter().filter_map(|mut w| w.pop()).collect())
    }

    /// The rows of a matrix whose rows lie in several regions of one buffer (a block-quantized
    /// matrix keeps its quants, then its scales: `regions` gives, for each, where row `r`'s
    /// part lies), cut into windows: each element lists one window per region, all holding the
    /// same rows, as many as fit every region's window. The whole buffer bound once, with the
    /// regions' own offsets, when it fits one binding.
    pub(crate) fn region_windows(&self, op: &str, src: &Src, regions: &[Rows]) -> Result<Vec<Vec<Window>>> {
        let buffer = &self.buffer(op, src)?.buffer;
        let count = regions.first().map_or(0, |rows| rows.count);
        if !self.is_split(buffer) {
            let whole = |rows: &Rows| Window { rows: 0..count, binding: Binding::whole(buffer), offset: rows.offset };
            return Ok(vec![regions.iter().map(whole).collect()]);
        }
        let mut windows = Vec::new();
        let mut r = 0;
        while r < count {
            let mut m = count - r;
            for rows in regions {
                m = m.min(self.rows_fitting(op, rows, r)?);
            }
            windows.push(regions.iter().map(|rows| self.rows_window(buffer, rows, r..r + m)).collect());
            r += m;
        }
        Ok(windows)
    }

    /// How many of `rows` from row `r` on fit one window starting before row `r`; an error
    /// names `op` if not even row `r` does.
    fn rows_fitting(&self, op: &str, rows: &Rows, r: usize) -> Result<usize> {
        let eb = rows.elem_bytes as u64;
        let (stride, span) = (rows.stride as u64 * eb, rows.span as u64 * eb);
        let first = (rows.offset + r * rows.stride) as u64 * eb;
        let start = self.window_start(first);
        let budget = self.window_budget();
        if start + budget < first + span {
            return Err(Error::backend(
                op,
                format!(
                    "one row of {span} bytes is larger than this adapter's storage binding limit of {} bytes",
                    self.binding_limit()
                ),
            ));
        }
        // Rows r .. r + m fit while the last one ends within the budget. A stride of 0 (one row
        // repeated) fits every row at once.
        let room = start + budget - (first + span);
        Ok(room.checked_div(stride).map_or(rows.count, |q| q as usize + 1).min(rows.count - r))
    }

    /// The window of `buffer` holding `rows`' rows `range` (which [`Self::rows_fitting`] fit).
    fn rows_window(&self, buffer: &Arc<wgpu::Buffer>, rows: &Rows, range: Range<usize>) -> Window {
        let eb = rows.elem_bytes as u64;
        let first = (rows.offset + range.start * rows.stride) as u64 * eb;
        let start = self.window_start(first);
        let end = first + (range.len() as u64 - 1) * rows.stride as u64 * eb + rows.span as u64 * eb;
        let range_bytes = Self::window(buffer, start, end);
        Window {
            rows: range,
            binding: Binding { buffer: buffer.clone(), range: Some(range_bytes) },
            offset: ((first - start) / eb) as usize,
        }
    }
}

/// The binding a kernel reading the view `src` should use, and the view's layout inside it:
/// the whole buffer and the layout as is, or, for a buffer over the binding limit, the window
/// holding every element the view reads, with the layout's offset moved into it. A view
/// spread wider than one binding is an error naming `op`.
pub(crate) fn bind_view<'a>(b: &GpuBackend, op: &str, src: &Src<'a>) -> Result<(Binding, Cow<'a, Layout>)> {
    let buffer = &b.buffer(op, src)?.buffer;
    if !b.is_split(buffer) {
        return Ok((Binding::whole(buffer), Cow::Borrowed(src.layout)));
    }
    let eb = src.dtype.size_in_bytes() as u64;
    let (first, end) = (src.layout.offset() as u64 * eb, src.layout.storage_extent().max(1) as u64 * eb);
    let start = b.window_start(first);
    if end - start > b.window_budget() {
        return Err(Error::backend(
            op,
            format!(
                "a view reading {} bytes of a tensor over this adapter's storage binding limit of {} bytes cannot be bound (only views inside one binding's range can be copied)",
                end - first,
                b.binding_limit()
            ),
        ));
    }
    let range = GpuBackend::window(buffer, start, end);
    let offset = ((first - start) / eb) as usize;
    let layout = Layout::new(src.layout.shape().clone(), src.layout.strides().to_vec(), offset);
    Ok((Binding { buffer: buffer.clone(), range: Some(range) }, Cow::Owned(layout)))
}
