//! MXFP4 weight rows (gpt-oss's experts) against Q8_0 activation rows, on the blocks, as ggml's
//! `ggml_vec_dot_mxfp4_q8_0` computes them: per 32-weight block an exact integer sum of the
//! doubled E2M1 values (integers -12..12, `mxfp4::DOUBLED`) times the activation codes, scaled
//! by half the block's E8M0 scale and the activations' scale. Rows are read as stored (17-byte
//! blocks), one after another; a decoded token reads 4.25 bits per weight.
//!
//! The SIMD kernels look the 4-bit codes up in a 16-byte table with `pshufb`. The dot-product
//! instructions multiply unsigned by signed bytes, so the table holds each value plus 12
//! (0..24), and 12 times the block's activation code sum is taken back off in the integer sum,
//! which starts from it; the sums stay exact. AVX2 without VNNI sums pairs with `maddubs`
//! (24 · 127 · 2 fits i16). The results differ from the scalar kernel's only in the order of
//! the f32 additions.

use super::super::mxfp4::{DOUBLED, e8m0_half};
use super::Row;

/// Bytes of one block: the E8M0 scale, then 16 bytes holding weight j in the low nibble of byte
/// j and weight j + 16 in its high nibble.
const BLOCK_BYTES: usize = 17;

/// The portable kernel, and the reference the SIMD ones are tested against: one weight row
/// against one activation row, the blocks added in order.
pub fn row(w: &[u8], x: Row) -> f32 {
    let mut sum = 0.0f32;
    for (b, block) in w.chunks_exact(BLOCK_BYTES).enumerate() {
        let xb = &x.codes[32 * b..32 * b + 32];
        let mut dot = 0i32;
        for (j, &q) in block[1..].iter().enumerate() {
            dot += DOUBLED[(q & 0x0F) as usize] as i32 * xb[j] as i32;
            dot += DOUBLED[(q >> 4) as usize] as i32 * xb[j + 16] as i32;
        }
        sum += dot as f32 * (e8m0_half(block[0]) * x.scales[b]);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
pub mod x86 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, DOUBLED, Row, e8m0_half};

    /// The table plus 12, in both 128-bit halves (`pshufb` looks up within each).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn table() -> __m256i {
        let shifted: [u8; 16] = std::array::from_fn(|i| (DOUBLED[i] + 12) as u8);
        // SAFETY: 16 bytes read from a 16-byte array.
        let t = unsafe { _mm_loadu_si128(shifted.as_ptr() as *const __m128i) };
        _mm256_broadcastsi128_si256(t)
    }

    /// Block `b`'s 32 weights as unsigned table values (value + 12), in activation order: the
    /// low nibbles (weights 0..16) in the low half, the high ones (16..32) in the high half.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn weights(w: &[u8], b: usize, table: __m256i) -> __m256i {
        // SAFETY: block b's 16 code bytes follow its scale byte inside `w`.
        let q = unsafe { _mm_loadu_si128(w.as_ptr().add(BLOCK_BYTES * b + 1) as *const __m128i) };
        let m4 = _mm_set1_epi8(0x0F);
        let (lo, hi) = (_mm_and_si128(q, m4), _mm_and_si128(_mm_srli_epi16(q, 4), m4));
        _mm256_shuffle_epi8(table, _mm256_set_m128i(hi, lo))
    }

    /// Block `b`'s 32 activation codes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn codes(x: &Row, b: usize) -> __m256i {
        // SAFETY: the row holds 32 codes per block.
        unsafe { _mm256_loadu_si256(x.codes.as_ptr().add(32 * b) as *const __m256i) }
    }

    /// The 8 lanes added.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// One weight row against `R` activation rows, written out inside each kernel so that it is
    /// compiled with that kernel's features: `$dot(start, weights, codes)` sums a block's code
    /// products into 8 i32 lanes on top of `start` (which carries the offset).
    macro_rules! rows_with {
        ($w:expr, $x:expr, $dot:expr) => {{
            let (w, x): (&[u8], [Row; R]) = ($w, $x);
            let table = table();
            let mut acc = [_mm256_setzero_ps(); R];
            for b in 0..x[0].scales.len() {
                let wq = weights(w, b, table);
                let d = e8m0_half(w[BLOCK_BYTES * b]);
                for r in 0..R {
                    let start = _mm256_setr_epi32(-12 * x[r].sums[b], 0, 0, 0, 0, 0, 0, 0);
                    let sum = $dot(start, wq, codes(&x[r], b));
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(d * x[r].scales[b]), acc[r]);
                }
            }
            acc.map(|a| hsum(a))
        }};
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA; `w` must hold `x[r].scales.len()` blocks and each `x[r]`
    /// 32 codes per block.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn rows_avx2<const R: usize>(w: &[u8], x: [Row; R]) -> [f32; R] {
        let ones = _mm256_set1_epi16(1);
        let dot = |s, wq, xq| _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(wq, xq), ones));
        rows_with!(w, x, dot)
    }

    /// AVX-VNNI's 256-bit `vpdpbusd`.
    ///
    /// # Safety
    /// As [`rows_avx2`], with AVX-VNNI.
    #[target_feature(enable = "avx2,fma,avxvnni")]
    pub unsafe fn rows_avx_vnni<const R: usize>(w: &[u8], x: [Row; R]) -> [f32; R] {
        rows_with!(w, x, |s, wq, xq| _mm256_dpbusd_avx_epi32(s, wq, xq))
    }

    /// AVX-512 VNNI: two blocks per 512-bit `vpdpbusd` (their activation codes are 64 contiguous
    /// bytes), the first block's products in lanes 0-7 and the second's in 8-15 (each block's
    /// offset in its first lane, so its integer sum stays exact), scaled by one vector holding
    /// each block's scale in its half. An odd last block goes through the 256-bit form.
    ///
    /// # Safety
    /// As [`rows_avx2`], with AVX512F/BW/VL/DQ and AVX512_VNNI.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
    pub unsafe fn rows_avx512_vnni<const R: usize>(w: &[u8], x: [Row; R]) -> [f32; R] {
        let nb = x[0].scales.len();
        let table = table();
        let table512 = _mm512_inserti64x4(_mm512_castsi256_si512(table), table, 1);
        let m4 = _mm256_set1_epi8(0x0F);
        // Quadwords of [lo | hi] (each [block b | block b + 1]) in the order lo_b, hi_b, lo_b1, hi_b1.
        let order = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
        let mut acc = [_mm512_setzero_ps(); R];
        let mut offset = [0.0f32; R];
        let mut b = 0;
        while b + 2 <= nb {
            // SAFETY: blocks b and b + 1 lie in `w` (the caller's contract); 16 code bytes each
            // after the scale byte.
            let (c0, c1) = unsafe {
                let at = w.as_ptr().add(BLOCK_BYTES * b + 1);
                (_mm_loadu_si128(at as *const __m128i), _mm_loadu_si128(at.add(BLOCK_BYTES) as *const __m128i))
            };
            let v = _mm256_set_m128i(c1, c0);
            let (lo, hi) = (_mm256_and_si256(v, m4), _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
            let idx = _mm512_permutex2var_epi64(_mm512_castsi256_si512(lo), order, _mm512_castsi256_si512(hi));
            let wq = _mm512_shuffle_epi8(table512, idx);
            let (d0, d1) = (e8m0_half(w[BLOCK_BYTES * b]), e8m0_half(w[BLOCK_BYTES * (b + 1)]));
            for r in 0..R {
                // SAFETY: blocks b and b + 1 of the row: 64 codes.
                let xq = unsafe { _mm512_loadu_si512(x[r].codes.as_ptr().add(32 * b) as *const _) };
                let dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, xq);
                let (s0, s1) = (d0 * x[r].scales[b], d1 * x[r].scales[b + 1]);
                let scale = _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1);
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[r]);
                offset[r] += x[r].sums[b] as f32 * s0 + x[r].sums[b + 1] as f32 * s1;
            }
            b += 2;
        }
        let mut out: [f32; R] = std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]) - 12.0 * offset[r]);
        if b < nb {
            let wq = weights(w, b, table);
            let d = e8m0_half(w[BLOCK_BYTES * b]);
            for r in 0..R {
                let start = _mm256_setr_epi32(-12 * x[r].sums[b], 0, 0, 0, 0, 0, 0, 0);
                let sum = _mm256_dpbusd_epi32(start, wq, codes(&x[r], b));
                out[r] += hsum(_mm256_cvtepi32_ps(sum)) * (d * x[r].scales[b]);
            }
        }
        out
    }
}
