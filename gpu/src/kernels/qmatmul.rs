//! Launchers of the products on quantized blocks (`tensor::quant::DeviceQMatrix`), and of their
//! row gather (an embedding table kept as blocks, `qrows.wgsl`): the weights stay in their GGUF
//! blocks on the device (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K, MXFP4, FP8_E4M3) and each kernel decodes a 32-element unit at a
//! time with ggml's formulas (`qunit_<type>.wgsl`), never an f32 copy of the matrix. Up to
//! [`MATVEC_MAX_M`] activation rows (decode, small batches) take `qmatvec.wgsl`, which reads
//! each weight once for all rows; more take the tiled `qmatmul.wgsl`. The mixture-of-experts
//! product takes the matrix-vector `qexperts.wgsl` per row for a few rows, and for many the plan
//! of the f32 experts' grouped product (`matmul::expert_plan`) and the tiled `qexpert_gemm.wgsl`,
//! chosen as that product chooses (`matmul::expert_path`). The CPU's counterparts are
//! `tensor::quant::qmatmul`.
//! Tolerance against the CPU's f32 product of the dequantized matrix: ~1e-6 relative *
//! sqrt(K) (the decoded values are identical; only the order of the f32 sums differs).

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::quant::GgmlType;
use tensor::{BufferRef, DType, Error, Result, Src};

use super::matmul::ExpertPath;
use super::{grid_1d, groups_2d, source};
use crate::backend::GpuBackend;
use crate::pipelines::{Access, KernelKey};
use crate::recorder::Binding;

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
    pad: [u32; 2],
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
            Kind::Rows => &[Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite],
            Kind::Experts => &[Access::Read, Access::Read, Access::ReadWrite, Access::Read, Access::ReadWrite],
            Kind::GroupedExperts => &[Access::Read, Access::Read, Access::ReadWrite, Access::Read],
            Kind::Matvec | Kind::Tiled => &[Access::Read, Access::Read, Access::ReadWrite],
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
        return Err(Error::unsupported(op, format!("no GPU kernel decodes {ty} blocks")));
    }
    if k == 0 || !k.is_multiple_of(ty.block_size()) {
        return Err(Error::shape(op, format!("{k} columns are not whole {ty} blocks")));
    }
    if (m * k).max(n * k) >= u32::MAX as usize {
        return Err(Error::backend(op, format!("[{m}, {k}] x [{n}, {k}] exceeds the GPU kernels' 32-bit indices")));
    }
    let blocks = n * k / ty.block_size();
    let scales = match ty {
        GgmlType::Q8_0 => blocks * 8,
        GgmlType::Q4_0 | GgmlType::MXFP4 => blocks * 4,
        _ => 0,
    };
    Ok(Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        units: (k / 32) as u32,
        scales: scales as u32,
        experts: 1,
        pad: [0; 2],
    })
}

/// Rows `ids` (u32 or i64) of the [n, k] matrix of `ty` blocks in `words`: [len(ids), k] f32. An
/// id past the table sets the error flag (reported at the next readback) and gives zeros.
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
    let wb = b.buffer(OP, &words)?.buffer.clone();
    let buffers = [&id_buffer, &wb, &out.buffer, &b.error_flag()];
    b.dispatch(OP, kernel, &params, &buffers, grid_1d(m * k / 32))?;
    Ok(Arc::new(out))
}

/// Row `r` of `x` [m, k] f32 times the transpose of expert `ids[r]`'s [n, k] matrix, the
/// `experts` matrices of `ty` blocks stacked in `words` as one [experts n, k] matrix: [m, n] f32.
/// An expert id past the stack sets the error flag and gives zeros. A few rows go one at a time
/// (`qexperts.wgsl`); many are grouped by expert (see the module's documentation), so each
/// expert's blocks are decoded once per tile of its rows.
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
    params.experts = experts as u32;
    let out = b.alloc(OP, m * n, DType::F32)?;
    if m * n == 0 {
        return Ok(Arc::new(out));
    }
    let (xb, _keep) = super::copy::contiguous_f32(b, OP, x)?;
    let (id_buffer, _keep_ids) = super::index::ids_u32(b, OP, ids)?;
    let wb = b.buffer(OP, &words)?.buffer.clone();
    if super::matmul::expert_path(m, experts) == ExpertPath::PerRow {
        let kernel = b.kernel(&Kernel { ty, kind: Kind::Experts })?;
        let buffers = [&xb, &wb, &out.buffer, &id_buffer, &b.error_flag()];
        b.dispatch(OP, kernel, &params, &buffers, groups_2d(m * n.div_ceil(MATVEC_ROWS)))?;
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
    b.dispatch(OP, kernel, &params, &[&xb, &wb, &out.buffer, &plan.buffer], [blocks as u32, tiles, 1])?;
    Ok(Arc::new(out))
}

/// `x` [m, k] f32 times the transpose of the [n, k] matrix of `ty` blocks in `words`.
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
    let wb = b.buffer(OP, &words)?.buffer.clone();
    let tiled = m > MATVEC_MAX_M;
    let kernel = b.kernel(&Kernel { ty, kind: if tiled { Kind::Tiled } else { Kind::Matvec } })?;
    let groups = if tiled {
        let (gx, gy) = (n.div_ceil(TILE_N), m.div_ceil(TILE_M));
        if gx > 65_535 || gy > 65_535 {
            return Err(Error::backend(OP, format!("a {m}x{n} output exceeds the GPU grid")));
        }
        [gx as u32, gy as u32, 1]
    } else {
        groups_2d(n.div_ceil(MATVEC_ROWS))
    };
    b.dispatch(OP, kernel, &params, &[&xb, &wb, &out.buffer], groups)?;
    Ok(Arc::new(out))
}
