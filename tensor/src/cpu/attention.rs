//! CPU kernel of attention. It works on blocks of query rows: one small GEMM for the
//! block's scores over just the keys its mask leaves visible, a masked softmax per row, one GEMM
//! with the values; memory is [block, keys], never [Tq, Tk]. Attention sinks (gpt-oss) add one
//! logit per head to each row's softmax denominator.
//!
//! Keys and values are read in the dtype the cache keeps them in: q's own, or f16/bf16 under
//! f32 queries (a half-precision KV cache), for the few query rows of a decoding step
//! ([`HALF_KV_MAX_ROWS`]). Those are widened in registers by the matrix-vector kernels as they
//! stream the cache, so a step reads half the bytes of an f32 cache and never copies it.
//!
//! A decoding step has one task per batch row and KV head; with fewer of them than threads its
//! keys are split across the threads instead ([`attention_split`]).

use std::any::TypeId;
use std::ops::Range;

use rayon::prelude::*;

use half::{bf16, f16};

use crate::backend::AttentionSpec;
use crate::{Error, FloatElement, HostData, Layout, Result};

use super::matvec::Weight;
use super::strided::{self, PARALLEL_MIN};
use super::{attention_split, cache_rows, isa, vmath};

/// Query rows per attention task.
const QUERY_BLOCK: usize = 64;

#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &HostData,
    lq: &Layout,
    k: &HostData,
    lk: &Layout,
    v: &HostData,
    lv: &Layout,
    sinks: Option<(&HostData, &Layout)>,
    spec: &AttentionSpec,
) -> Result<HostData> {
    by_dtype("attention", q, k, v, sinks, &Dense { lq, lk, lv, spec })
}

/// An attention kernel over slices of one float type (keys and values possibly in a half type,
/// see [`Kv`]), holding the operands' layouts and its settings, so that [`by_dtype`] can run it
/// on f32 or f64 data.
pub(super) trait Attend {
    fn attend<T: FloatElement, K: Kv<T>>(&self, q: &[T], k: &[K], v: &[K], sinks: Option<Vec<T>>) -> Vec<T>;
}

/// Query rows per head up to which keys and values kept in f16/bf16 are read as stored: a
/// decoding step (or a few speculative rows). Past it the tensor layer widens them once for the
/// whole call, which costs less than widening each key span again for every query block.
pub const HALF_KV_MAX_ROWS: usize = 4;

/// The element type keys and values are read in, under queries of type `T`: `T` itself, or
/// bf16/f16 under f32 queries (a half-precision KV cache, for at most [`HALF_KV_MAX_ROWS`]
/// query rows per head).
pub(super) trait Kv<T>: Copy + Send + Sync + 'static {
    /// [`gemm_into`] with `b` of this type.
    #[allow(clippy::too_many_arguments)]
    fn gemm_into(
        dst: &mut [T],
        dst_rs: usize,
        a: (&[T], usize, usize),
        b: (&[Self], usize, usize),
        m: usize,
        n: usize,
        k: usize,
        accumulate: bool,
    );
}

impl<T: FloatElement> Kv<T> for T {
    fn gemm_into(
        dst: &mut [T],
        dst_rs: usize,
        (a, a_rs, a_cs): (&[T], usize, usize),
        (b, b_rs, b_cs): (&[T], usize, usize),
        m: usize,
        n: usize,
        k: usize,
        accumulate: bool,
    ) {
        gemm_into(dst, dst_rs, a, a_rs, a_cs, b, b_rs, b_cs, m, n, k, accumulate);
    }
}

/// A half-precision operand `b` straight through [`direct`], whatever the row count: the backend
/// only passes half keys and values for a few query rows ([`HALF_KV_MAX_ROWS`] per head; a
/// GQA group's heads are stacked, so `m` may reach a group's size times that), and past
/// [`cache_rows::MAX_ROWS`] rows each pass over the span is served from cache after the first.
macro_rules! half_kv {
    ($half:ty) => {
        impl Kv<f32> for $half {
            fn gemm_into(
                dst: &mut [f32],
                dst_rs: usize,
                (a, a_rs, a_cs): (&[f32], usize, usize),
                (b, b_rs, b_cs): (&[$half], usize, usize),
                m: usize,
                n: usize,
                k: usize,
                accumulate: bool,
            ) {
                if m == 0 || n == 0 || k == 0 {
                    return;
                }
                assert!(a_cs == 1 && (b_rs == 1 || b_cs == 1), "half keys and values need contiguous rows");
                assert!(dst.len() > (m - 1) * dst_rs + (n - 1));
                assert!(a.len() > (m - 1) * a_rs + (k - 1));
                assert!(b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
                direct(dst, dst_rs, (a, a_rs), (b, [b_rs, b_cs]), [m, n, k], accumulate);
            }
        }
    };
}
half_kv!(bf16);
half_kv!(f16);

/// Runs `kernel` on q, k, v and the optional sinks when all are f32 or all f64, or with f32
/// queries over f16/bf16 keys and values (the sinks gathered into one row first); any other
/// dtype is `op`'s error. Shared by the dense and the paged kernels.
pub(super) fn by_dtype(
    op: &str,
    q: &HostData,
    k: &HostData,
    v: &HostData,
    sinks: Option<(&HostData, &Layout)>,
    kernel: &impl Attend,
) -> Result<HostData> {
    Ok(match (q, k, v, sinks) {
        (HostData::F32(q), HostData::F32(k), HostData::F32(v), None) => HostData::F32(kernel.attend(q, k, v, None)),
        (HostData::F32(q), HostData::F32(k), HostData::F32(v), Some((HostData::F32(s), ls))) => {
            HostData::F32(kernel.attend(q, k, v, Some(strided::gather(s, ls))))
        }
        (HostData::F64(q), HostData::F64(k), HostData::F64(v), None) => HostData::F64(kernel.attend(q, k, v, None)),
        (HostData::F64(q), HostData::F64(k), HostData::F64(v), Some((HostData::F64(s), ls))) => {
            HostData::F64(kernel.attend(q, k, v, Some(strided::gather(s, ls))))
        }
        (HostData::F32(q), HostData::BF16(k), HostData::BF16(v), None) => HostData::F32(kernel.attend(q, k, v, None)),
        (HostData::F32(q), HostData::BF16(k), HostData::BF16(v), Some((HostData::F32(s), ls))) => {
            HostData::F32(kernel.attend(q, k, v, Some(strided::gather(s, ls))))
        }
        (HostData::F32(q), HostData::F16(k), HostData::F16(v), None) => HostData::F32(kernel.attend(q, k, v, None)),
        (HostData::F32(q), HostData::F16(k), HostData::F16(v), Some((HostData::F32(s), ls))) => {
            HostData::F32(kernel.attend(q, k, v, Some(strided::gather(s, ls))))
        }
        (q, _, _, _) => return Err(Error::unsupported_dtype(op, q.dtype())),
    })
}

/// Attention over whole k and v tensors (read in place through their strides).
struct Dense<'a> {
    lq: &'a Layout,
    lk: &'a Layout,
    lv: &'a Layout,
    spec: &'a AttentionSpec,
}

impl Attend for Dense<'_> {
    fn attend<T: FloatElement, K: Kv<T>>(&self, q: &[T], k: &[K], v: &[K], sinks: Option<Vec<T>>) -> Vec<T> {
        let Dense { lq, lk, lv, spec } = *self;
        // q is gathered (it is small); k and v are read in place through their strides, so a KV
        // cache is never copied.
        let q = strided::gather(q, lq);
        let [b, hq, tq, d] = [lq.dims()[0], lq.dims()[1], lq.dims()[2], lq.dims()[3]];
        let (hkv, tk, dv) = (lk.dims()[1], lk.dims()[2], lv.dims()[3]);
        let (ks, vs) = (lk.strides(), lv.strides());
        let group = hq / hkv;
        let mut out = super::pool::zeroed(b * hq * tq * dv);
        if out.is_empty() {
            return out;
        }
        let scale = T::from_f64(spec.scale).unwrap_or_else(T::one);
        let cap = spec.softcap.map(|c| T::from_f64(c).unwrap_or_else(T::one));
        // A GQA group's query heads read the same keys and values: while their rows fit what
        // `gemm_into` multiplies directly (a decoding step's one row per head), the group is one
        // task with its heads' rows stacked (contiguous in q and out, head after head), so each
        // key and value is read once for the group instead of once per query head.
        let stack = if group > 1 && group * tq <= DIRECT_ROWS { group } else { 1 };
        let task_rows = stack * tq;
        let tasks = b * hq / stack;
        if task_rows <= DIRECT_ROWS {
            // A decoding step with fewer tasks than threads: its keys split across them.
            let (lo, hi) = visible_keys(spec, 0..tq, tk);
            let parts = attention_split::parts(tasks, hi - lo);
            if parts > 1 {
                let step = attention_split::Step { rows: task_rows, tq, d, dv, tk, span: (lo, hi), scale, cap, spec };
                let sinks = sinks.as_deref();
                let task = |t: usize| {
                    let bh = t * stack;
                    let (bi, h0) = (bh / hq, bh % hq);
                    let kvh = h0 / group;
                    attention_split::Task {
                        q: &q[bh * tq * d..(bh + stack) * tq * d],
                        k: &k[lk.offset() + bi * ks[0] + kvh * ks[1]..],
                        k_stride: ks[2],
                        v: &v[lv.offset() + bi * vs[0] + kvh * vs[1]..],
                        v_stride: vs[2],
                        sinks: sinks.map(|s| &s[h0..h0 + stack]),
                    }
                };
                attention_split::attend(&step, tasks, parts, task, &mut out);
                super::pool::give(q);
                return out;
            }
        }
        // Each thread's scratch for the scores of a block of query rows, reused from task to
        // task and from call to call ([`with_scores`]; allocated per block, its 128 KB came as
        // fresh pages each time, zeroed by the kernel).
        let task = |t: usize, o: &mut [T]| {
            let bh = t * stack; // the task's first query head, over batch and heads
            let (bi, h0) = (bh / hq, bh % hq);
            let kvh = h0 / group;
            let qt = &q[bh * tq * d..(bh + stack) * tq * d];
            let k_base = lk.offset() + bi * ks[0] + kvh * ks[1];
            let v_base = lv.offset() + bi * vs[0] + kvh * vs[1];
            // Past DIRECT_ROWS query rows the scores are the `gemm` crate's: it gets the keys
            // copied transposed (see `transposed_keys`).
            let keys_t = task_rows > DIRECT_ROWS
                && TypeId::of::<T>() == TypeId::of::<f32>()
                && TypeId::of::<K>() == TypeId::of::<f32>()
                && ks[2] >= d;
            let kt_width = tk + KEYS_PAD;
            let kt_len = if keys_t { d * kt_width } else { 0 };
            with_scores::<T, _>(QUERY_BLOCK.min(task_rows) * tk + kt_len, |buffer| {
                let (kt, scores_buffer) = buffer.split_at_mut(kt_len);
                if keys_t {
                    transposed_keys(&k[k_base..], ks[2], tk, d, kt, kt_width);
                }
                for i0 in (0..task_rows).step_by(QUERY_BLOCK) {
                    let rows = QUERY_BLOCK.min(task_rows - i0);
                    // Stacked row r is query position r % tq of head h0 + r / tq; one head's
                    // blocks are positions i0.., a stack (one block) repeats 0..tq.
                    let positions = if stack == 1 { i0..i0 + rows } else { 0..tq };
                    let (lo, hi) = visible_keys(spec, positions, tk);
                    let span = hi - lo;
                    if span == 0 {
                        continue; // no visible key: these rows stay zero
                    }
                    // scores = q_block @ k[lo..hi]^T, [rows, span]
                    let scores = &mut scores_buffer[..rows * span];
                    let (qb, keys) = (&qt[i0 * d..], &k[k_base + lo * ks[2]..]);
                    if keys_t {
                        gemm_into(scores, span, qb, d, 1, &kt[lo..], kt_width, 1, rows, span, d, false);
                    } else {
                        K::gemm_into(scores, span, (qb, d, 1), (keys, 1, ks[2]), rows, span, d, false);
                    }
                    for (r, row) in scores.chunks_mut(span).enumerate() {
                        let (h, i) = (h0 + (i0 + r) / tq, (i0 + r) % tq);
                        let sink = sinks.as_ref().map(|s| s[h]);
                        softmax_row(row, lo, &spec.mask.visible_range(i, tk), sink, scale, cap);
                    }
                    // out_block = probs @ v[lo..hi], [rows, dv]
                    let (ob, values) = (&mut o[i0 * dv..(i0 + rows) * dv], &v[v_base + lo * vs[2]..]);
                    K::gemm_into(ob, dv, (scores, span, 1), (values, vs[2], 1), rows, dv, span, false);
                }
            });
        };
        if tasks > 1 && out.len() * tk >= PARALLEL_MIN {
            out.par_chunks_mut(task_rows * dv).enumerate().for_each(|(t, o)| task(t, o));
        } else {
            out.chunks_mut(task_rows * dv).enumerate().for_each(|(t, o)| task(t, o));
        }
        super::pool::give(q);
        out
    }
}

/// Values past each row of the transposed keys: a line, against the cache-set conflicts of
/// power-of-two rows (see `matmul::PANEL_PAD`).
const KEYS_PAD: usize = 16;

/// `kt[c * width + t] = k[t * stride + c]` for the `tk` keys of one head and their `d`
/// features: the keys transposed, so that the `gemm` crate reads `q @ k^T` as a row-major
/// [d, tk] matrix, which it packs by whole vectors, instead of packing the transposed view
/// one value at a time (see `matmul::gemm_transposed`). Both slices are f32 (checked by the
/// caller through their element types). A head's keys are copied once for all its blocks of
/// query rows. Qwen3-0.6B-shaped f32 prefill of 2,048 tokens, alternating in one process on a
/// Zen 4 EPYC: 160.5 -> 164.6 tok/s (medians of 3, ahead in each round); at the 1.7B shape
/// and 512 tokens, 64.0 -> 65.2.
fn transposed_keys<T: 'static, K: 'static>(k: &[K], stride: usize, tk: usize, d: usize, kt: &mut [T], width: usize) {
    assert!(TypeId::of::<T>() == TypeId::of::<f32>() && TypeId::of::<K>() == TypeId::of::<f32>());
    // SAFETY: both element types are f32 (asserted above): the same slices, read as f32.
    let (k, kt) = unsafe {
        (
            std::slice::from_raw_parts(k.as_ptr() as *const f32, k.len()),
            std::slice::from_raw_parts_mut(kt.as_mut_ptr() as *mut f32, kt.len()),
        )
    };
    super::transpose::transpose(isa::active(), k, stride, tk, d, kt, width);
}

/// Runs `f` on this thread's scratch for attention scores (and, in the paged kernel, the
/// gathered queries and the outputs beside them), at least `n` values of `T` (their contents
/// are whatever the last use left). Kept per thread between calls, so a decoding step's
/// attention allocates nothing; one larger than [`SCORES_KEPT_BYTES`] is freed after the call.
pub(super) fn with_scores<T: FloatElement, R>(n: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    use std::cell::RefCell;
    thread_local! {
        /// 8-byte words, so the buffer is aligned for f32 and f64 alike.
        static SCORES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    }
    let words = (n * std::mem::size_of::<T>()).div_ceil(8);
    SCORES.with(|cell| {
        // A nested call on this thread (none today) would find the buffer borrowed: it gets its own.
        let mut own = Vec::new();
        let mut guard = cell.try_borrow_mut();
        let buffer = match guard.as_deref_mut() {
            Ok(buffer) => buffer,
            Err(_) => &mut own,
        };
        if buffer.len() < words {
            // At least SCORES_FIRST_BYTES at once: a decoding step's scores grow by a key a
            // token, and growing them a little at a time would reallocate every few steps.
            buffer.resize(words.max(SCORES_FIRST_BYTES / 8), 0);
        }
        let out = f(&mut bytemuck::cast_slice_mut::<u64, T>(&mut buffer[..words])[..n]);
        if buffer.len() * 8 > SCORES_KEPT_BYTES {
            *buffer = Vec::new();
        }
        out
    })
}

/// The smallest scores buffer a thread makes: 256 KiB (a decoding step's scores over 65,536
/// keys in f32, or a paged step's for a group of 8 query heads over ~8,000).
const SCORES_FIRST_BYTES: usize = 256 << 10;

/// The largest scores buffer a thread keeps between calls: 4 MiB (64 query rows over 8,192
/// keys in f64, or 16,384 in f32).
const SCORES_KEPT_BYTES: usize = 4 << 20;

/// `lo..hi`, the span of keys covering what every query row of `rows` sees (out of `tk`): a
/// block of query rows is scored against that span only.
pub(super) fn visible_keys(spec: &AttentionSpec, rows: Range<usize>, tk: usize) -> (usize, usize) {
    let (mut lo, mut hi) = (usize::MAX, 0);
    for i in rows {
        let r = spec.mask.visible_range(i, tk);
        lo = lo.min(r.start);
        hi = hi.max(r.end);
    }
    if lo == usize::MAX {
        return (0, 0);
    }
    (lo, hi.max(lo))
}

/// Turns one row of raw scores over keys `lo..` into probabilities, in place: keys outside
/// `visible` get 0, the rest are scaled, soft-capped and softmaxed; the sink joins the max and
/// the denominator, never the weighted sum. A row that sees no key is all zeros.
pub(super) fn softmax_row<T: FloatElement>(
    row: &mut [T],
    lo: usize,
    visible: &Range<usize>,
    sink: Option<T>,
    scale: T,
    cap: Option<T>,
) {
    if let Some((max, sum)) = exp_row(row, lo, visible, sink, scale, cap) {
        let sum = sum + sink.map_or_else(T::zero, |s| (s - max).exp());
        let inv = sum.recip();
        row.iter_mut().for_each(|s| *s = *s * inv);
    }
}

/// The unnormalised half of [`softmax_row`]: the row's visible keys (those of `visible` among
/// `lo..lo + row.len()`) scaled and soft-capped, then `exp(s - max)` in place, where `max` is
/// their largest logit or `floor` if larger; every other key gets 0. Returns `(max, sum of the
/// row)`, or None (the row all zeros) when none of its keys is visible.
pub(super) fn exp_row<T: FloatElement>(
    row: &mut [T],
    lo: usize,
    visible: &Range<usize>,
    floor: Option<T>,
    scale: T,
    cap: Option<T>,
) -> Option<(T, T)> {
    // The row in three runs, so the visible one is a branch-free loop the compiler vectorises:
    // keys before the visible range, the visible keys, keys after it.
    let (start, end) = (visible.start.saturating_sub(lo).min(row.len()), visible.end.saturating_sub(lo).min(row.len()));
    if start >= end {
        row.iter_mut().for_each(|s| *s = T::zero());
        return None;
    }
    row[..start].fill(T::neg_infinity());
    row[end..].fill(T::neg_infinity());
    let seen = &mut row[start..end];
    match cap {
        Some(cap) => seen.iter_mut().for_each(|s| *s = (*s * scale / cap).tanh() * cap),
        None => seen.iter_mut().for_each(|s| *s = *s * scale),
    }
    let max = floor.into_iter().chain([lane_max(seen)]).fold(T::neg_infinity(), |m, x| if x > m { x } else { m });
    Some((max, exp_shifted_sum(row, max)))
}

/// The largest value of `xs` (-inf when empty), over 16 running maxima so that the loop
/// vectorises (a single running maximum is one long dependency chain of compares).
fn lane_max<T: FloatElement>(xs: &[T]) -> T {
    const LANES: usize = 16;
    let mut lanes = [T::neg_infinity(); LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for chunk in chunks.by_ref() {
        for (m, &x) in lanes.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    for (m, &x) in lanes.iter_mut().zip(chunks.remainder()) {
        *m = if x > *m { x } else { *m };
    }
    lanes.into_iter().fold(T::neg_infinity(), |m, x| if x > m { x } else { m })
}

/// Query rows up to which [`gemm_into`] multiplies directly (dot products against contiguous
/// key rows, multiply-adds of contiguous value rows) instead of calling the `gemm` crate: a
/// decoding step's one row per head, or a GQA group's heads stacked ([`Dense`] stacks 2 to 8
/// heads of a decoding row each, or a few rows of 2 to 4 heads, while they fit in this many
/// rows). There the crate's packing and dispatch cost more than the arithmetic (at batch 8 on
/// Qwen3-0.6B's shape they were 10-14% of a step).
const DIRECT_ROWS: usize = 16;

/// [`gemm_into`] for a few f32 rows of `a` (contiguous), on `cache_rows`' strided kernels, up to
/// [`cache_rows::MAX_ROWS`] rows a call: with b's columns contiguous (key rows), the rows' dot
/// products with every key ([`cache_rows::dots`]); with b's rows contiguous (value rows), the
/// probabilities' multiples of every value row added up ([`cache_rows::axpys`], the outputs
/// held in registers). Rows taken together read each key and value once for all of them: a GQA
/// group's query heads stacked. `b` is f32, or f16/bf16 widened in registers. (b's strides as
/// [rows, columns], the shape as [m, n, k].)
fn direct<W: Weight>(
    dst: &mut [f32],
    dst_rs: usize,
    (a, a_rs): (&[f32], usize),
    (b, [b_rs, b_cs]): (&[W], [usize; 2]),
    [m, n, k]: [usize; 3],
    accumulate: bool,
) {
    let mut i0 = 0;
    while i0 < m {
        let rows = (m - i0).min(cache_rows::MAX_ROWS);
        let (a, dst) = ((&a[i0 * a_rs..], a_rs), (&mut dst[i0 * dst_rs..], dst_rs));
        let (b, nk) = ((b, [b_rs, b_cs]), [n, k]);
        match rows {
            1 => direct_rows::<W, 1>(dst, a, b, nk, accumulate),
            2 => direct_rows::<W, 2>(dst, a, b, nk, accumulate),
            3 => direct_rows::<W, 3>(dst, a, b, nk, accumulate),
            _ => direct_rows::<W, 4>(dst, a, b, nk, accumulate),
        }
        i0 += rows;
    }
}

/// [`direct`] for its next `R` rows (the first `R` of `a` and `dst`).
fn direct_rows<W: Weight, const R: usize>(
    (dst, dst_rs): (&mut [f32], usize),
    (a, a_rs): (&[f32], usize),
    (b, [b_rs, b_cs]): (&[W], [usize; 2]),
    [n, k]: [usize; 2],
    accumulate: bool,
) {
    let isa = isa::active();
    let xs: [&[f32]; R] = std::array::from_fn(|r| &a[r * a_rs..][..k]);
    let mut rows = dst.chunks_mut(dst_rs.max(1));
    let mut outs: [&mut [f32]; R] = std::array::from_fn(|_| &mut rows.next().expect("an output row")[..n]);
    if b_rs == 1 {
        // Column j of b is the key row b[j * b_cs..][..k].
        cache_rows::dots(isa, xs, b, b_cs, outs, accumulate);
    } else {
        if !accumulate {
            outs.iter_mut().for_each(|o| o.fill(0.0));
        }
        // Row kk of b is the value row b[kk * b_rs..][..n].
        cache_rows::axpys(isa, outs, xs, b, b_rs);
    }
}

/// `dst [m, n]` (row stride `dst_rs`) `= a [m, k] @ b [k, n]`, or `+=` with `accumulate`; the
/// operands are read through their (row, column) strides, on one thread (decoding's few query
/// rows, up to [`DIRECT_ROWS`], through [`direct`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_into<T: FloatElement>(
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
    if m <= DIRECT_ROWS && a_cs == 1 && (b_rs == 1 || b_cs == 1) && TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: T is f32 (checked above): the same slices, read as f32.
        let f = |x: &[T]| unsafe { std::slice::from_raw_parts(x.as_ptr() as *const f32, x.len()) };
        // SAFETY: as above, for the output.
        let dst = unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr() as *mut f32, dst.len()) };
        direct(dst, dst_rs, (f(a), a_rs), (f(b), [b_rs, b_cs]), [m, n, k], accumulate);
        return;
    }
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

/// In place `x[i] = exp(x[i] - shift)`, returning their sum: f32 rows on `vmath`'s vectorised
/// exp (masked keys hold -inf and give 0), f64 rows one by one.
fn exp_shifted_sum<T: FloatElement>(row: &mut [T], shift: T) -> T {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: T is f32 (checked above), so the slice is an f32 slice of the same length.
        let row = unsafe { std::slice::from_raw_parts_mut(row.as_mut_ptr() as *mut f32, row.len()) };
        let shift = shift.to_f32().unwrap_or(f32::NAN);
        return T::from_f32(vmath::exp_shifted_sum(isa::active(), row, shift)).unwrap_or_else(T::nan);
    }
    let mut sum = T::zero();
    for s in row.iter_mut() {
        *s = (*s - shift).exp();
        sum = sum + *s;
    }
    sum
}
