//! Launcher of the fused attention kernel (with optional attention sinks, gpt-oss). Tolerance against the CPU ~1e-5 relative (softmax
//! computed online, sums in another order).

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{AttentionSpec, BufferRef, DType, Error, Result, Src};

use super::{groups_2d, source};
use crate::backend::GpuBackend;
use crate::pipelines::Access;

const BODY: &str = include_str!("attention.wgsl");
/// Largest head dim the kernel keeps in workgroup memory (MLA's absorbed path needs 576).
const MAX_DIM: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    b: u32,
    hq: u32,
    tq: u32,
    d: u32,
    hkv: u32,
    tk: u32,
    dv: u32,
    group: u32,
    k: [u32; 4],
    v: [u32; 4],
    scale: f32,
    softcap: f32,
    causal: u32,
    q_start: u32,
    k_start: u32,
    window: u32,
    chunk: u32,
    has_sinks: u32,
}

fn u32_of(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::backend("attention", format!("{v} exceeds the GPU kernels' 32-bit indices")))
}

pub fn attention(
    b: &GpuBackend,
    q: Src,
    k: Src,
    v: Src,
    sinks: Option<Src>,
    spec: &AttentionSpec,
) -> Result<BufferRef> {
    const OP: &str = "attention";
    for t in [&q, &k, &v].into_iter().chain(sinks.as_ref()) {
        if t.dtype != DType::F32 {
            return Err(Error::unsupported_dtype(OP, t.dtype));
        }
    }
    let qd = q.layout.dims();
    let (batch, hq, tq, d) = (qd[0], qd[1], qd[2], qd[3]);
    let (hkv, tk, dv) = (k.layout.dims()[1], k.layout.dims()[2], v.layout.dims()[3]);
    if d > MAX_DIM || dv > MAX_DIM {
        return Err(Error::unsupported(OP, format!("head dims up to {MAX_DIM} on the GPU, got {d} and {dv}")));
    }
    let q_buffer = if q.layout.is_contiguous() && q.layout.offset() == 0 {
        None
    } else {
        Some(super::copy::contiguous(b, OP, q)?)
    };
    let q_arc = match &q_buffer {
        Some(c) => c.buffer.clone(),
        None => b.buffer(OP, &q)?.buffer.clone(),
    };
    let rows = batch * hq * tq;
    let out = b.alloc(OP, rows * dv, DType::F32)?;
    if rows * dv == 0 {
        return Ok(Arc::new(out));
    }
    let (ks, vs) = (k.layout.strides(), v.layout.strides());
    let mask = spec.mask;
    let params = Params {
        b: batch as u32,
        hq: hq as u32,
        tq: tq as u32,
        d: d as u32,
        hkv: hkv as u32,
        tk: tk as u32,
        dv: dv as u32,
        group: (hq / hkv.max(1)) as u32,
        k: [u32_of(k.layout.offset())?, u32_of(ks[0])?, u32_of(ks[1])?, u32_of(ks[2])?],
        v: [u32_of(v.layout.offset())?, u32_of(vs[0])?, u32_of(vs[1])?, u32_of(vs[2])?],
        scale: spec.scale as f32,
        softcap: spec.softcap.unwrap_or(0.0) as f32,
        causal: mask.causal as u32,
        q_start: u32_of(mask.q_start)?,
        k_start: u32_of(mask.k_start)?,
        window: u32_of(mask.window.unwrap_or(0))?,
        chunk: u32_of(mask.chunk.unwrap_or(0))?,
        has_sinks: sinks.is_some() as u32,
    };
    // Sinks come contiguous from the tensor layer; without them q stands in, never read.
    let sinks_buffer = match &sinks {
        Some(s) if s.layout.is_contiguous() && s.layout.offset() == 0 => b.buffer(OP, s)?.buffer.clone(),
        Some(s) => super::copy::contiguous(b, OP, *s)?.buffer.clone(),
        None => q_arc.clone(),
    };
    let access = [Access::Read, Access::Read, Access::Read, Access::Read, Access::ReadWrite];
    let kernel = b.kernel("attention", &access, || source(super::unary::MATH, BODY))?;
    b.dispatch(
        OP,
        kernel,
        &params,
        &[&q_arc, &b.buffer(OP, &k)?.buffer, &b.buffer(OP, &v)?.buffer, &sinks_buffer, &out.buffer],
        groups_2d(rows),
    )?;
    Ok(Arc::new(out))
}
