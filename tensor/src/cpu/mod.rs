//! The CPU backend: plain Rust kernels, generic over f32/f64 through `num-traits`, parallel with
//! rayon once a tensor is large. They are the reference every other backend is tested against.

mod aligned;
pub mod bf16_panels;
pub mod cache_rows;
pub mod gemm_bf16;
pub mod gemm_bf16_amx;
pub(crate) mod huge_pages;
pub mod isa;
pub mod math;
pub mod matvec;
pub mod matvec_bf16;
pub(crate) mod pool;
pub mod profile;
pub mod strided;
pub mod transpose;
pub mod vmath;

mod attention;
mod attention_split;
mod binary;
mod compare;
mod concat;
mod copy;
mod cumsum;
mod glu;
mod index;
pub mod matmul;
mod paged_attention;
mod reduce;
mod rms_norm;
mod rope;
mod softmax;
mod topk;
mod unary;

/// Frees the CPU's kept output buffers beyond what a decoding step needs (see `pool`): for the
/// end of a prompt's prefill.
pub use pool::shrink as shrink_pool;

use std::sync::RwLockReadGuard;

use crate::backend::{AttentionSpec, GluActivation, PagedKv, RmsNormSpec, Src};
use crate::ops::{BinaryOp, CmpOp, ReduceOp, UnaryOp};
use crate::{Backend, Buffer, BufferRef, CpuBuffer, DType, Error, HostData, Layout, Result};

/// Runs `$body` with `$v` bound to the f32 or f64 vector of a `HostData`, wrapping the result
/// back into `HostData` of the same type; any other dtype is an error naming the op.
macro_rules! float_map {
    ($op:expr, $data:expr, $v:ident => $body:expr) => {
        match $data {
            HostData::F32($v) => HostData::F32($body),
            HostData::F64($v) => HostData::F64($body),
            other => return Err(Error::unsupported_dtype($op, other.dtype())),
        }
    };
}
pub(crate) use float_map;

/// The CPU device.
#[derive(Debug, Default)]
pub struct CpuBackend;

/// The host data behind a view, or an error if the buffer belongs to another device.
pub(crate) fn read<'a>(op: &str, src: &Src<'a>) -> Result<RwLockReadGuard<'a, HostData>> {
    src.buffer
        .as_any()
        .downcast_ref::<CpuBuffer>()
        .map(|b| b.read())
        .ok_or_else(|| Error::device(op, "a tensor on another device was passed to the CPU backend"))
}

/// Runs `f` on a CPU tensor's values where they lie, in row-major order, without copying them
/// (a strided view is made contiguous first). Kernels that take plain slices read large
/// operands this way: a copy of a prefill's activations, or of a weight being packed, costs a
/// pass over memory and as many fresh pages.
pub(crate) fn with_values<T: crate::Element, R>(op: &str, t: &crate::Tensor, f: impl FnOnce(&[T]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let src = t.src();
    let host = read(op, &src)?;
    let values = host.as_slice::<T>().ok_or_else(|| Error::unsupported_dtype(op, t.dtype()))?;
    let at = src.layout.offset();
    Ok(f(&values[at..at + t.elem_count()]))
}

/// A norm's f32 weight of `d` values from its (contiguous) buffer, or None without one; another
/// dtype is `op`'s unsupported error (the tensor layer then runs the unfused ops).
fn f32_weight<'a>(
    op: &'static str,
    data: Option<&'a HostData>,
    src: Option<&Src>,
    d: usize,
) -> Result<Option<&'a [f32]>> {
    match (data, src) {
        (Some(HostData::F32(w)), Some(lw)) => w
            .get(lw.layout.offset()..)
            .and_then(|w| w.get(..d))
            .map(Some)
            .ok_or_else(|| Error::unsupported(op, "a weight of the rows' length")),
        (Some(_), _) => Err(Error::unsupported(op, "an f32 weight")),
        _ => Ok(None),
    }
}

/// The buffer of an op's result: a recycled cell when one is free ([`pool::buffer`]).
fn output(data: HostData) -> BufferRef {
    pool::buffer(data)
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn is_cpu(&self) -> bool {
        true
    }

    fn upload(&self, data: &HostData) -> Result<BufferRef> {
        Ok(output(data.clone()))
    }

    fn upload_owned(&self, data: HostData) -> Result<BufferRef> {
        Ok(output(data))
    }

    fn download(&self, src: Src) -> Result<HostData> {
        copy::copy(&*read("download", &src)?, src.layout)
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn full(&self, dtype: DType, len: usize, value: f64) -> Result<BufferRef> {
        Ok(output(HostData::filled(dtype, len, value)))
    }

    fn copy(&self, src: Src) -> Result<BufferRef> {
        Ok(output(copy::copy(&*read("copy", &src)?, src.layout)?))
    }

    fn copy_into(&self, dst: &dyn Buffer, dst_layout: &Layout, src: Src) -> Result<()> {
        let dst = dst
            .as_any()
            .downcast_ref::<CpuBuffer>()
            .ok_or_else(|| Error::device("copy_into", "destination is not a CPU buffer"))?;
        // Read the source first: it may be a view of the destination itself.
        let values = copy::copy(&*read("copy_into", &src)?, src.layout)?;
        copy::write_strided(&mut dst.write(), dst_layout, &values)?;
        pool::recycle(values);
        Ok(())
    }

    fn copy_cast_into(&self, dst: &dyn Buffer, dst_layout: &Layout, dst_dtype: DType, src: Src) -> Result<()> {
        let dst = dst
            .as_any()
            .downcast_ref::<CpuBuffer>()
            .ok_or_else(|| Error::device("copy_cast_into", "destination is not a CPU buffer"))?;
        let values = copy::copy(&*read("copy_cast_into", &src)?, src.layout)?;
        let cast = values.cast(dst_dtype);
        pool::recycle(values);
        copy::write_strided(&mut dst.write(), dst_layout, &cast)?;
        pool::recycle(cast);
        Ok(())
    }

    fn cast(&self, src: Src, dtype: DType) -> Result<BufferRef> {
        let copied = copy::copy(&*read("cast", &src)?, src.layout)?;
        let cast = copied.cast(dtype);
        pool::recycle(copied);
        Ok(output(cast))
    }

    fn unary(&self, op: UnaryOp, src: Src) -> Result<BufferRef> {
        Ok(output(unary::unary(op, &*read(op.name(), &src)?, src.layout)?))
    }

    fn binary(&self, op: BinaryOp, lhs: Src, rhs: Src) -> Result<BufferRef> {
        let (a, b) = (read(op.name(), &lhs)?, read(op.name(), &rhs)?);
        Ok(output(binary::binary(op, &a, lhs.layout, &b, rhs.layout)?))
    }

    fn compare(&self, op: CmpOp, lhs: Src, rhs: Src) -> Result<BufferRef> {
        let (a, b) = (read(op.name(), &lhs)?, read(op.name(), &rhs)?);
        Ok(output(compare::compare(op, &a, lhs.layout, &b, rhs.layout)?))
    }

    fn where_cond(&self, cond: Src, on_true: Src, on_false: Src) -> Result<BufferRef> {
        const OP: &str = "where_cond";
        let (c, t, f) = (read(OP, &cond)?, read(OP, &on_true)?, read(OP, &on_false)?);
        Ok(output(compare::where_cond(&c, cond.layout, &t, on_true.layout, &f, on_false.layout)?))
    }

    fn reduce(&self, op: ReduceOp, src: Src, axis: usize) -> Result<BufferRef> {
        Ok(output(reduce::reduce(op, &*read(op.name(), &src)?, src.layout, axis)?))
    }

    fn cumsum(&self, src: Src, axis: usize) -> Result<BufferRef> {
        Ok(output(cumsum::cumsum(&*read("cumsum", &src)?, src.layout, axis)?))
    }

    fn softmax(&self, src: Src, log: bool) -> Result<BufferRef> {
        Ok(output(softmax::softmax(&*read("softmax", &src)?, src.layout, log)?))
    }

    fn topk(&self, src: Src, k: usize) -> Result<(BufferRef, BufferRef)> {
        let (values, indices) = topk::topk(&*read("topk", &src)?, src.layout, k)?;
        Ok((output(values), output(indices)))
    }

    fn matmul(&self, lhs: Src, rhs: Src) -> Result<BufferRef> {
        let (a, b) = (read("matmul", &lhs)?, read("matmul", &rhs)?);
        Ok(output(matmul::matmul(&a, lhs.layout, &b, rhs.layout)?))
    }

    fn expert_matmul(&self, x: Src, weights: Src, ids: Src) -> Result<BufferRef> {
        const OP: &str = "expert_matmul";
        let (a, w, i) = (read(OP, &x)?, read(OP, &weights)?, read(OP, &ids)?);
        Ok(output(matmul::expert_matmul(&a, x.layout, &w, weights.layout, &i, ids.layout)?))
    }

    fn index_select(&self, src: Src, axis: usize, ids: Src) -> Result<BufferRef> {
        let (s, i) = (read("index_select", &src)?, read("index_select", &ids)?);
        Ok(output(index::index_select(&s, src.layout, axis, &i, ids.layout)?))
    }

    fn index_add(&self, dst: Src, axis: usize, ids: Src, src: Src) -> Result<BufferRef> {
        const OP: &str = "index_add";
        let (d, i, s) = (read(OP, &dst)?, read(OP, &ids)?, read(OP, &src)?);
        Ok(output(index::index_add(&d, dst.layout, axis, &i, ids.layout, &s, src.layout)?))
    }

    fn gather(&self, src: Src, axis: usize, index: Src) -> Result<BufferRef> {
        let (s, i) = (read("gather", &src)?, read("gather", &index)?);
        Ok(output(index::gather(&s, src.layout, axis, &i, index.layout)?))
    }

    fn scatter_add(&self, dst: Src, axis: usize, index: Src, src: Src) -> Result<BufferRef> {
        const OP: &str = "scatter_add";
        let (d, i, s) = (read(OP, &dst)?, read(OP, &index)?, read(OP, &src)?);
        Ok(output(index::scatter_add(&d, dst.layout, axis, &i, index.layout, &s, src.layout)?))
    }

    fn concat(&self, parts: &[Src], axis: usize) -> Result<BufferRef> {
        let guards = parts.iter().map(|p| read("cat", p)).collect::<Result<Vec<_>>>()?;
        let views: Vec<(&HostData, &Layout)> = guards.iter().zip(parts).map(|(g, p)| (&**g, p.layout)).collect();
        Ok(output(concat::concat(&views, axis)?))
    }

    fn rms_norm(&self, x: Src, weight: Option<Src>, spec: RmsNormSpec) -> Result<BufferRef> {
        let xs = read("rms_norm", &x)?;
        let ws = weight.as_ref().map(|w| read("rms_norm", w)).transpose()?;
        Ok(output(rms_norm::rms_norm(&xs, x.layout, ws.as_deref().zip(weight.map(|w| w.layout)), spec)?))
    }

    fn rope(&self, x: Src, cos: Src, sin: Src, interleaved: bool) -> Result<BufferRef> {
        let (xs, c, s) = (read("rope", &x)?, read("rope", &cos)?, read("rope", &sin)?);
        Ok(output(rope::rope(&xs, x.layout, (&c, cos.layout.offset()), (&s, sin.layout.offset()), interleaved)?))
    }

    fn rms_norm_rope(
        &self,
        x: Src,
        weight: Option<Src>,
        spec: RmsNormSpec,
        (cos, sin, interleaved): (Src, Src, bool),
    ) -> Result<BufferRef> {
        const OP: &str = "rms_norm_rope";
        let (xs, c, s) = (read(OP, &x)?, read(OP, &cos)?, read(OP, &sin)?);
        let ws = weight.as_ref().map(|w| read(OP, w)).transpose()?;
        let (HostData::F32(xv), HostData::F32(cv), HostData::F32(sv)) = (&*xs, &*c, &*s) else {
            return Err(Error::unsupported(OP, "f32 rows and tables"));
        };
        let d = x.layout.dims().last().copied().unwrap_or(0);
        let w = f32_weight(OP, ws.as_deref(), weight.as_ref(), d)?;
        let tables = (&cv[cos.layout.offset()..], &sv[sin.layout.offset()..]);
        Ok(output(HostData::F32(rope::rms_norm_rope(xv, x.layout, w, spec, tables, interleaved))))
    }

    fn add_rms_norm(&self, x: Src, r: Src, weight: Option<Src>, spec: RmsNormSpec) -> Result<(BufferRef, BufferRef)> {
        const OP: &str = "add_rms_norm";
        let (xs, rs) = (read(OP, &x)?, read(OP, &r)?);
        let ws = weight.as_ref().map(|w| read(OP, w)).transpose()?;
        let (HostData::F32(xv), HostData::F32(rv)) = (&*xs, &*rs) else {
            return Err(Error::unsupported(OP, "f32 rows"));
        };
        let (n, d) = (x.layout.elem_count(), x.layout.dims().last().copied().unwrap_or(0));
        let (Some(xr), Some(rr)) = (x.layout.contiguous_range(), r.layout.contiguous_range()) else {
            return Err(Error::unsupported(OP, "contiguous rows"));
        };
        let w = f32_weight(OP, ws.as_deref(), weight.as_ref(), d)?;
        debug_assert_eq!((xr.len(), rr.len()), (n, n));
        let (h, normed) = rms_norm::add_rms_norm(&xv[xr], &rv[rr], d, w, spec);
        Ok((output(HostData::F32(h)), output(HostData::F32(normed))))
    }

    fn glu(&self, gate: Src, up: Src, act: GluActivation) -> Result<BufferRef> {
        let (g, u) = (read("glu", &gate)?, read("glu", &up)?);
        Ok(output(glu::glu(&g, gate.layout, &u, up.layout, act)?))
    }

    fn attention(&self, q: Src, k: Src, v: Src, sinks: Option<Src>, spec: &AttentionSpec) -> Result<BufferRef> {
        mixed_kv("attention", &q, &k)?;
        let (qs, ks, vs) = (read("attention", &q)?, read("attention", &k)?, read("attention", &v)?);
        let sinks = sinks.map(|s| read("attention", &s).map(|d| (d, s.layout))).transpose()?;
        let sinks = sinks.as_ref().map(|(d, l)| (&**d, *l));
        Ok(output(attention::attention(&qs, q.layout, &ks, k.layout, &vs, v.layout, sinks, spec)?))
    }

    fn paged_attention(&self, q: Src, kv: PagedKv, sinks: Option<Src>, spec: &AttentionSpec) -> Result<BufferRef> {
        const OP: &str = "paged_attention";
        mixed_kv(OP, &q, &kv.k_pool)?;
        let (qs, ks, vs) = (read(OP, &q)?, read(OP, &kv.k_pool)?, read(OP, &kv.v_pool)?);
        let sinks = sinks.map(|s| read(OP, &s).map(|d| (d, s.layout))).transpose()?;
        let sinks = sinks.as_ref().map(|(d, l)| (&**d, *l));
        let (lk, lv) = (kv.k_pool.layout, kv.v_pool.layout);
        Ok(output(paged_attention::paged_attention(&qs, q.layout, &ks, lk, &vs, lv, sinks, kv.blocks, kv.len, spec)?))
    }
}

/// The CPU kernels take q, k and v of one dtype, or a half-precision KV cache under f32 queries
/// for a decoding step's few query rows ([`attention::HALF_KV_MAX_ROWS`]), read as stored.
/// Longer queries (a prefill) over a half cache are refused as unsupported, so the tensor layer
/// widens the keys and values once for the call instead.
fn mixed_kv(op: &'static str, q: &Src, k: &Src) -> Result<()> {
    let rows = q.layout.dims()[2];
    let half_step = q.dtype == DType::F32 && k.dtype.is_half() && rows <= attention::HALF_KV_MAX_ROWS;
    if q.dtype != k.dtype && !half_step {
        return Err(Error::unsupported(op, format!("{} keys under {} queries over {rows} rows", k.dtype, q.dtype)));
    }
    Ok(())
}
