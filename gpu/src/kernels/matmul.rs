//! Launchers of matmul (tiled, with a separate matrix-vector kernel when M = 1) and of the
//! mixture-of-experts matmul. The weight operand may be f32, bf16 or f16 (read packed and widened
//! in the kernel, accumulated in f32), so half-precision weights halve memory traffic on any
//! adapter. Tolerance against the CPU: relative ~1e-6 * sqrt(K) (f32 sums in another order).

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Error, Result, Src};

use super::{grid_1d, groups_2d, source};
use crate::backend::GpuBackend;
use crate::pipelines::Access;

const TILED: &str = include_str!("matmul.wgsl");
const MATVEC: &str = include_str!("matvec.wgsl");
const EXPERT: &str = include_str!("expert.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct TiledParams {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a: [u32; 4],
    b: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MatvecParams {
    n: u32,
    k: u32,
    batch: u32,
    pad0: u32,
    a_offset: u32,
    a_batch: u32,
    a_col: u32,
    pad1: u32,
    b: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ExpertParams {
    rows: u32,
    n: u32,
    k: u32,
    experts: u32,
    w: [u32; 4],
}

/// The weight operand's element type and WGSL `load_b`.
fn weight_reader(dtype: DType) -> Result<(&'static str, &'static str)> {
    Ok(match dtype {
        DType::F32 => ("f32", "alias W = f32;\nfn load_b(i: u32) -> f32 { return b[i]; }"),
        DType::BF16 => (
            "bf16",
            "alias W = u32;\nfn load_b(i: u32) -> f32 { return bf16_to_f32((b[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu); }",
        ),
        DType::F16 => (
            "f16",
            "alias W = u32;\nfn load_b(i: u32) -> f32 { return f16_to_f32((b[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu); }",
        ),
        other => return Err(Error::dtype("matmul", format!("weights of dtype {other} are not supported on the GPU"))),
    })
}

fn u32s(op: &str, values: &[usize]) -> Result<Vec<u32>> {
    values
        .iter()
        .map(|&v| {
            u32::try_from(v).map_err(|_| Error::backend(op, format!("{v} exceeds the GPU kernels' 32-bit indices")))
        })
        .collect()
}

pub fn matmul(b: &GpuBackend, lhs: Src, rhs: Src) -> Result<BufferRef> {
    const OP: &str = "matmul";
    if lhs.dtype != DType::F32 {
        return Err(Error::dtype(OP, format!("activations must be f32 on the GPU, got {}", lhs.dtype)));
    }
    let (tag, reader) = weight_reader(rhs.dtype)?;
    let (ld, ls) = (lhs.layout.dims(), lhs.layout.strides());
    let (rd, rs) = (rhs.layout.dims(), rhs.layout.strides());
    let (batch, m, k, n) = (ld[0], ld[1], ld[2], rd[2]);
    if batch > 65_535 {
        return Err(Error::backend(OP, format!("a batch of {batch} matrices exceeds the GPU grid (65535)")));
    }
    let out = b.alloc(OP, batch * m * n, DType::F32)?;
    if batch * m * n == 0 {
        return Ok(Arc::new(out));
    }
    let a_buffer = b.buffer(OP, &lhs)?.buffer.clone();
    let b_buffer = b.buffer(OP, &rhs)?.buffer.clone();
    let bv = u32s(OP, &[rhs.layout.offset(), rs[0], rs[1], rs[2]])?;
    if m == 1 {
        let k_contiguous = rs[1] == 1 && !(rs[2] == 1 && n > 1 && k == 1);
        let kernel = b.kernel(
            &format!("matvec/{tag}/{k_contiguous}"),
            &[Access::Read, Access::Read, Access::ReadWrite],
            || source(&format!("{reader}\nconst B_K_CONTIGUOUS: bool = {k_contiguous};"), MATVEC),
        )?;
        let av = u32s(OP, &[lhs.layout.offset(), ls[0], ls[2]])?;
        let params = MatvecParams {
            n: n as u32,
            k: k as u32,
            batch: batch as u32,
            pad0: 0,
            a_offset: av[0],
            a_batch: av[1],
            a_col: av[2],
            pad1: 0,
            b: [bv[0], bv[1], bv[2], bv[3]],
        };
        let mut groups = if k_contiguous { groups_2d(n) } else { groups_2d(n.div_ceil(256)) };
        groups[2] = batch as u32;
        b.dispatch(OP, kernel, &params, &[&a_buffer, &b_buffer, &out.buffer], groups)?;
    } else {
        let (a_k, b_n) = (ls[2] == 1, rs[2] == 1);
        let kernel =
            b.kernel(&format!("matmul/{tag}/{a_k}/{b_n}"), &[Access::Read, Access::Read, Access::ReadWrite], || {
                source(
                    &format!("{reader}\nconst A_K_CONTIGUOUS: bool = {a_k};\nconst B_N_CONTIGUOUS: bool = {b_n};"),
                    TILED,
                )
            })?;
        let av = u32s(OP, &[lhs.layout.offset(), ls[0], ls[1], ls[2]])?;
        let params = TiledParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            batch: batch as u32,
            a: [av[0], av[1], av[2], av[3]],
            b: [bv[0], bv[1], bv[2], bv[3]],
        };
        let groups = [n.div_ceil(64) as u32, m.div_ceil(64) as u32, batch as u32];
        if groups[0] > 65_535 || groups[1] > 65_535 {
            return Err(Error::backend(OP, format!("a {m}x{n} output exceeds the GPU grid")));
        }
        b.dispatch(OP, kernel, &params, &[&a_buffer, &b_buffer, &out.buffer], groups)?;
    }
    Ok(Arc::new(out))
}

pub fn expert_matmul(b: &GpuBackend, x: Src, weights: Src, ids: Src) -> Result<BufferRef> {
    const OP: &str = "expert_matmul";
    if x.dtype != DType::F32 {
        return Err(Error::unsupported_dtype(OP, x.dtype));
    }
    let (tag, reader) = weight_reader(weights.dtype)?;
    let (rows, k) = (x.layout.dims()[0], x.layout.dims()[1]);
    let (experts, n) = (weights.layout.dims()[0], weights.layout.dims()[2]);
    let xs = super::copy::contiguous(b, OP, x)?;
    let id_buffer = match ids.dtype {
        DType::U32 | DType::I64 => super::copy::cast(b, ids, DType::U32)?,
        other => return Err(Error::dtype(OP, format!("ids must be u32 or i64, got {other}"))),
    };
    let id_buffer = id_buffer
        .as_any()
        .downcast_ref::<crate::pool::GpuBuffer>()
        .map(|g| g.buffer.clone())
        .ok_or_else(|| Error::backend(OP, "foreign buffer"))?;
    let out = b.alloc(OP, rows * n, DType::F32)?;
    if rows * n > 0 {
        let kernel = b.kernel(
            &format!("expert/{tag}"),
            &[Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite],
            || source(reader, EXPERT),
        )?;
        let ws = weights.layout.strides();
        let w = u32s(OP, &[weights.layout.offset(), ws[0], ws[1], ws[2]])?;
        let params = ExpertParams {
            rows: rows as u32,
            n: n as u32,
            k: k as u32,
            experts: experts as u32,
            w: [w[0], w[1], w[2], w[3]],
        };
        b.dispatch(
            OP,
            kernel,
            &params,
            &[&xs.buffer, &b.buffer(OP, &weights)?.buffer, &id_buffer, &out.buffer, &b.error_flag()],
            grid_1d(rows * n),
        )?;
    }
    Ok(Arc::new(out))
}
