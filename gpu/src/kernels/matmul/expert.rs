//! The mixture-of-experts product, `out[r] = x[r] @ W[ids[r]]` with x [R, K] f32, the weights
//! W [E, K, N] a strided view (f32, bf16 or f16; usually the transpose of a stored [E, N, K], so
//! the K stride is 1) and ids [R] u32 or i64. Two paths, chosen by [`expert_path`]:
//! - [`ExpertPath::PerRow`] (decode, a few rows): each row's product with its own expert's
//!   weights, as the matrix-vector product runs (`expert_matvec.wgsl` with `matvec_tree.wgsl`'s or
//!   `matvec_subgroup.wgsl`'s entry point): a workgroup's threads walk K together, so the weights
//!   are read coalesced, 16 bytes a load. One dispatch.
//! - [`ExpertPath::Grouped`] (prefill, many rows): `expert_group.wgsl` lists each expert's rows
//!   together and cuts them into tiles of [`TILE_M`] rows (a histogram, a scan and a permutation,
//!   in one workgroup), then `expert_gemm.wgsl` multiplies every tile by its expert's weights in
//!   one tiled dispatch whose grid is the most tiles R rows can make. An expert's weights are read
//!   once per tile of its rows instead of once per row. Two dispatches.
//!
//! Neither path reads anything back or decides anything from the ids on the host: for a shape
//! the dispatches and buffers are the same whatever the routing. An id past the experts gives a
//! zero row and sets the error flag, reported by the next readback.
//!
//! Stacked weights over the storage binding limit (a bf16 Qwen3-30B-A3B layer's 128 experts of
//! 768 x 2048 are 403 MB, past lavapipe's 128 MiB) are bound a window of whole experts at a time
//! (`split`: the experts as the rows of [`Rows`], E being the outermost axis), and the product
//! (the per-row kernel, or the grouped one's tiled kernel) runs once per window over every row,
//! each dispatch computing the rows routed to its window's experts and writing them in place in
//! the one output; the others it leaves as they are. The kernels take the window's first expert
//! (`base`), its count and the weights' offset inside the window; within the limit there is one
//! window (the whole buffer, base 0, every expert), so the dispatches are those above.
//! The grouped path's plan runs once for all experts, not per window: it depends on the ids
//! alone (which rows each expert takes, their tiles, the zeroed rows of bad ids), so one plan
//! serves every window, whose tiled dispatch runs the same grid and whose workgroups holding a
//! tile of another window's expert leave at once. Planning per window would add a dispatch, a
//! plan buffer and a pass over the ids for each window to save only those workgroups' start.

use std::cell::Cell;
use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Error, Result, Src};

use super::{Matvec, TILE_B, Weight, tiled_readers, u32s};
use crate::backend::GpuBackend;
use crate::kernels::{copy, index, source};
use crate::pipelines::{Access, KernelKey};
use crate::pool::GpuBuffer;
use crate::recorder::Binding;
use crate::split::{Rows, Window};

const MATVEC: &str = include_str!("../expert_matvec.wgsl");
const GROUP: &str = include_str!("../expert_group.wgsl");
const GEMM: &str = include_str!("../expert_gemm.wgsl");

/// Rows in a tile of the grouped product (`expert_gemm.wgsl`'s BM, and `qexpert_gemm.wgsl`'s TM). Small, as an expert's last
/// tile is rarely full and a tile of one row computes as much as a full one: with 128 experts
/// a prefill of 512 tokens, top-8, gives each expert 32 rows on average.
pub(crate) const TILE_M: usize = 32;
/// Columns of out a workgroup of `expert_gemm.wgsl` computes (its BN).
const TILE_N: usize = 64;

/// Up to this many rows the per-row path always runs: a decode step of a few sequences, whose
/// rows mostly meet different experts, so grouping would save few weight reads and add a
/// dispatch.
const PER_ROW_MAX_ROWS: usize = 16;
/// Beyond [`PER_ROW_MAX_ROWS`], the grouped path runs once there are more than this many rows
/// per expert. For R rows routed at random over E experts, about D = E (1 - e^(-R/E)) experts
/// are chosen. The per-row path reads R weight matrices; the grouped one reads D (while each has
/// at most [`TILE_M`] rows) but computes a whole tile for each, 2 TILE_M = 64 flops per weight,
/// which at a GPU's ~20 f32 flops per byte of bandwidth (H100: 67 TFLOPS, 3.35 TB/s) takes as
/// long as reading the matrix 0.8 (f32) to 1.6 (bf16) times more, and longer at the tiled
/// kernel's lower efficiency: about 2 to 3.5 matrix reads per chosen expert in all, so grouping
/// pays from about that many rows per chosen expert. R = 2E gives R/D = 2.3. The threshold errs
/// toward grouping, whose cost is bounded, while the per-row path's grows with R/D. Estimated,
/// not measured (no GPU where this was written): a benchmark on one should tune both numbers.
const GROUPED_ROWS_PER_EXPERT: usize = 2;

/// The two ways [`expert_matmul`] computes (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpertPath {
    /// One matrix-vector product per row (decode).
    PerRow,
    /// Rows grouped by expert into tiles, then one tiled product (prefill).
    Grouped,
}

thread_local! {
    static FORCED: Cell<Option<ExpertPath>> = const { Cell::new(None) };
}

/// Makes this thread's later [`expert_matmul`] calls take `path` whatever their shape (`None`:
/// back to [`expert_path`]), so tests check both paths on every shape. Per thread, as an op
/// records its dispatches on the caller's thread: tests running side by side keep their own.
#[doc(hidden)]
pub fn force_expert_path(path: Option<ExpertPath>) {
    FORCED.with(|f| f.set(path));
}

/// The path for `rows` rows over `experts` experts: per row up to
/// max([`PER_ROW_MAX_ROWS`], [`GROUPED_ROWS_PER_EXPERT`] x E) rows, grouped beyond (unless
/// [`force_expert_path`] says otherwise on this thread).
pub fn expert_path(rows: usize, experts: usize) -> ExpertPath {
    if let Some(path) = FORCED.with(Cell::get) {
        return path;
    }
    if rows <= PER_ROW_MAX_ROWS.max(GROUPED_ROWS_PER_EXPERT.saturating_mul(experts)) {
        ExpertPath::PerRow
    } else {
        ExpertPath::Grouped
    }
}

/// `expert_matvec.wgsl`'s uniform.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PerRowParams {
    n: u32,
    k: u32,
    experts: u32,
    /// The window's first expert.
    base: u32,
    /// The weights' offset in the window, and their expert, K and N strides.
    w: [u32; 4],
    /// The window's experts.
    count: u32,
    pad: [u32; 3],
}

/// `expert_group.wgsl`'s uniform.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GroupParams {
    rows: u32,
    experts: u32,
    n: u32,
    pad: u32,
}

/// `expert_gemm.wgsl`'s uniform.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GemmParams {
    n: u32,
    k: u32,
    rows: u32,
    /// The window's first expert.
    base: u32,
    /// The weights' offset in the window, and their expert, K and N strides.
    w: [u32; 4],
    /// The window's experts.
    experts: u32,
    pad: [u32; 3],
}

/// The per-row product: matmul's `Matvec` variants (weight type, layout, load width,
/// reduction) with `expert_matvec.wgsl` in place of `matvec.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PerRow(Matvec);

impl KernelKey for PerRow {
    fn name(&self) -> String {
        self.0.name_in("expert_matvec")
    }

    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::Read, Access::ReadWrite, Access::Read, Access::ReadWrite]
    }

    fn source(&self) -> String {
        self.0.source_of(MATVEC)
    }
}

fixed_kernel!(
    /// The grouped product's plan: tile table and permutation (`expert_group.wgsl`).
    Group,
    "expert_group",
    [Read, ReadWrite, ReadWrite, ReadWrite],
    source(&format!("const TILE_M: u32 = {TILE_M}u;"), GROUP)
);

/// The grouped product's tiled kernel (`expert_gemm.wgsl`) for one weight type, weight layout
/// and load widths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Gemm {
    weight: Weight,
    b_n_contiguous: bool,
    a_vec: bool,
    b_vec: bool,
}

impl KernelKey for Gemm {
    fn name(&self) -> String {
        let Gemm { weight, b_n_contiguous, a_vec, b_vec } = *self;
        format!("expert_gemm/{}/{b_n_contiguous}/{a_vec}/{b_vec}", weight.tag())
    }

    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::Read, Access::Read, Access::ReadWrite]
    }

    fn source(&self) -> String {
        let Gemm { weight, b_n_contiguous, a_vec, b_vec } = *self;
        let readers = tiled_readers(weight, a_vec, b_vec);
        source(
            &format!(
                "{readers}\nconst B_N_CONTIGUOUS: bool = {b_n_contiguous};\nconst A_VEC: bool = {a_vec};\nconst B_VEC: bool = {b_vec};"
            ),
            &format!("{TILE_B}\n{GEMM}"),
        )
    }
}

/// What both paths multiply: the shape, the weights' [E, K, N] strides and windows (one, the
/// whole buffer, within the binding limit) and the bindings of x (contiguous, from element 0),
/// the ids (u32, contiguous) and out.
struct Operands {
    weight: Weight,
    rows: usize,
    k: usize,
    n: usize,
    experts: usize,
    /// Expert, K and N strides of the weights, as the kernels take them.
    strides: [u32; 3],
    /// The weights' windows of whole experts, each with the offset of its first expert.
    windows: Vec<Window>,
    x: Binding,
    ids: Binding,
    out: Binding,
}

impl Operands {
    /// The weights' offset in `window` and their strides, as the kernels take them.
    fn w(&self, op: &str, window: &Window) -> Result<[u32; 4]> {
        let [expert, k, n] = self.strides;
        Ok([u32s(op, &[window.offset])?[0], expert, k, n])
    }
}

/// Records `x` [R, K] f32 times, row by row, the expert `ids[r]` of `weights` [E, K, N]: [R, N]
/// f32, on the path [`expert_path`] picks.
pub fn expert_matmul(b: &GpuBackend, x: Src, weights: Src, ids: Src) -> Result<BufferRef> {
    const OP: &str = "expert_matmul";
    if x.dtype != DType::F32 {
        return Err(Error::unsupported_dtype(OP, x.dtype));
    }
    let weight = Weight::of(weights.dtype)
        .map_err(|_| Error::dtype(OP, format!("weights of dtype {} are not supported on the GPU", weights.dtype)))?;
    let (rows, k) = (x.layout.dims()[0], x.layout.dims()[1]);
    let (experts, n) = (weights.layout.dims()[0], weights.layout.dims()[2]);
    let out = b.alloc(OP, rows * n, DType::F32)?;
    if rows * n == 0 {
        return Ok(Arc::new(out));
    }
    // Indices into x, out and the plan are 32-bit in the kernels.
    u32s(OP, &[rows * k, rows * n, experts])?;
    let (xb, _keep_x) = copy::contiguous_f32(b, OP, x)?;
    let (id_buffer, _keep_ids) = index::ids_u32(b, OP, ids)?;
    let ws = weights.layout.strides();
    let strides = u32s(OP, &[ws[0], ws[1], ws[2]])?;
    // Expert e's elements lie from offset + e ws[0] to its last, (K - 1, N - 1): the experts
    // are the rows a window holds whole.
    let span = if k == 0 { 0 } else { (k - 1) * ws[1] + (n - 1) * ws[2] + 1 };
    let rows_of = Rows {
        offset: weights.layout.offset(),
        count: experts,
        stride: ws[0],
        span,
        elem_bytes: weights.dtype.size_in_bytes(),
    };
    let operands = Operands {
        weight,
        rows,
        k,
        n,
        experts,
        strides: [strides[0], strides[1], strides[2]],
        windows: b.row_windows(OP, &weights, rows_of)?,
        x: Binding::whole(&xb),
        ids: Binding::whole(&id_buffer),
        out: Binding::whole(&out.buffer),
    };
    // No window (no experts, of a buffer over the limit): only the grouped path's plan, which
    // zeroes every row and flags it, runs.
    match expert_path(rows, experts) {
        ExpertPath::PerRow if !operands.windows.is_empty() => per_row(b, OP, operands)?,
        _ => grouped(b, OP, operands)?,
    }
    Ok(Arc::new(out))
}

/// Records the per-row product, once per window of experts: matmul's matrix-vector choices
/// (vec4 loads where every row of every expert starts 16-byte aligned, subgroup sums where the
/// device has them, f16 read as f16 with SHADER_F16), the grid's z running over the rows.
fn per_row(b: &GpuBackend, op: &str, o: Operands) -> Result<()> {
    let [expert, k_stride, n_stride] = o.strides.map(|s| s as usize);
    let k_contiguous = k_stride == 1 && !(n_stride == 1 && o.n > 1 && o.k == 1);
    if o.rows > 65_535 {
        return Err(Error::backend(op, format!("{} rows exceed the GPU grid of the per-row product (65535)", o.rows)));
    }
    // Elements per 16 bytes of the weights; a row starts on such a boundary when its offset does.
    let per16 = if o.weight == Weight::F32 { 4 } else { 8 };
    for window in &o.windows {
        let vec = k_contiguous
            && o.k.is_multiple_of(4)
            && window.offset.is_multiple_of(per16)
            && n_stride.is_multiple_of(per16)
            && (o.experts == 1 || expert.is_multiple_of(per16))
            && [&o.x, &window.binding].iter().all(|b| b.size().is_multiple_of(16));
        let key = PerRow(Matvec::on(b, o.weight, k_contiguous, vec));
        let groups = key.0.groups(1, o.n, o.rows);
        let params = PerRowParams {
            n: o.n as u32,
            k: o.k as u32,
            experts: o.experts as u32,
            base: window.rows.start as u32,
            w: o.w(op, window)?,
            count: window.rows.len() as u32,
            pad: [0; 3],
        };
        let (x, weights, out, ids) = (o.x.clone(), window.binding.clone(), o.out.clone(), o.ids.clone());
        let bindings = vec![x, weights, out, ids, Binding::whole(&b.error_flag())];
        b.dispatch_bound(op, b.kernel(&key)?, &params, bindings, groups)?;
    }
    Ok(())
}

/// Records `expert_group.wgsl`, the plan of a grouped product of `rows` rows routed by `ids`
/// (u32, contiguous) over `experts` experts into `out` [rows, n], whose rows with an id out of
/// range it zeroes (flagging them). Returns the plan, [0] the tile count, [1, 1 + rows) the
/// permutation, then three words a tile (expert, first place in the permutation, rows), and the
/// most tiles it may list, ceil(rows / TILE_M) + min(E, rows) (each expert with rows leaves at
/// most one tile less than full): the grid's y of the product that follows. Shared with the
/// product on quantized blocks (`qmatmul`), whose tile is also [`TILE_M`] rows.
pub(crate) fn plan(
    b: &GpuBackend,
    op: &str,
    rows: usize,
    experts: usize,
    n: usize,
    ids: Binding,
    out: Binding,
) -> Result<(GpuBuffer, u32)> {
    let tiles = rows.div_ceil(TILE_M) + experts.min(rows);
    if tiles > 65_535 {
        return Err(Error::backend(
            op,
            format!(
                "{rows} rows over {experts} experts make up to {tiles} tiles of {TILE_M} rows, past the GPU grid (65535)"
            ),
        ));
    }
    let plan = b.alloc(op, 1 + rows + 3 * tiles, DType::U32)?;
    let params = GroupParams { rows: rows as u32, experts: experts as u32, n: n as u32, pad: 0 };
    let bindings = vec![ids, Binding::whole(&plan.buffer), out, Binding::whole(&b.error_flag())];
    b.dispatch_bound(op, b.kernel(&Group)?, &params, bindings, [1, 1, 1])?;
    Ok((plan, tiles as u32))
}

/// Records the grouped product: the plan (once, for every expert), then the tiled product over
/// the most tiles it may list, once per window of experts.
fn grouped(b: &GpuBackend, op: &str, o: Operands) -> Result<()> {
    let blocks = o.n.div_ceil(TILE_N);
    if blocks > 65_535 {
        return Err(Error::backend(
            op,
            format!("{} columns make {blocks} blocks of {TILE_N}, past the GPU grid (65535)", o.n),
        ));
    }
    let (plan, tiles) = plan(b, op, o.rows, o.experts, o.n, o.ids.clone(), o.out.clone())?;
    let [expert, k_stride, n_stride] = o.strides.map(|s| s as usize);
    let b_n_contiguous = n_stride == 1;
    // Quads along a contiguous dim start on a multiple of 4 elements when the offset and every
    // other stride are multiples of 4; bound as vectors, a binding's size must hold whole ones.
    let a_vec = o.k.is_multiple_of(4) && o.x.size().is_multiple_of(16);
    let (contiguous, other) = if b_n_contiguous { (n_stride, k_stride) } else { (k_stride, n_stride) };
    for window in &o.windows {
        let b_vec = contiguous == 1
            && window.offset.is_multiple_of(4)
            && other.is_multiple_of(4)
            && (o.experts == 1 || expert.is_multiple_of(4))
            && window.binding.size().is_multiple_of(16);
        let key = Gemm { weight: o.weight, b_n_contiguous, a_vec, b_vec };
        let params = GemmParams {
            n: o.n as u32,
            k: o.k as u32,
            rows: o.rows as u32,
            base: window.rows.start as u32,
            w: o.w(op, window)?,
            experts: window.rows.len() as u32,
            pad: [0; 3],
        };
        let bindings = vec![o.x.clone(), window.binding.clone(), Binding::whole(&plan.buffer), o.out.clone()];
        b.dispatch_bound(op, b.kernel(&key)?, &params, bindings, [blocks as u32, tiles, 1])?;
    }
    Ok(())
}
