//! CPU kernel of attention over a paged KV cache: a sequence's keys and values sit in
//! fixed-size blocks of a shared pool, listed by its block table. The kernel walks the table in
//! place (nothing is gathered): for each kv head, the queries of its whole GQA group are scored
//! block by block against the keys they can see, softmaxed per row, and the values are summed
//! block by block into the output. Scores are [group * rows, keys], in a per-thread scratch
//! kept between calls (a decoding step allocates nothing); the pool is never copied,
//! and f16/bf16 pools are read as stored for a decoding step's rows (see `attention`).

use rayon::prelude::*;

use crate::backend::AttentionSpec;
use crate::{FloatElement, HostData, Layout, Result};

use super::attention::{Attend, Kv, by_dtype, softmax_row, visible_keys, with_scores};
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
    by_dtype("paged_attention", q, k, v, sinks, &Paged { lq, lk, lv, table, spec })
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

/// Attention over the blocks of a paged pool that a sequence's table lists.
struct Paged<'a> {
    lq: &'a Layout,
    lk: &'a Layout,
    lv: &'a Layout,
    table: Table<'a>,
    spec: &'a AttentionSpec,
}

impl Attend for Paged<'_> {
    fn attend<T: FloatElement, K: Kv<T>>(&self, q: &[T], k: &[K], v: &[K], sinks: Option<Vec<T>>) -> Vec<T> {
        let Paged { lq, lk, lv, ref table, spec } = *self;
        let q = strided::gather(q, lq);
        let [hq, tq, d] = [lq.dims()[1], lq.dims()[2], lq.dims()[3]];
        let (hkv, dv) = (lk.dims()[1], lv.dims()[3]);
        let (ks, vs) = (lk.strides(), lv.strides());
        let group = hq / hkv;
        let mut out = super::pool::zeroed(hq * tq * dv);
        if out.is_empty() {
            return out;
        }
        let scale = T::from_f64(spec.scale).unwrap_or_else(T::one);
        let cap = spec.softcap.map(|c| T::from_f64(c).unwrap_or_else(T::one));
        // One kv head and the query heads of its group: their queries and outputs are contiguous.
        // A block of rows' gathered queries, scores and outputs share this thread's scratch
        // (`with_scores`), reused from block to block and from call to call.
        let m_most = group * QUERY_BLOCK.min(tq);
        let kv_head = |kvh: usize, o: &mut [T]| {
            let qg = &q[kvh * group * tq * d..(kvh + 1) * group * tq * d];
            let k_base = lk.offset() + kvh * ks[1];
            let v_base = lv.offset() + kvh * vs[1];
            with_scores::<T, _>(m_most * (d + table.len + dv), |scratch| {
                for i0 in (0..tq).step_by(QUERY_BLOCK) {
                    let rows = QUERY_BLOCK.min(tq - i0);
                    let (lo, hi) = visible_keys(spec, i0..i0 + rows, table.len);
                    let span = hi - lo;
                    if span == 0 {
                        continue; // no visible key: these rows stay zero
                    }
                    let m = group * rows;
                    let (qb, rest) = scratch.split_at_mut(m * d);
                    let (scores, rest) = rest.split_at_mut(m * span);
                    let ob = &mut rest[..m * dv];
                    // The group's query rows i0..i0 + rows, head after head: [m, d].
                    for (g, qrows) in qb.chunks_mut(rows * d).enumerate() {
                        qrows.copy_from_slice(&qg[(g * tq + i0) * d..(g * tq + i0 + rows) * d]);
                    }
                    // scores = qb @ keys^T, block by block: [m, span].
                    for (from, n, block, row) in table.pieces(lo, hi) {
                        let keys = &k[k_base + block * ks[0] + row * ks[2]..];
                        K::gemm_into(&mut scores[from - lo..], span, (qb, d, 1), (keys, 1, ks[2]), m, n, d, false);
                    }
                    for (r, row) in scores.chunks_mut(span).enumerate() {
                        let sink = sinks.as_ref().map(|s| s[kvh * group + r / rows]);
                        softmax_row(row, lo, &spec.mask.visible_range(i0 + r % rows, table.len), sink, scale, cap);
                    }
                    // out = probs @ values, summed block by block: [m, dv].
                    ob.fill(T::zero());
                    for (from, n, block, row) in table.pieces(lo, hi) {
                        let values = &v[v_base + block * vs[0] + row * vs[2]..];
                        K::gemm_into(ob, dv, (&scores[from - lo..], span, 1), (values, vs[2], 1), m, dv, n, true);
                    }
                    for g in 0..group {
                        o[(g * tq + i0) * dv..(g * tq + i0 + rows) * dv]
                            .copy_from_slice(&ob[g * rows * dv..(g + 1) * rows * dv]);
                    }
                }
            });
        };
        if hkv > 1 && out.len() * table.len >= strided::PARALLEL_MIN {
            out.par_chunks_mut(group * tq * dv).enumerate().for_each(|(h, o)| kv_head(h, o));
        } else {
            out.chunks_mut(group * tq * dv).enumerate().for_each(|(h, o)| kv_head(h, o));
        }
        super::pool::give(q);
        out
    }
}
