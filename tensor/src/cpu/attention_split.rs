//! A decoding step's attention split over its keys across threads ("flash-decoding", Dao et
//! al. 2023). The dense kernel runs one task per batch row and KV head (a GQA group's query
//! heads stacked), so a step with fewer such tasks than the pool has threads leaves threads
//! idle while the others stream the whole cache: Gemma 3 1B has one KV head (every step's
//! attention on one thread), Qwen3 eight (half of a 16-core machine). Here each task's keys are
//! cut into parts that threads take in parallel. A part keeps its softmax unnormalised: its
//! rows' largest logit `m_p`, the sum `l_p` of `exp(s - m_p)` over its keys and the values
//! summed with those weights, `o_p`. The parts are then joined exactly, with `M` the largest of
//! the `m_p` and of the sink:
//!
//! `out = sum_p exp(m_p - M) o_p / (sum_p exp(m_p - M) l_p + exp(sink - M))`.
//!
//! Only the order of the additions differs from one pass over all the keys.

use rayon::prelude::*;

use crate::FloatElement;
use crate::backend::AttentionSpec;

use super::attention::{Kv, exp_row, with_scores};

/// Keys a part takes at least. Measured on a 2-core Zen 4 EPYC (2 threads) with Gemma 3 1B's
/// attention shape (4 query heads on one KV head of 256, an f16 cache, 26 layers' caches so
/// they stream from memory), split and unsplit alternating step by step in one process, µs a
/// layer: 2,048 keys 379 -> 327 (faster in 82 of 100 pairs), 4,096 keys 514 -> 469 (83 of 100),
/// 8,192 keys 1,214 -> 1,071 (60 of 100). With parts of 256 keys the split lost below that:
/// 528 keys 45 -> 50 µs, 1,024 keys 138 -> 146 (on these machines one thread already streams a
/// short cache about as fast as two).
const MIN_KEYS: usize = 1024;

/// How many parts to cut each task's `span` keys into, when a step has `tasks` tasks: enough
/// for every thread of the pool to have one, as long as each part keeps [`MIN_KEYS`]; 1 (no
/// split) when the tasks already occupy the pool.
pub(super) fn parts(tasks: usize, span: usize) -> usize {
    let threads = rayon::current_num_threads();
    if tasks == 0 || tasks >= threads {
        return 1;
    }
    threads.div_ceil(tasks).min(span / MIN_KEYS).max(1)
}

/// One task's operands: its stacked query rows and where its KV head's keys and values start.
pub(super) struct Task<'a, T, K> {
    /// The task's `rows` query rows of `d` features, one after another.
    pub q: &'a [T],
    /// The keys from the task's first row on, rows `k_stride` apart.
    pub k: &'a [K],
    pub k_stride: usize,
    /// The values likewise.
    pub v: &'a [K],
    pub v_stride: usize,
    /// The sink logit of each stacked row's head, if the model has sinks.
    pub sinks: Option<&'a [T]>,
}

/// The shape and settings every task shares.
pub(super) struct Step<'a, T> {
    /// Stacked query rows per task, and query positions per head: row `r` is position `r % tq`.
    pub rows: usize,
    pub tq: usize,
    pub d: usize,
    pub dv: usize,
    /// Keys in the cache, and the span `lo..hi` every row's visible keys lie in.
    pub tk: usize,
    pub span: (usize, usize),
    pub scale: T,
    pub cap: Option<T>,
    pub spec: &'a AttentionSpec,
}

/// Attention of each task (`task(t)` gives its operands) into `out` (`rows * dv` values per
/// task, in task order), each task's keys cut into `parts` parts run in parallel.
pub(super) fn attend<'a, T: FloatElement + 'a, K: Kv<T>>(
    step: &Step<'_, T>,
    tasks: usize,
    parts: usize,
    task: impl Fn(usize) -> Task<'a, T, K> + Sync,
    out: &mut [T],
) {
    let Step { rows, dv, span: (lo, hi), .. } = *step;
    let part_len = rows * (dv + 2);
    let mut partial: Vec<T> = super::pool::overwritten(tasks * parts * part_len);
    let width = (hi - lo).div_ceil(parts);
    partial.par_chunks_mut(part_len).with_max_len(1).enumerate().for_each(|(i, into)| {
        let (t, p) = (i / parts, i % parts);
        let a = (lo + p * width).min(hi);
        let b = (a + width).min(hi);
        one_part(step, &task(t), a..b, into);
    });
    for (t, o) in out.chunks_mut(rows * dv).enumerate() {
        let sinks = task(t).sinks;
        join(step, &partial[t * parts * part_len..(t + 1) * parts * part_len], sinks, o);
    }
    super::pool::give(partial);
}

/// Keys `keys` of one task: `into` gets its rows' weighted value sums ([rows, dv]), then their
/// largest logits (`rows`), then their sums of weights (`rows`; 0 for a row that sees none of
/// these keys).
fn one_part<T: FloatElement, K: Kv<T>>(
    step: &Step<'_, T>,
    task: &Task<'_, T, K>,
    keys: std::ops::Range<usize>,
    into: &mut [T],
) {
    let Step { rows, tq, d, dv, tk, scale, cap, spec, .. } = *step;
    let (acc, stats) = into.split_at_mut(rows * dv);
    let (maxes, sums) = stats.split_at_mut(rows);
    let w = keys.len();
    if w == 0 {
        acc.fill(T::zero());
        maxes.fill(T::neg_infinity());
        sums.fill(T::zero());
        return;
    }
    with_scores::<T, _>(rows * w, |scores| {
        let k = &task.k[keys.start * task.k_stride..];
        K::gemm_into(scores, w, (task.q, d, 1), (k, 1, task.k_stride), rows, w, d, false);
        for (r, row) in scores.chunks_mut(w).enumerate() {
            let visible = spec.mask.visible_range(r % tq, tk);
            (maxes[r], sums[r]) =
                exp_row(row, keys.start, &visible, None, scale, cap).unwrap_or((T::neg_infinity(), T::zero()));
        }
        let v = &task.v[keys.start * task.v_stride..];
        K::gemm_into(acc, dv, (scores, w, 1), (v, task.v_stride, 1), rows, dv, w, false);
    });
}

/// Joins one task's `parts` (each as [`one_part`] wrote it) into its output rows.
fn join<T: FloatElement>(step: &Step<'_, T>, parts: &[T], sinks: Option<&[T]>, out: &mut [T]) {
    let Step { rows, tq, dv, .. } = *step;
    let part_len = rows * (dv + 2);
    for (r, o) in out.chunks_mut(dv).enumerate() {
        let stat = |p: &[T], i: usize| p[rows * dv + i * rows + r];
        let seen = parts.chunks(part_len).filter(|p| stat(p, 1) > T::zero());
        let sink = sinks.map(|s| s[r / tq]);
        let most =
            seen.clone().map(|p| stat(p, 0)).chain(sink).fold(T::neg_infinity(), |m, x| if x > m { x } else { m });
        o.fill(T::zero());
        let mut total = sink.map_or_else(T::zero, |s| (s - most).exp());
        let mut any = false;
        for p in seen {
            let f = (stat(p, 0) - most).exp();
            total = total + f * stat(p, 1);
            o.iter_mut().zip(&p[r * dv..(r + 1) * dv]).for_each(|(o, &x)| *o = *o + f * x);
            any = true;
        }
        if any {
            let inv = total.recip();
            o.iter_mut().for_each(|x| *x = *x * inv);
        }
    }
}
