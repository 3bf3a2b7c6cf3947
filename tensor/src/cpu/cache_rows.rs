//! Attention's decoding kernels over a KV cache's rows: the dot products of a few query rows
//! with key rows lying at a stride ([`dots`]), and rows of probabilities times value rows at a
//! stride ([`axpys`]). Keys and values are f32, or bf16/f16 widened in registers (the cache's
//! dtype, see `matvec::Weight`).
//!
//! Why several query rows at once: under grouped-query attention (GQA) the query heads of a
//! group read the same keys and values, so a decoding step's group (2 query heads per kv head
//! in Qwen3-0.6B, 8 in gpt-oss) is scored as one block of rows, and each key and value is loaded
//! once for all of them instead of once per query head. At long context the KV cache outgrows
//! the CPU's caches, and re-reading it per query head doubled (or more) the bytes a step
//! streams from memory. Up to [`MAX_ROWS`] rows a call; the caller splits more.
//!
//! Each output is one query row's sums over the whole span, in one call per block of rows (a
//! call, a dispatch and array building per four keys were a fifth of a step's attention). The
//! SIMD kernels prefetch ~4 KiB ahead in the rows they stream (`isa::stream_prefetch`).

use super::isa::{Isa, dispatch};
use super::matvec::{Weight, dot_scalar};

/// Query rows one call takes: the AVX-512 dot products then hold 4 rows x 4 keys accumulators,
/// the value products 4 rows x 64 lanes, 16 of the 32 vector registers.
pub const MAX_ROWS: usize = 4;

/// `outs[r][j] (+)= xs[r] . w[j * stride..][..k]` for each of the `R` query rows and every
/// `j < n` (added to `outs` with `accumulate`), where `k` is the rows' common length and `n`
/// the outputs': `R` query rows of one GQA group against a cache's key rows, each key loaded
/// once for all of them.
pub fn dots<W: Weight, const R: usize>(
    isa: Isa,
    xs: [&[f32]; R],
    w: &[W],
    stride: usize,
    outs: [&mut [f32]; R],
    accumulate: bool,
) {
    const { assert!(R >= 1 && R <= MAX_ROWS) };
    let (k, n) = (xs[0].len(), outs[0].len());
    assert!(xs.iter().all(|x| x.len() == k) && outs.iter().all(|o| o.len() == n), "dots: rows of unequal length");
    assert_rows_fit("dots", n, k, stride, w.len());
    dispatch!(
        isa,
        dots_scalar(xs, w, stride, outs, accumulate),
        x86::dots_avx2(xs, w, stride, outs, accumulate),
        x86::dots_avx512(xs, w, stride, outs, accumulate)
    )
}

/// `ys[r] += sum_i a[r][i] w[i * stride..][..n]` for each of the `R` rows, where `n` is the
/// outputs' common length and `m` the coefficients' (`m` value rows, added in order): `R` rows of
/// attention probabilities times a cache's value rows, each value loaded once for all of them.
/// The outputs are held in registers across all the value rows, in blocks of lanes.
pub fn axpys<W: Weight, const R: usize>(isa: Isa, ys: [&mut [f32]; R], a: [&[f32]; R], w: &[W], stride: usize) {
    const { assert!(R >= 1 && R <= MAX_ROWS) };
    let (n, m) = (ys[0].len(), a[0].len());
    assert!(ys.iter().all(|y| y.len() == n) && a.iter().all(|c| c.len() == m), "axpys: rows of unequal length");
    assert_rows_fit("axpys", m, n, stride, w.len());
    dispatch!(
        isa,
        axpys_scalar(ys, a, w, stride),
        x86::axpys_avx2(ys, a, w, stride),
        x86::axpys_avx512(ys, a, w, stride)
    )
}

/// `rows` rows of `len` values, `stride` apart, lie within `total` values (the kernels' one
/// precondition on `w`, checked before any unchecked load).
fn assert_rows_fit(op: &str, rows: usize, len: usize, stride: usize, total: usize) {
    assert!(
        rows == 0 || (rows - 1) * stride + len <= total,
        "{op}: {rows} rows of {len} at stride {stride} exceed {total}"
    );
}

fn dots_scalar<W: Weight, const R: usize>(
    xs: [&[f32]; R],
    w: &[W],
    stride: usize,
    outs: [&mut [f32]; R],
    accumulate: bool,
) {
    for (x, out) in xs.into_iter().zip(outs) {
        for (j, o) in out.iter_mut().enumerate() {
            let v = dot_scalar(x, &w[j * stride..][..x.len()]);
            *o = if accumulate { *o + v } else { v };
        }
    }
}

fn axpys_scalar<W: Weight, const R: usize>(ys: [&mut [f32]; R], a: [&[f32]; R], w: &[W], stride: usize) {
    for (y, a) in ys.into_iter().zip(a) {
        let n = y.len();
        for (i, &c) in a.iter().enumerate() {
            for (v, &x) in y.iter_mut().zip(&w[i * stride..][..n]) {
                *v += c * x.to_f32();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use super::super::matvec::x86::{hsum4, hsum256, load8, load16};
    use super::Weight;

    /// Rows ahead of the current one that the kernels prefetch: ~4 KiB of the cache's rows.
    #[inline(always)]
    fn ahead_rows(stride: usize, size: usize) -> usize {
        (4096 / (stride * size).max(1)).max(1)
    }

    /// Prefetches (into L2) the lines of `len` elements from `p` (never faults), four lines to
    /// a step: a 256-byte key or value row (128 f16 features) is one step. The loop this
    /// replaced (a `step_by` over the bytes, one line an iteration) was about a sixth of the
    /// keys' kernel's compiled instructions; unrolled, one decoding step's attention over a cache held in L2
    /// took 40.8/41.2 -> 39.6/40.1 µs a layer (1 thread, faster in 89% of 5,000 alternating
    /// pairs, Zen 4 EPYC), and from memory it is level (28 layers at 528 and 4,096 positions,
    /// 2 threads: 58 of 100 and 6 of 8 pairs faster; a whole bf16 decode, tokens alternating:
    /// 76 of 160).
    #[inline(always)]
    unsafe fn prefetch_row<W>(p: *const W, len: usize) {
        let p = p as *const i8;
        let lines = (len * std::mem::size_of::<W>()).div_ceil(64);
        let mut l = 0;
        while l + 4 <= lines {
            // SAFETY: a prefetch never faults, wherever it points.
            unsafe {
                _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(64 * l));
                _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(64 * l + 64));
                _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(64 * l + 128));
                _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(64 * l + 192));
            }
            l += 4;
        }
        while l < lines {
            // SAFETY: as above.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(64 * l)) };
            l += 1;
        }
    }

    /// Adds `v` to, or stores it in, `out`.
    #[inline(always)]
    fn put(out: &mut f32, v: f32, accumulate: bool) {
        *out = if accumulate { *out + v } else { v };
    }

    /// `x . row` over K's tail past `body` (a multiple of the vector width), added to `sum`.
    #[inline(always)]
    fn tail<W: Weight>(x: &[f32], row: &[W], body: usize, sum: f32) -> f32 {
        x[body..].iter().zip(&row[body..]).fold(sum, |s, (&a, &b)| s + a * b.to_f32())
    }

    /// [`super::dots`] on AVX-512: four keys a step against every row, `4 R` accumulators
    /// (each key vector loaded once for the `R` rows, each row's vector once for the four keys),
    /// reduced four at a time ([`hsum4`]); the last keys one at a time; K's tail past a multiple
    /// of 16 in scalar.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
    pub unsafe fn dots_avx512<W: Weight, const R: usize>(
        xs: [&[f32]; R],
        w: &[W],
        stride: usize,
        outs: [&mut [f32]; R],
        accumulate: bool,
    ) {
        let (k, n) = (xs[0].len(), outs[0].len());
        let body = k / 16 * 16;
        let (xp, wp) = (xs.map(|x| x.as_ptr()), w.as_ptr());
        let mut j = 0;
        // SAFETY: the caller checked (n - 1) * stride + k <= w.len(): every key row read lies in
        // w, and i + 16 <= body <= k keeps each load inside its row and inside each x.
        unsafe {
            let prefetch = super::super::isa::stream_prefetch();
            let ahead = ahead_rows(stride, std::mem::size_of::<W>());
            while j + 4 <= n {
                let keys: [*const W; 4] = std::array::from_fn(|t| wp.add((j + t) * stride));
                if prefetch {
                    for key in keys {
                        prefetch_row(key.wrapping_add(ahead * stride), k);
                    }
                }
                let mut acc = [[_mm512_setzero_ps(); 4]; R];
                let mut i = 0;
                while i < body {
                    let kv: [__m512; 4] = std::array::from_fn(|t| load16(keys[t].add(i)));
                    for r in 0..R {
                        let xv = _mm512_loadu_ps(xp[r].add(i));
                        for t in 0..4 {
                            acc[r][t] = _mm512_fmadd_ps(xv, kv[t], acc[r][t]);
                        }
                    }
                    i += 16;
                }
                for r in 0..R {
                    for (t, sum) in hsum4(acc[r]).into_iter().enumerate() {
                        let v = if body == k { sum } else { tail(xs[r], &w[(j + t) * stride..][..k], body, sum) };
                        put(&mut outs[r][j + t], v, accumulate);
                    }
                }
                j += 4;
            }
            while j < n {
                let key = wp.add(j * stride);
                let mut acc = [_mm512_setzero_ps(); R];
                let mut i = 0;
                while i < body {
                    let kv = load16(key.add(i));
                    for r in 0..R {
                        acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(xp[r].add(i)), kv, acc[r]);
                    }
                    i += 16;
                }
                for r in 0..R {
                    let v = tail(xs[r], &w[j * stride..][..k], body, _mm512_reduce_add_ps(acc[r]));
                    put(&mut outs[r][j], v, accumulate);
                }
                j += 1;
            }
        }
    }

    /// [`super::dots`] on AVX2: two keys a step against every row (`2 R` of the 16 registers
    /// accumulate), then the last key alone; K's tail past a multiple of 8 in scalar.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dots_avx2<W: Weight, const R: usize>(
        xs: [&[f32]; R],
        w: &[W],
        stride: usize,
        outs: [&mut [f32]; R],
        accumulate: bool,
    ) {
        let (k, n) = (xs[0].len(), outs[0].len());
        let body = k / 8 * 8;
        let (xp, wp) = (xs.map(|x| x.as_ptr()), w.as_ptr());
        let mut j = 0;
        // SAFETY: as in `dots_avx512`, with loads of 8.
        unsafe {
            let prefetch = super::super::isa::stream_prefetch();
            let ahead = ahead_rows(stride, std::mem::size_of::<W>());
            while j < n {
                // Two keys, or the last one twice (its second sums unused).
                let keys = [wp.add(j * stride), wp.add((j + 1).min(n - 1) * stride)];
                if prefetch {
                    for key in keys {
                        prefetch_row(key.wrapping_add(ahead * stride), k);
                    }
                }
                let mut acc = [[_mm256_setzero_ps(); 2]; R];
                let mut i = 0;
                while i < body {
                    let kv = [load8(keys[0].add(i)), load8(keys[1].add(i))];
                    for r in 0..R {
                        let xv = _mm256_loadu_ps(xp[r].add(i));
                        for t in 0..2 {
                            acc[r][t] = _mm256_fmadd_ps(xv, kv[t], acc[r][t]);
                        }
                    }
                    i += 8;
                }
                for r in 0..R {
                    for t in 0..(n - j).min(2) {
                        let v = tail(xs[r], &w[(j + t) * stride..][..k], body, hsum256(acc[r][t]));
                        put(&mut outs[r][j + t], v, accumulate);
                    }
                }
                j += 2;
            }
        }
    }

    /// [`super::axpys`] on AVX-512: the outputs in blocks of 16 `L` lanes per row, held in
    /// registers while every value row adds into them (`L` = 8 for up to 2 rows, 4 for up to 4:
    /// `R L` = 16 accumulators), then narrower blocks; lanes past a multiple of 16 in scalar.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub unsafe fn axpys_avx512<W: Weight, const R: usize>(
        mut ys: [&mut [f32]; R],
        a: [&[f32]; R],
        w: &[W],
        stride: usize,
    ) {
        let n = ys[0].len();
        let yp = ys.each_mut().map(|y| y.as_mut_ptr());
        let mut j = 0;
        // SAFETY: each block's lanes j..j + 16 L lie in every y and, in every value row, in w
        // (the caller checked (m - 1) * stride + n <= w.len()).
        unsafe {
            if R <= 2 {
                while n - j >= 128 {
                    axpys_block_avx512::<W, R, 8>(yp, a, w, stride, j);
                    j += 128;
                }
            }
            while n - j >= 64 {
                axpys_block_avx512::<W, R, 4>(yp, a, w, stride, j);
                j += 64;
            }
            if n - j >= 32 {
                axpys_block_avx512::<W, R, 2>(yp, a, w, stride, j);
                j += 32;
            }
            if n - j >= 16 {
                axpys_block_avx512::<W, R, 1>(yp, a, w, stride, j);
                j += 16;
            }
        }
        axpys_tail(ys, a, w, stride, j);
    }

    /// Lanes `j..j + 16 L` of each output plus every value row's multiple, `R L` vectors in
    /// registers.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn axpys_block_avx512<W: Weight, const R: usize, const L: usize>(
        yp: [*mut f32; R],
        a: [&[f32]; R],
        w: &[W],
        stride: usize,
        j: usize,
    ) {
        // SAFETY: as in `axpys_avx512`, the caller's block lies in every y and every value row.
        unsafe {
            let mut acc: [[__m512; L]; R] =
                std::array::from_fn(|r| std::array::from_fn(|v| _mm512_loadu_ps(yp[r].add(j + 16 * v))));
            let wp = w.as_ptr().add(j);
            let prefetch = super::super::isa::stream_prefetch();
            let ahead = ahead_rows(stride, std::mem::size_of::<W>());
            for i in 0..a[0].len() {
                let row = wp.add(i * stride);
                if prefetch {
                    prefetch_row(row.wrapping_add(ahead * stride), 16 * L);
                }
                let values: [__m512; L] = std::array::from_fn(|v| load16(row.add(16 * v)));
                for r in 0..R {
                    let c = _mm512_set1_ps(*a[r].get_unchecked(i));
                    for v in 0..L {
                        acc[r][v] = _mm512_fmadd_ps(c, values[v], acc[r][v]);
                    }
                }
            }
            for (y, acc) in yp.iter().zip(&acc) {
                for (v, &sum) in acc.iter().enumerate() {
                    _mm512_storeu_ps(y.add(j + 16 * v), sum);
                }
            }
        }
    }

    /// [`super::axpys`] on AVX2: blocks of 8 `L` lanes per row (`L` = 4 for up to 2 rows, 2 for
    /// up to 4: 8 of the 16 registers accumulate), then narrower; lanes past a multiple of 8 in
    /// scalar.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn axpys_avx2<W: Weight, const R: usize>(
        mut ys: [&mut [f32]; R],
        a: [&[f32]; R],
        w: &[W],
        stride: usize,
    ) {
        let n = ys[0].len();
        let yp = ys.each_mut().map(|y| y.as_mut_ptr());
        let mut j = 0;
        // SAFETY: as in `axpys_avx512`, with blocks of 8 L lanes.
        unsafe {
            if R <= 2 {
                while n - j >= 32 {
                    axpys_block_avx2::<W, R, 4>(yp, a, w, stride, j);
                    j += 32;
                }
            }
            while n - j >= 16 {
                axpys_block_avx2::<W, R, 2>(yp, a, w, stride, j);
                j += 16;
            }
            if n - j >= 8 {
                axpys_block_avx2::<W, R, 1>(yp, a, w, stride, j);
                j += 8;
            }
        }
        axpys_tail(ys, a, w, stride, j);
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn axpys_block_avx2<W: Weight, const R: usize, const L: usize>(
        yp: [*mut f32; R],
        a: [&[f32]; R],
        w: &[W],
        stride: usize,
        j: usize,
    ) {
        // SAFETY: as in `axpys_avx2`.
        unsafe {
            let mut acc: [[__m256; L]; R] =
                std::array::from_fn(|r| std::array::from_fn(|v| _mm256_loadu_ps(yp[r].add(j + 8 * v))));
            let wp = w.as_ptr().add(j);
            let prefetch = super::super::isa::stream_prefetch();
            let ahead = ahead_rows(stride, std::mem::size_of::<W>());
            for i in 0..a[0].len() {
                let row = wp.add(i * stride);
                if prefetch {
                    prefetch_row(row.wrapping_add(ahead * stride), 8 * L);
                }
                let values: [__m256; L] = std::array::from_fn(|v| load8(row.add(8 * v)));
                for r in 0..R {
                    let c = _mm256_set1_ps(*a[r].get_unchecked(i));
                    for v in 0..L {
                        acc[r][v] = _mm256_fmadd_ps(c, values[v], acc[r][v]);
                    }
                }
            }
            for (y, acc) in yp.iter().zip(&acc) {
                for (v, &sum) in acc.iter().enumerate() {
                    _mm256_storeu_ps(y.add(j + 8 * v), sum);
                }
            }
        }
    }

    /// Lanes `j..` of each output, in scalar (none when the blocks covered every lane, as for
    /// head sizes that are multiples of 16).
    fn axpys_tail<W: Weight, const R: usize>(ys: [&mut [f32]; R], a: [&[f32]; R], w: &[W], stride: usize, j: usize) {
        if j == ys[0].len() {
            return;
        }
        for (y, a) in ys.into_iter().zip(a) {
            let n = y.len();
            for (i, &c) in a.iter().enumerate() {
                for (v, &x) in y[j..].iter_mut().zip(&w[i * stride + j..][..n - j]) {
                    *v += c * x.to_f32();
                }
            }
        }
    }
}
