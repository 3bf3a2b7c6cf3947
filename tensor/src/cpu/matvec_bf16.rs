//! Matrix-vector products of bf16 weights on AVX512_BF16's `vdpbf16ps`: the decoding-time
//! counterpart of [`gemm_bf16`](super::gemm_bf16), under the same switch ([`isa::bf16_gemm`]).
//!
//! Why: widening bf16 weights in registers (`matvec::Weight::dot`) costs, per 16 weights, a
//! load, a zero-extension, a shift and an f32 FMA, and the two cores of a small machine run out
//! of issue slots before memory runs out of bandwidth: f32 decoding streamed its weights at
//! ~44 GB/s on the benchmark's EPYC, bf16 decoding at ~33 GB/s. `vdpbf16ps` multiplies 32 bf16
//! pairs per instruction straight from the loaded weights, so the product is bound by memory
//! again. As in the GEMM, the activations are rounded to bf16 (nearest even) once per product,
//! a relative error of at most 2^-8 per activation; prefill and decoding of a bf16 model then
//! round the same way, which is also what PyTorch and llama.cpp do with bf16 weights.
//!
//! Layout: x is packed into pair lanes (bf16 `2p` low, `2p + 1` high; an odd K pads the last
//! high half with zero) by [`gemm_bf16::pack_pairs`]; a weight row of the Linear layout ([N, K],
//! K contiguous) is read as the same pair lanes, the odd tail masked to zero.
//!
//! One row at a time, in memory order, and no software prefetch except on Intel CPUs
//! ([`isa::stream_prefetch`]): each thread's block of rows is then one sequential stream, which every x86 core's hardware prefetcher follows at full
//! speed. Reading four rows side by side (sharing each load of x, which the memory-bound
//! product does not need) put four streams 2-6 KiB apart in flight; the prefetchers lost them
//! and software prefetching only partly made up for it. On a Zen 4 EPYC (32 KiB L1), over the
//! Qwen3-0.6B shape's 1.2 GB of weights in alternating runs: 24-28 GB/s four at a time with
//! the prefetch, 28-29 one at a time without; `llm generate` decode 18-22 -> 23-29 tok/s.
//!
//! [`isa::bf16_gemm`]: super::isa::bf16_gemm
//! [`isa::stream_prefetch`]: super::isa::stream_prefetch
//! [`gemm_bf16::pack_pairs`]: super::gemm_bf16::pack_pairs

use half::bf16;

/// `y[j] = sum_k bf16(x[k]) * w_j[k]` for the rows `w_j` that `row(j)` returns, x given as
/// packed pairs (`xp`, from `gemm_bf16::pack_pairs`) of `k` values. Needs AVX512_BF16
/// (`gemm_bf16::available()`); the caller checks.
pub fn rows<'w>(xp: &[u32], k: usize, y: &mut [f32], row: impl Fn(usize) -> &'w [bf16]) {
    assert!(super::gemm_bf16::available(), "matvec_bf16 needs AVX512_BF16");
    assert_eq!(xp.len(), k.div_ceil(2));
    #[cfg(target_arch = "x86_64")]
    for (j, v) in y.iter_mut().enumerate() {
        let w = row(j);
        assert_eq!(w.len(), k);
        // SAFETY: the CPU has AVX512_BF16 (asserted above); the row holds k values.
        *v = unsafe { x86::dot(xp, k, w) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (k, row);
        unreachable!("AVX512_BF16 is x86-only");
    }
}

/// `R x C` dot products of `C` weight rows (k bf16 each) with `R` packed activation rows,
/// reading each weight row once: the skinny products of a batched decoding step (see
/// `matmul::skinny`). At 8 rows they are bound by arithmetic and loads rather than memory:
/// `vdpbf16ps` does twice the work of an f32 FMA per instruction, and taking two weight rows at
/// a time loads each activation vector once for both. `out[c][r]` is row r's product with
/// weight row c. Needs AVX512_BF16; the caller checks.
pub fn dot_rows<const R: usize, const C: usize>(xps: [&[u32]; R], k: usize, w: [&[bf16]; C]) -> [[f32; R]; C] {
    assert!(super::gemm_bf16::available(), "matvec_bf16 needs AVX512_BF16");
    assert!(w.iter().all(|w| w.len() == k) && xps.iter().all(|x| x.len() == k.div_ceil(2)));
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the CPU has AVX512_BF16 (asserted above); the lengths are checked.
        unsafe { x86::dot_rows(xps, k, w) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX512_BF16 is x86-only")
}

/// The same sum in plain Rust, in `vdpbf16ps`'s order per lane (the test oracle).
pub fn reference(x: &[f32], w: &[bf16]) -> f32 {
    x.iter().zip(w).map(|(&x, &w)| bf16::from_f32(x).to_f32() * w.to_f32()).sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::bf16;

    /// The load masks of the tail after the full 32-value steps, `left` values of each row: one
    /// bit per weight value (16-bit lanes), one per activation pair (32-bit lanes of packed x).
    #[inline(always)]
    fn tail_masks(left: usize) -> (u32, u16) {
        let wmask: u32 = if left >= 32 { u32::MAX } else { (1u32 << left) - 1 };
        let pairs = left.div_ceil(2);
        let xmask: u16 = if pairs >= 16 { u16::MAX } else { ((1u32 << pairs) - 1) as u16 };
        (wmask, xmask)
    }

    /// Weight elements ahead of the current position that `dot_rows` prefetches in each row
    /// (16 cache lines of bf16) when its rows are not adjacent: each weight row is a stream read
    /// once, and it keeps only 3 or 4 going per core while it computes for several activation
    /// rows, too few for the hardware prefetchers alone to keep enough misses in flight
    /// (measured: batch 8 decode 110 -> ~124 tok/s).
    const PREFETCH: usize = 512;

    /// How far ahead `dot_rows` prefetches weight rows that lie one after another in memory (a
    /// Linear's [N, K] weight): each of its C rows this far ahead and, past a row's end, the
    /// same row of the next block of C, where prefetching each row stopped at its end and left
    /// the first lines of the next rows to the hardware, which starts them late (bf16,
    /// Qwen3-0.6B shape, batch 8: 150-162 -> 167-174 tok/s in alternating runs).
    const PREFETCH_ADJACENT: usize = 2048;

    /// Values (4 KiB) ahead of the current position that [`dot`] prefetches into L2 where
    /// `isa::stream_prefetch` says so.
    const STREAM_AHEAD: usize = 2048;

    /// The dot product of the packed activations with one weight row of k bf16: four
    /// accumulators over 128 values a step (so no `vdpbf16ps` waits on the one before it), the
    /// tail 32 values at a time, masked.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
    pub unsafe fn dot(xp: &[u32], k: usize, w: &[bf16]) -> f32 {
        let wp = w.as_ptr() as *const i16;
        let x = xp.as_ptr() as *const i32;
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0; // index into K (a multiple of 32 throughout)
        let prefetch = super::super::isa::stream_prefetch();
        // SAFETY: full steps read x lanes i/2..i/2+64 <= k.div_ceil(2) and row values
        // i..i+128 <= k; the tail's loads are masked to what is left. A prefetch never faults,
        // so reaching past the row (into the next rows, the same stream) is harmless.
        unsafe {
            while i + 128 <= k {
                if prefetch {
                    for line in 0..4 {
                        let ahead = wp.wrapping_add(i + STREAM_AHEAD + 32 * line);
                        _mm_prefetch::<_MM_HINT_T1>(ahead as *const i8);
                    }
                }
                for (u, acc) in acc.iter_mut().enumerate() {
                    let xv: __m512bh = std::mem::transmute(_mm512_loadu_si512(x.add((i + 32 * u) / 2) as *const _));
                    let wv: __m512bh = std::mem::transmute(_mm512_loadu_si512(wp.add(i + 32 * u) as *const _));
                    *acc = _mm512_dpbf16_ps(*acc, xv, wv);
                }
                i += 128;
            }
            while i < k {
                let (wmask, xmask) = tail_masks(k - i);
                let xv: __m512bh = std::mem::transmute(_mm512_maskz_loadu_epi32(xmask, x.add(i / 2)));
                let wv: __m512bh = std::mem::transmute(_mm512_maskz_loadu_epi16(wmask, wp.add(i)));
                acc[0] = _mm512_dpbf16_ps(acc[0], xv, wv);
                i += 32;
            }
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
        }
    }

    /// `R x C` dot products of `C` weight rows with `R` packed activation rows.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
    pub unsafe fn dot_rows<const R: usize, const C: usize>(
        xps: [&[u32]; R],
        k: usize,
        w: [&[bf16]; C],
    ) -> [[f32; R]; C] {
        let wp = w.map(|w| w.as_ptr() as *const i16);
        let xp = xps.map(|x| x.as_ptr() as *const i32);
        let mut acc = [[_mm512_setzero_ps(); R]; C];
        let mut i = 0;
        let adjacent = (1..C).all(|c| wp[c] == wp[0].wrapping_add(c * k));
        // SAFETY: full steps stay inside k (i + 32 <= k), the tail is masked.
        unsafe {
            while i + 32 <= k {
                if adjacent {
                    // Each row PREFETCH_ADJACENT ahead; past its end, the same row of the next
                    // block of C (C - 1 rows further on).
                    let j = i + PREFETCH_ADJACENT;
                    let skip = if j >= k { (C - 1) * k } else { 0 };
                    for w in wp {
                        _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(j + skip) as *const i8);
                    }
                } else {
                    for w in wp {
                        _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(i + PREFETCH) as *const i8);
                    }
                }
                let wv: [__m512bh; C] =
                    std::array::from_fn(|c| std::mem::transmute(_mm512_loadu_si512(wp[c].add(i) as *const _)));
                for r in 0..R {
                    let xv: __m512bh = std::mem::transmute(_mm512_loadu_si512(xp[r].add(i / 2) as *const _));
                    for c in 0..C {
                        acc[c][r] = _mm512_dpbf16_ps(acc[c][r], xv, wv[c]);
                    }
                }
                i += 32;
            }
            if i < k {
                let (wmask, xmask) = tail_masks(k - i);
                let wv: [__m512bh; C] =
                    std::array::from_fn(|c| std::mem::transmute(_mm512_maskz_loadu_epi16(wmask, wp[c].add(i))));
                for r in 0..R {
                    let xv: __m512bh = std::mem::transmute(_mm512_maskz_loadu_epi32(xmask, xp[r].add(i / 2)));
                    for c in 0..C {
                        acc[c][r] = _mm512_dpbf16_ps(acc[c][r], xv, wv[c]);
                    }
                }
            }
            // The lane sums of each weight row's R accumulators, four at a time through one
            // transposing reduction (`hsum4`: 11 instructions for four sums, against about 8 for
            // each alone), the rest one by one: at 8 rows and k = 1024 the reductions were ~15%
            // of the loop (batch-8 decode 100-109 -> 125-136 tok/s in alternating runs).
            // (Grouping across weight rows too, for R < 4, measured slower: 117-126.)
            let mut out = [[0.0f32; R]; C];
            for (o, a) in out.iter_mut().zip(&acc) {
                let mut r = 0;
                while r + 4 <= R {
                    let four = super::super::matvec::x86::hsum4([a[r], a[r + 1], a[r + 2], a[r + 3]]);
                    o[r..r + 4].copy_from_slice(&four);
                    r += 4;
                }
                for r in r..R {
                    o[r] = _mm512_reduce_add_ps(a[r]);
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::gemm_bf16::{available, pack_pairs};

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    #[test]
    fn matches_the_rounded_reference_over_odd_shapes() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512_BF16");
            return;
        }
        for &k in &[1, 2, 3, 31, 32, 33, 63, 64, 100, 127, 128, 129, 257, 300, 1024] {
            for &n in &[1, 3, 4, 5, 9] {
                let x = values(k, 7);
                let w: Vec<bf16> = values(n * k, 11).into_iter().map(bf16::from_f32).collect();
                let mut xp = vec![0u32; k.div_ceil(2)];
                pack_pairs(&x, &mut xp);
                let mut y = vec![f32::NAN; n];
                rows(&xp, k, &mut y, |j| &w[j * k..(j + 1) * k]);
                let others: Vec<Vec<f32>> = (0..3).map(|r| values(k, 20 + r)).collect();
                let packed: Vec<Vec<u32>> = others
                    .iter()
                    .map(|x| {
                        let mut p = vec![0u32; k.div_ceil(2)];
                        pack_pairs(x, &mut p);
                        p
                    })
                    .collect();
                for j in 0..n {
                    let row = &w[j * k..(j + 1) * k];
                    let next = &w[((j + 1) % n) * k..((j + 1) % n + 1) * k];
                    let got = dot_rows::<4, 2>([&xp, &packed[0], &packed[1], &packed[2]], k, [row, next]);
                    for (r, x) in [&x, &others[0], &others[1], &others[2]].into_iter().enumerate() {
                        for (c, w) in [row, next].into_iter().enumerate() {
                            let want = reference(x, w);
                            let tol = 1e-6 * k as f32 * (1.0 + want.abs());
                            assert!((got[c][r] - want).abs() <= tol, "dot_rows k {k} row {j}+{c} x {r}: {}", got[c][r]);
                        }
                    }
                }
                for j in 0..n {
                    let want = reference(&x, &w[j * k..(j + 1) * k]);
                    // Same products (exact in f32), summed in another order: f32 rounding of
                    // at most k partial sums of magnitude <= k.
                    let tol = 1e-6 * k as f32 * (1.0 + want.abs());
                    assert!((y[j] - want).abs() <= tol, "k {k} n {n} row {j}: {} vs {want}", y[j]);
                }
            }
        }
    }
}
