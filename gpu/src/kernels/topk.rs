//! Launcher of top-k over the last axis. Exact (same order as the CPU, ties to the lower index).
//! Two kernels:
//! - `topk.wgsl`, one thread per row making k passes over it: routers (k <= 8 of a few hundred
//!   experts, one row per token, so rows give the parallelism);
//! - `topk_sort.wgsl` for long f32 rows or large k (up to [`SORT_MAX_K`]): a sampler's k
//!   likeliest tokens of a vocabulary (151,936 logits, k = 40), which one thread per row would
//!   walk k times alone. Tiles of the row are sorted in workgroup memory by many workgroups at
//!   once and cut to their best k, then the candidates the same way, until one tile is left.
//!
//! lavapipe ends any shader loop after 65,535 iterations (llvmpipe's guard against hangs), so
//! `topk.wgsl` is only right there while k x n stays under that; the sorting kernel's loops are
//! short, and it takes every f32 row past that bound with k within its limit.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Result, Src};

use super::{Elem, grid_1d, source};
use crate::backend::GpuBackend;
use crate::pipelines::{Access, KernelKey};
use crate::pool::GpuBuffer;

const BODY: &str = include_str!("topk.wgsl");
const SORT: &str = include_str!("topk_sort.wgsl");

/// Entries one workgroup of `topk_sort.wgsl` sorts (its `TILE`).
const SORT_TILE: usize = 1024;
/// The largest k the sorting kernel takes: a tile keeps k rounded up to a power of two, at most
/// half of it, so each pass at least halves the candidates.
pub const SORT_MAX_K: usize = SORT_TILE / 2;
/// Up to this many entries walked per row (k x n), one thread per row is quicker than sorting.
const WALK_MAX: usize = 16_384;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SortParams {
    rows: u32,
    n: u32,
    k: u32,
    kp: u32,
    first: u32,
    last: u32,
    pad: [u32; 2],
}

fixed_kernel!(
    /// One pass of the tiled top-k over long f32 rows.
    TopkSort,
    "topk_sort",
    [Read, ReadWrite, ReadWrite, ReadWrite],
    source("", SORT)
);

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
        // The rank key: an f32's bits mapped to a u32 in IEEE total order (`f32::total_cmp`,
        // the CPU's ranking), a u32 itself.
        let key = match self.0 {
            Elem::F32 => "let b = bitcast<u32>(x); return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);",
            Elem::U32 => "return x;",
        };
        source(&format!("alias T = {};\nfn key(x: T) -> u32 {{ {key} }}", self.0.wgsl()), BODY)
    }
}

pub fn topk(b: &GpuBackend, src: Src, k: usize) -> Result<(BufferRef, BufferRef)> {
    const OP: &str = "topk";
    let key = Kernel(Elem::of(OP, src.dtype)?);
    let n = src.layout.dims().last().copied().unwrap_or(1);
    let rows = src.layout.elem_count().checked_div(n).unwrap_or(0);
    if sorts(src.dtype, rows, n, k) {
        return topk_sort(b, src, rows, n, k);
    }
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

/// Whether `topk_sort.wgsl` takes rows of `n` entries: f32 rows longer than one tile or with
/// more than [`WALK_MAX`] entries to walk (a router's rows are quicker walked k times by one
/// thread), k within [`SORT_MAX_K`], and the tiles and rows within one grid dimension each.
fn sorts(dtype: DType, rows: usize, n: usize, k: usize) -> bool {
    dtype == DType::F32
        && (n > SORT_TILE || k * n > WALK_MAX)
        && (1..=SORT_MAX_K).contains(&k)
        && (1..=65_535).contains(&rows)
        && n.div_ceil(SORT_TILE) <= 65_535
}

/// Top-k by `topk_sort.wgsl`: passes over the row, then over the candidates, each a grid of
/// (tiles, rows), until a pass has one tile per row; that one writes the values and indices.
fn topk_sort(b: &GpuBackend, src: Src, rows: usize, n: usize, k: usize) -> Result<(BufferRef, BufferRef)> {
    const OP: &str = "topk";
    let kernel = b.kernel(&TopkSort)?;
    // The row is read in place where it lies from the buffer's start (the logits of a step).
    let (row, _copy) = super::copy::contiguous_f32(b, OP, src)?;
    let values = b.alloc(OP, rows * k, DType::F32)?;
    let indices = b.alloc(OP, rows * k, DType::U32)?;
    let kp = k.next_power_of_two() as u32;
    let mut input = row;
    // The candidates the pass being recorded reads, kept from the pool until it is recorded.
    let mut _read: Option<GpuBuffer> = None;
    let (mut entries, mut first) = (n, true);
    loop {
        let tiles = entries.div_ceil(SORT_TILE);
        let last = tiles == 1;
        // The last pass writes no candidates: its binding gets a word of its own.
        let pairs = b.alloc(OP, if last { 1 } else { 2 * rows * tiles * kp as usize }, DType::U32)?;
        let params = SortParams {
            rows: rows as u32,
            n: entries as u32,
            k: k as u32,
            kp,
            first: first as u32,
            last: last as u32,
            pad: [0; 2],
        };
        let buffers = [&input, &pairs.buffer, &values.buffer, &indices.buffer];
        b.dispatch(OP, kernel.clone(), &params, &buffers, [tiles as u32, rows as u32, 1])?;
        if last {
            break;
        }
        (input, entries, first) = (pairs.buffer.clone(), tiles * kp as usize, false);
        _read = Some(pairs);
    }
    Ok((Arc::new(values), Arc::new(indices)))
}
