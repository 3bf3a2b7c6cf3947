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
//! K contiguous) is read as the same pair lanes, the odd tail masked to zero. Four rows share
//! each load of x.
//!
//! [`isa::bf16_gemm`]: super::isa::bf16_gemm
//! [`gemm_bf16::pack_pairs`]: super::gemm_bf16::pack_pairs

use half::bf16;

/// `y[j] = sum_k bf16(x[k]) * w_j[k]` for the rows `w_j` that `row(j)` returns, x given as
/// packed pairs (`xp`, from `gemm_bf16::pack_pairs`) of `k` values. Needs AVX512_BF16
/// (`gemm_bf16::available()`); the caller checks.
pub fn rows<'w>(xp: &[u32], k: usize, y: &mut [f32], row: impl Fn(usize) -> &'w [bf16]) {
    assert!(super::gemm_bf16::available(), "matvec_bf16 needs AVX512_BF16");
    assert_eq!(xp.len(), k.div_ceil(2));
    #[cfg(target_arch = "x86_64")]
    {
        let mut j = 0;
        while j + 4 <= y.len() {
            let w = [row(j), row(j + 1), row(j + 2), row(j + 3)];
            assert!(w.iter().all(|r| r.len() == k));
            // SAFETY: the CPU has AVX512_BF16 (asserted above); every row holds k values.
            y[j..j + 4].copy_from_slice(&unsafe { x86::dot4(xp, k, w) });
            j += 4;
        }
        while j < y.len() {
            let w = row(j);
            assert_eq!(w.len(), k);
            // SAFETY: as above.
            y[j] = unsafe { x86::dot4(xp, k, [w; 4]) }[0];
            j += 1;
        }
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

    /// How far ahead the kernels prefetch weight rows that lie one after another in memory (a
    /// Linear's [N, K] weight), where prefetching each row stopped at its end and left the first
    /// lines of the next rows to the hardware, which starts them late. `dot4` prefetches its four
    /// rows as one stream of 4 * k values, C lines per step, running on into the next four;
    /// `dot_rows` prefetches each of its C rows this far ahead and, past a row's end, the same
    /// row of the next block of C. Each way was the faster for its kernel in alternating runs
    /// (bf16, Qwen3-0.6B shape): batch 1 23.4-24.8 -> 25.9-30.0 tok/s with the one stream
    /// (35-47 against 32-41 for the per-row way); batch 8 122-132 -> 122-143 with the one
    /// stream, 150-162 -> 167-174 per row.
    const PREFETCH_ADJACENT: usize = 2048;

    /// Four dot products of the packed activations with four weight rows of k bf16 each.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
    pub unsafe fn dot4(xp: &[u32], k: usize, w: [&[bf16]; 4]) -> [f32; 4] {
        let wp = w.map(|r| r.as_ptr() as *const i16);
        let x = xp.as_ptr() as *const i32;
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0; // index into K (a multiple of 32 inside the loop)
        let adjacent = (1..4).all(|c| wp[c] == wp[0].wrapping_add(c * k));
        // SAFETY: full steps read x lanes i/2..i/2+16 < k.div_ceil(2) and row values i..i+32 <= k.
        unsafe {
            while i + 32 <= k {
                if adjacent {
                    for c in 0..4 {
                        _mm_prefetch::<_MM_HINT_T0>(wp[0].wrapping_add(4 * i + PREFETCH_ADJACENT + 32 * c) as *const i8);
                    }
                }
                let xv: __m512bh = std::mem::transmute(_mm512_loadu_si512(x.add(i / 2) as *const _));
                for r in 0..4 {
                    let wv: __m512bh = std::mem::transmute(_mm512_loadu_si512(wp[r].add(i) as *const _));
                    acc[r] = _mm512_dpbf16_ps(acc[r], xv, wv);
                }
                i += 32;
            }
            if i < k {
                // The tail: values i..k of each row (masked per bf16), lanes of x to match.
                let (wmask, xmask) = tail_masks(k - i);
                let xv: __m512bh = std::mem::transmute(_mm512_maskz_loadu_epi32(xmask, x.add(i / 2)));
                for r in 0..4 {
                    let wv: __m512bh = std::mem::transmute(_mm512_maskz_loadu_epi16(wmask, wp[r].add(i)));
                    acc[r] = _mm512_dpbf16_ps(acc[r], xv, wv);
                }
            }
            super::super::matvec::x86::hsum4(acc)
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
        // SAFETY: as in dot4: full steps stay inside k, the tail is masked.
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
        for &k in &[1, 2, 3, 31, 32, 33, 63, 64, 100, 257, 1024] {
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
