//! CPU kernel of attention over a paged KV cache: a sequence's keys and values sit in
//! fixed-size blocks of a shared pool, listed by its block table. The kernel walks the table in
//! place (nothing is gathered): for each kv head, the queries of its whole GQA group are scored
//! block by block against the keys they can see, softmaxed per row, and the values are summed
//! block by block into the output. Scores are [group * rows, keys]; the pool is never copied.

use rayon::prelude::*;

use crate::backend::AttentionSpec;
use crate::{Error, FloatElement, HostData, Layout, Result};

use super::attention::exp_shifted_sum;
use super::strided;

/// Query rows (per head) per task.
const QUERY_BLOCK: usize = 64;

#[allow(clippy::too_many_arguments)]
pub fn paged_attention(
    q: &HostData,
    lq: &Layout,
    k: &HostData,
    lk: &Layout,
    v: &HostData,
    lv: &Layout,
    sinks: Option<(&HostData, &Layout)>,
    blocks: &[u32],
    len: usize,
    spec: &AttentionSpec,
) -> Result<HostData> {
    let table = Table { blocks, len, size: lk.dims()[2] };
    Ok(match (q, k, v, sinks) {
        (HostData::F32(q), HostData::F32(k), HostData::F32(v), None) => {
            HostData::F32(attend(q, lq, k, lk, v, lv, None, &table, spec))
        }
        (HostData::F32(q), HostData::F32(k), HostData::F32(v), Some((HostData::F32(s), ls))) => {
            HostData::F32(attend(q, lq, k, lk, v, lv, Some(strided::gather(s, ls)), &table, spec))
        }
        (HostData::F64(q), HostData::F64(k), HostData::F64(v), None) => {
            HostData::F64(attend(q, lq, k, lk, v, lv, None, &table, spec))
        }
        (HostData::F64(q), HostData::F64(k), HostData::F64(v), Some((HostData::F64(s), ls))) => {
            HostData::F64(attend(q, lq, k, lk, v, lv, Some(strided::gather(s, ls)), &table, spec))
        }
        (q, _, _, _) => return Err(Error::unsupported_dtype("paged_attention", q.dtype())),
    })
}

/// A sequence's block table: key row `j < len` is row `j % size` of block `blocks[j / size]`.
struct Table<'a> {
    blocks: &'a [u32],
    len: usize,
    size: usize,
}

impl Table<'_> {
    /// The pieces of key rows `lo..hi`: (first row, rows, block id, row inside the block).
    fn pieces(&self, lo: usize, hi: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        let size = self.size;
        (lo / size..hi.div_ceil(size)).map(move |b| {
            let from = lo.max(b * size);
            let to = hi.min((b + 1) * size);
            (from, to - from, self.blocks[b] as usize, from - b * size)
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn attend<T: FloatElement>(
    q: &[T],
    lq: &Layout,
    k: &[T],
    lk: &Layout,
    v: &[T],
    lv: &Layout,
    sinks: Option<Vec<T>>,
    table: &Table<'_>,
    spec: &AttentionSpec,
) -> Vec<T> {
    let q = strided::gather(q, lq);
    let [hq, tq, d] = [lq.dims()[1], lq.dims()[2], lq.dims()[3]];
    let (hkv, dv) = (lk.dims()[1], lv.dims()[3]);
    let (ks, vs) = (lk.strides(), lv.strides());
    let group = hq / hkv;
    let mut out = vec![T::zero(); hq * tq * dv];
    if out.is_empty() {
        return out;
    }
    let scale = T::from_f64(spec.scale).unwrap_or_else(T::one);
    let cap = spec.softcap.map(|c| T::from_f64(c).unwrap_or_else(T::one));
    // One kv head and the query heads of its group: their queries and outputs are contiguous.
    let kv_head = |kvh: usize, o: &mut [T]| {
        let qg = &q[kvh * group * tq * d..(kvh + 1) * group * tq * d];
        let k_base = lk.offset() + kvh * ks[1];
        let v_base = lv.offset() + kvh * vs[1];
        for i0 in (0..tq).step_by(QUERY_BLOCK) {
            let rows = QUERY_BLOCK.min(tq - i0);
            let ranges: Vec<_> = (i0..i0 + rows).map(|i| spec.mask.visible_range(i, table.len)).collect();
            let lo = ranges.iter().map(|r| r.start).min().unwrap_or(0);
            let hi = ranges.iter().map(|r| r.end).max().unwrap_or(0).max(lo);
            let span = hi - lo;
            if span == 0 {
                continue; // no visible key: these rows stay zero
            }
            // The group's query rows i0..i0 + rows, head after head: [m, d].
            let m = group * rows;
            let mut qb = Vec::with_capacity(m * d);
            for g in 0..group {
                qb.extend_from_slice(&qg[(g * tq + i0) * d..(g * tq + i0 + rows) * d]);
            }
            // scores = qb @ keys^T, block by block: [m, span].
            let mut scores = vec![T::zero(); m * span];
            for (from, n, block, row) in table.pieces(lo, hi) {
                let keys = &k[k_base + block * ks[0] + row * ks[2]..];
                gemm_into(&mut scores[from - lo..], span, &qb, d, 1, keys, 1, ks[2], m, n, d, false);
            }
            for (r, row) in scores.chunks_mut(span).enumerate() {
                let visible = &ranges[r % rows];
                if visible.start >= visible.end {
                    row.iter_mut().for_each(|s| *s = T::zero());
                    continue;
                }
                // The sink joins the max and the denominator, never the weighted sum.
                let sink = sinks.as_ref().map(|s| s[kvh * group + r / rows]);
                let mut max = sink.unwrap_or_else(T::neg_infinity);
                for (j, s) in row.iter_mut().enumerate() {
                    if (lo + j) < visible.start || (lo + j) >= visible.end {
                        *s = T::neg_infinity();
                        continue;
                    }
                    let mut x = *s * scale;
                    if let Some(cap) = cap {
                        x = (x / cap).tanh() * cap;
                    }
                    *s = x;
                    if x > max {
                        max = x;
                    }
                }
                let sum = sink.map_or_else(T::zero, |s| (s - max).exp()) + exp_shifted_sum(row, max);
                let inv = sum.recip();
                row.iter_mut().for_each(|s| *s = *s * inv);
            }
            // out = probs @ values, summed block by block: [m, dv].
            let mut ob = vec![T::zero(); m * dv];
            for (from, n, block, row) in table.pieces(lo, hi) {
                let values = &v[v_base + block * vs[0] + row * vs[2]..];
                gemm_into(&mut ob, dv, &scores[from - lo..], span, 1, values, vs[2], 1, m, dv, n, true);
            }
            for g in 0..group {
                o[(g * tq + i0) * dv..(g * tq + i0 + rows) * dv]
                    .copy_from_slice(&ob[g * rows * dv..(g + 1) * rows * dv]);
            }
        }
    };
    if hkv > 1 && out.len() * table.len >= strided::PARALLEL_MIN {
        out.par_chunks_mut(group * tq * dv).enumerate().for_each(|(h, o)| kv_head(h, o));
    } else {
        out.chunks_mut(group * tq * dv).enumerate().for_each(|(h, o)| kv_head(h, o));
    }
    out
}

/// `dst [m, n]` (row stride `dst_rs`) `= a [m, k] @ b [k, n]`, or `+=` with `accumulate`; the
/// operands are read through their (row, column) strides, on one thread.
#[allow(clippy::too_many_arguments)]
fn gemm_into<T: FloatElement>(
    dst: &mut [T],
    dst_rs: usize,
    a: &[T],
    a_rs: usize,
    a_cs: usize,
    b: &[T],
    b_rs: usize,
    b_cs: usize,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(dst.len() > (m - 1) * dst_rs + (n - 1));
    assert!(a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    // SAFETY: the asserts above bound every index gemm touches in the three slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            if accumulate { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
