//! Launchers of the products on quantized blocks (`tensor::quant::DeviceQMatrix`), and of their
//! row gather (an embedding table kept as blocks, `qrows.wgsl`): the weights stay in their GGUF
//! blocks on the device (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, MXFP4, FP8_E4M3) and
//! each kernel decodes a 32-element unit at a time with ggml's formulas (`qunit_<type>.wgsl`),
//! never an f32 copy of the matrix. Up to
//! [`MATVEC_MAX_M`] activation rows (decode, small batches) take `qmatvec.wgsl`, which reads
//! each weight once for all rows; more take the tiled `qmatmul.wgsl`. The mixture-of-experts
//! product takes the matrix-vector `qexperts.wgsl` per row for a few rows, and for many the plan
//! of the f32 experts' grouped product (`matmul::expert_plan`) and the tiled `qexpert_gemm.wgsl`,
//! chosen as that product chooses (`matmul::expert_path`). The CPU's counterparts are
//! `tensor::quant::qmatmul`.
//! A matrix over the storage binding limit (an 8B model's Q8_0 embedding on lavapipe) runs a
//! window of rows, or of whole experts, at a time (`split`): every kernel binds the buffer twice,
//! its blocks from `offset` words before the window's first row and its scales (Q8_0, Q4_0,
//! Q5_0, MXFP4, which keep them after every block's quants) from slot `scales`, and writes its rows'
//! outputs in place. Within the limit that is one dispatch on the whole buffer, offsets 0.
//! Tolerance against the CPU's f32 product of the dequantized matrix: ~1e-6 relative *
//! sqrt(K) (the decoded values are identical; only the order of the f32 sums differs).

use std::ops::Range;
use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::quant::GgmlType;
use tensor::{BufferRef, DType, Error, Result, Src};

use super::matmul::ExpertPath;
use super::{grid_1d, groups_2d, source};
use crate::backend::GpuBackend;
use crate::pipelines::{Access, KernelKey};
use crate::recorder::Binding;
use crate::split::Rows;

const PARAMS: &str = include_str!("qmatmul_params.wgsl");
const MATVEC: &str = include_str!("qmatvec.wgsl");
const TILED: &str = include_str!("qmatmul.wgsl");
const ROWS: &str = include_str!("qrows.wgsl");
const EXPERTS: &str = include_str!("qexperts.wgsl");
const GROUPED_EXPERTS: &str = include_str!("qexpert_gemm.wgsl");

/// Activation rows up to which the matrix-vector kernel runs (its `MAX_M`).
pub const MATVEC_MAX_M: usize = 8;
/// Weight rows per workgroup of `qmatvec.wgsl`, and the tile of `qmatmul.wgsl`.
const MATVEC_ROWS: usize = 8;
const TILE_M: usize = 32;
const TILE_N: usize = 64;
// `qexpert_gemm.wgsl` has `qmatmul.wgsl`'s tile, whose rows must be a tile of the experts' plan.
const _: () = assert!(TILE_M == super::matmul::EXPERT_TILE_M);

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    units: u32,
    scales: u32,
    experts: u32,
    offset: u32,
    base: u32,
    total: u32,
    pad: [u32; 3],
}

/// What a kernel on quantized blocks does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    /// Products with up to [`MATVEC_MAX_M`] rows.
    Matvec,
    /// Products with more.
    Tiled,
    /// The rows ids pick.
    Rows,
    /// Products of each row with its own expert's matrix, a row at a time.
    Experts,
    /// The same with the rows grouped by expert, tiled.
    GroupedExperts,
}

/// One kernel on quantized blocks: the block type and what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Kernel {
    ty: GgmlType,
    kind: Kind,
}

/// The unit decoder of `ty`, for the types `DeviceQMatrix` keeps on a device.
fn decoder(ty: GgmlType) -> Option<&'static str> {
    Some(match ty {
        GgmlType::Q8_0 => include_str!("qunit_q8_0.wgsl"),
        GgmlType::Q4_0 => include_str!("qunit_q4_0.wgsl"),
        GgmlType::Q4_1 => include_str!("qunit_q4_1.wgsl"),
        GgmlType::Q5_0 => include_str!("qunit_q5_0.wgsl"),
        GgmlType::Q5_1 => include_str!("qunit_q5_1.wgsl"),
        GgmlType::Q4_K => include_str!("qunit_q4_k.wgsl"),
        GgmlType::Q5_K => include_str!("qunit_q5_k.wgsl"),
        GgmlType::Q6_K => include_str!("qunit_q6_k.wgsl"),
        GgmlType::MXFP4 => include_str!("qunit_mxfp4.wgsl"),
        GgmlType::FP8_E4M3 => include_str!("qunit_fp8.wgsl"),
        _ => return None,
    })
}

impl KernelKey for Kernel {
    fn name(&self) -> String {
        format!("qmatmul/{}/{}", self.ty, format!("{:?}", self.kind).to_lowercase())
    }

    fn buffers(&self) -> &'static [Access] {
        match self.kind {
            // The activations (or ids), the blocks `w`, the scales `s`, the output, the rest.
            Kind::Rows => &[Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite],
            Kind::Experts => {
                &[Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::Read, Access::ReadWrite]
            }
            Kind::GroupedExperts => &[Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::Read],
            Kind::Matvec | Kind::Tiled => &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
        }
    }

    fn source(&self) -> String {
        let unit = decoder(self.ty).expect("the launchers build keys of supported types only");
        let body = match self.kind {
            Kind::Matvec => MATVEC,
            Kind::Tiled => TILED,
            Kind::Rows => ROWS,
            Kind::Experts => EXPERTS,
            Kind::GroupedExperts => GROUPED_EXPERTS,
        };
        source(&format!("{PARAMS}\n{unit}"), body)
    }
}

/// The uniform of a kernel on the [n, k] matrix of `ty` blocks, with `m` rows (or ids), checked
/// against the 32-bit indices the kernels use.
fn params(op: &str, ty: GgmlType, m: usize, n: usize, k: usize) -> Result<Params> {
    if decoder(ty).is_none() {
        return Err(Error::unsupported(op.to_string(), format!("no GPU kernel decodes {ty} blocks")));
    }
    if k == 0 || !k.is_multiple_of(ty.block_size()) {
        return Err(Error::shape(op, format!("{k} columns are not whole {ty} blocks")));
    }
    if (m * k).max(n * k) >= u32::MAX as usize {
        return Err(Error::backend(op, format!("[{m}, {k}] x [{n}, {k}] exceeds the GPU kernels' 32-bit indices")));
    }
    Ok(Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        units: (k / 32) as u32,
        scales: 0,
        experts: 1,
        offset: 0,
        base: 0,
        total: n as u32,
        pad: [0; 3],
    })
}

/// Where the blocks of `items` items (rows, or experts' [rows, k] matrices) of `ty` lie in the
/// words `words` views (`DeviceQMatrix`'s layout): item `i`'s blocks (of Q8_0, Q4_0, Q5_0 and
/// MXFP4: its quants) in words, and for those four types its scales, which follow every block's
/// quants, in scale slots (half-words, or bytes for MXFP4) so that a window can start inside a
/// word. Windows of these regions (`split`) bind a matrix over the binding limit.
fn regions(words: &Src, ty: GgmlType, items: usize, rows: usize, k: usize) -> Vec<Rows> {
    let units = rows * k / 32;
    let words_of =
        |stride: usize| Rows { offset: words.layout.offset(), count: items, stride, span: stride, elem_bytes: 4 };
    // The quants' words per unit, and the bytes of a scale slot.
    let (quants, slot) = match ty {
        GgmlType::Q8_0 => (8, 2),
        GgmlType::Q4_0 => (4, 2),
        GgmlType::Q5_0 => (5, 2),
        GgmlType::MXFP4 => (4, 1),
        GgmlType::Q4_1 => return vec![words_of(units * 5)],
        GgmlType::Q5_1 => return vec![words_of(units * 6)],
        GgmlType::FP8_E4M3 => return vec![words_of(units * 9)],
        GgmlType::Q4_K => return vec![words_of(units / 8 * 36)],
        GgmlType::Q5_K => return vec![words_of(units / 8 * 44)],
        _ => return vec![words_of(units / 8 * 53)], // Q6_K: `params` refused the others
    };
    let scales = (words.layout.offset() + items * units * quants) * 4 / slot;
    vec![words_of(units * quants), Rows { offset: scales, count: items, stride: units, span: units, elem_bytes: slot }]
}

/// One dispatch's part of a matrix: its items (rows or experts), the uniform with their offsets
/// set, and the bindings of their blocks (`w`) and scales (`s`: the blocks' binding again for
/// the types that keep their scales inside the blocks).
struct Part {
    items: Range<usize>,
    params: Params,
    blocks: Binding,
    scales: Binding,
}

/// The parts of the matrix `words` holds: the whole buffer once, or its windows (`split`).
fn parts(
    b: &GpuBackend,
    op: &str,
    words: &Src,
    ty: GgmlType,
    (items, rows, k): (usize, usize, usize),
    params: &Params,
) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    for windows in b.region_windows(op, words, &regions(words, ty, items, rows, k))? {
        let (blocks, scales) = (&windows[0], windows.last().unwrap_or(&windows[0]));
        let params = Params {
            offset: super::to_u32(op, blocks.offset)?,
            scales: if windows.len() > 1 { super::to_u32(op, scales.offset)? } else { 0 },
            base: blocks.rows.start as u32,
            ..*params
        };
        let (blocks_binding, scales_binding) = (blocks.binding.clone(), scales.binding.clone());
        parts.push(Part { items: blocks.rows.clone(), params, blocks: blocks_binding, scales: scales_binding });
    }
    Ok(parts)
}

/// Rows `ids` (u32 or i64) of the [n, k] matrix of `ty` blocks in `words`: [len(ids), k] f32. An
/// id past the table sets the error flag (reported at the next readback) and gives zeros. A
/// table over the binding limit is read a window of rows at a time, each dispatch writing the
/// rows of the ids in its window (as `index_select` does).
pub fn qindex_select(b: &GpuBackend, words: Src, ty: GgmlType, n: usize, k: usize, ids: Src) -> Result<BufferRef> {
    const OP: &str = "qindex_select";
    let m = ids.layout.elem_count();
    let params = params(OP, ty, m, n, k)?;
    let out = b.alloc(OP, m * k, DType::F32)?;
    if m == 0 {
        return Ok(Arc::new(out));
    }
    let (id_buffer, _keep) = super::index::ids_u32(b, OP, ids)?;
    let kernel = b.kernel(&Kernel { ty, kind: Kind::Rows })?;
    for Part { items: rows, params, blocks, scales } in parts(b, OP, &words, ty, (n, 1, k), &params)? {
        let params = Params { n: rows.len() as u32, ..params };
        let (ids, out, flag) =
            (Binding::whole(&id_buffer), Binding::whole(&out.buffer), Binding::whole(&b.error_flag()));
        b.dispatch_bound(OP, kernel.clone(), &params, vec![ids, blocks, scales, out, flag], grid_1d(m * k / 32))?;
    }
    Ok(Arc::new(out))
}

/// Row `r` of `x` [m, k] f32 times the transpose of expert `ids[r]`'s [n, k] matrix, the
/// `experts` matrices of `ty` blocks stacked in `words` as one [experts n, k] matrix: [m, n] f32.
/// An expert id past the stack sets the error flag and gives zeros. A few rows go one at a time
/// (`qexperts.wgsl`); many are grouped by expert (see the module's documentation), so each
/// expert's blocks are decoded once per tile of its rows. A stack over the binding limit is read
/// a window of whole experts at a time, each dispatch computing the rows of its experts.
#[allow(clippy::too_many_arguments)]
pub fn qexpert_matmul(
    b: &GpuBackend,
    x: Src,
    words: Src,
    ty: GgmlType,
    experts: usize,
    n: usize,
    k: usize,
    ids: Src,
) -> Result<BufferRef> {
    const OP: &str = "qexpert_matmul";
    let m = ids.layout.elem_count();
    if x.dtype != DType::F32 || x.layout.elem_count() != m * k {
        return Err(Error::shape(
            OP,
            format!("x of {} {} values against {m} ids and K {k}", x.layout.elem_count(), x.dtype),
        ));
    }
    // The scales follow every expert's quants: the stack is one [experts n, k] matrix.
    let mut params = params(OP, ty, m, experts * n, k)?;
    params.n = n as u32;
    params.total = experts as u32;
    let out = b.alloc(OP, m * n, DType::F32)?;
    if m * n == 0 {
        return Ok(Arc::new(out));
    }
    let (xb, _keep) = super::copy::contiguous_f32(b, OP, x)?;
    let (id_buffer, _keep_ids) = super::index::ids_u32(b, OP, ids)?;
    let parts = parts(b, OP, &words, ty, (experts, n, k), &params)?;
    let (xw, ow) = (Binding::whole(&xb), Binding::whole(&out.buffer));
    if super::matmul::expert_path(m, experts) == ExpertPath::PerRow {
        let kernel = b.kernel(&Kernel { ty, kind: Kind::Experts })?;
        for Part { items: experts, params, blocks, scales } in parts {
            let params = Params { experts: experts.len() as u32, ..params };
            let rest = [Binding::whole(&id_buffer), Binding::whole(&b.error_flag())];
            let bindings = [xw.clone(), blocks, scales, ow.clone()].into_iter().chain(rest).collect();
            b.dispatch_bound(OP, kernel.clone(), &params, bindings, groups_2d(m * n.div_ceil(MATVEC_ROWS)))?;
        }
        return Ok(Arc::new(out));
    }
    let blocks = n.div_ceil(TILE_N);
    if blocks > 65_535 {
        return Err(Error::backend(
            OP,
            format!("{n} columns make {blocks} blocks of {TILE_N}, past the GPU grid (65535)"),
        ));
    }
    let (plan, tiles) =
        super::matmul::expert_plan(b, OP, m, experts, n, Binding::whole(&id_buffer), Binding::whole(&out.buffer))?;
    let kernel = b.kernel(&Kernel { ty, kind: Kind::GroupedExperts })?;
    for Part { items: experts, params, blocks: blocks_w, scales } in parts {
        let params = Params { experts: experts.len() as u32, ..params };
        let bindings = vec![xw.clone(), blocks_w, scales, ow.clone(), Binding::whole(&plan.buffer)];
        b.dispatch_bound(OP, kernel.clone(), &params, bindings, [blocks as u32, tiles, 1])?;
    }
    Ok(Arc::new(out))
}

/// `x` [m, k] f32 times the transpose of the [n, k] matrix of `ty` blocks in `words`. A matrix
/// over the binding limit (an LM head) is read a window of rows at a time, each dispatch writing
/// its columns of the output in place.
pub fn qmatmul(b: &GpuBackend, x: Src, words: Src, ty: GgmlType, n: usize, k: usize) -> Result<BufferRef> {
    const OP: &str = "qmatmul";
    if x.dtype != DType::F32 || words.dtype != DType::U32 {
        return Err(Error::dtype(
            OP,
            format!("needs f32 activations and u32 words, got {} and {}", x.dtype, words.dtype),
        ));
    }
    if k == 0 || !x.layout.elem_count().is_multiple_of(k) {
        return Err(Error::shape(OP, format!("{} activations against [{n}, {k}] of {ty}", x.layout.elem_count())));
    }
    let m = x.layout.elem_count() / k;
    let params = params(OP, ty, m, n, k)?;
    let out = b.alloc(OP, m * n, DType::F32)?;
    if m * n == 0 {
        return Ok(Arc::new(out));
    }
    let (xb, _keep) = super::copy::contiguous_f32(b, OP, x)?;
    let tiled = m > MATVEC_MAX_M;
    let kernel = b.kernel(&Kernel { ty, kind: if tiled { Kind::Tiled } else { Kind::Matvec } })?;
    if tiled && (n.div_ceil(TILE_N) > 65_535 || m.div_ceil(TILE_M) > 65_535) {
        return Err(Error::backend(OP, format!("a {m}x{n} output exceeds the GPU grid")));
    }
    // Each part's rows are the output's columns base..: the kernels write them in place.
    for Part { items: rows, params, blocks, scales } in parts(b, OP, &words, ty, (n, 1, k), &params)? {
        let params = Params { n: rows.len() as u32, ..params };
        let groups = if tiled {
            [rows.len().div_ceil(TILE_N) as u32, m.div_ceil(TILE_M) as u32, 1]
        } else {
            groups_2d(rows.len().div_ceil(MATVEC_ROWS))
        };
        let bindings = vec![Binding::whole(&xb), blocks, scales, Binding::whole(&out.buffer)];
        b.dispatch_bound(OP, kernel.clone(), &params, bindings, groups)?;
    }
    Ok(Arc::new(out))
}
