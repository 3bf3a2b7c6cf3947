//! The x86-64 kernels. Each takes one weight row and `R` activation rows (one for decoding, a
//! few for prefill so that every weight block loaded is used `R` times) and returns the `R` dots.
//!
//! Per block the weight codes are made signed bytes in a 256-bit register (Q8_0 as stored; Q4_0's
//! nibbles unpacked and shifted down by 8, as ggml's `bytes_from_nibbles_32`), then multiplied
//! with ggml's sign trick: the unsigned-by-signed byte products of `maddubs` / `vpdpbusd` take
//! |w| and x·sign(w). That is exact because no code is -128 on the activation side (our quantizer
//! rounds into [-127, 127]) and |w| <= 128 fits an unsigned byte; `maddubs`' i16 pair sums stay
//! below 2·128·127 < 32768. The integer sums are widened to f32 and multiplied by the two scales
//! in a vector accumulator, summed across lanes once per row (ggml's `mul_sum_i8_pairs_float`),
//! so the results differ from the scalar kernel only in the order of f32 additions.

use std::arch::x86_64::*;

/// A weight block's f16 scale (its first two bytes) as f32, with F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_of(wb: *const u8) -> f32 {
    // SAFETY: callers pass a pointer to a whole block.
    let bits = unsafe { u16::from_le_bytes([*wb, *wb.add(1)]) };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// A block's 32 weights as signed bytes in block order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn codes<const Q4: bool>(wb: *const u8) -> __m256i {
    // SAFETY: callers pass a pointer to a whole block (18 bytes for Q4_0, 34 for Q8_0).
    unsafe {
        if Q4 {
            let q = _mm_loadu_si128(wb.add(2) as *const __m128i);
            let m4 = _mm_set1_epi8(0x0F);
            let lo = _mm_and_si128(q, m4);
            let hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
            _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8))
        } else {
            _mm256_loadu_si256(wb.add(2) as *const __m256i)
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum256(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Bytes per block of the weight format.
const fn block_bytes<const Q4: bool>() -> usize {
    if Q4 { 18 } else { 34 }
}

/// The 256-bit kernels differ only in how they form the 8 lanes of i32 sums of |w|·(x·sign w).
macro_rules! kernel_256 {
    ($name:ident, $features:literal, |$aw:ident, $sx:ident| $sum:expr) => {
        /// # Safety
        /// The CPU must have the features named in `target_feature`; `w` must hold
        /// `scales[r].len()` blocks and each `x[r]` 32 codes per block.
        #[target_feature(enable = $features)]
        pub unsafe fn $name<const Q4: bool, const R: usize>(w: &[u8], x: [&[i8]; R], scales: [&[f32]; R]) -> [f32; R] {
            let nb = scales[0].len();
            let mut acc = [[_mm256_setzero_ps(); R]; 2];
            for b in 0..nb {
                // SAFETY: b < nb blocks in w and in every x row (the caller's contract).
                let wb = unsafe { w.as_ptr().add(b * block_bytes::<Q4>()) };
                let wq = codes::<Q4>(wb);
                let $aw = _mm256_sign_epi8(wq, wq);
                let dw = scale_of(wb);
                for r in 0..R {
                    let xv = unsafe { _mm256_loadu_si256(x[r].as_ptr().add(b * 32) as *const __m256i) };
                    let $sx = _mm256_sign_epi8(xv, wq);
                    let sum: __m256i = $sum;
                    let d = _mm256_set1_ps(dw * scales[r][b]);
                    acc[b & 1][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), d, acc[b & 1][r]);
                }
            }
            std::array::from_fn(|r| hsum256(_mm256_add_ps(acc[0][r], acc[1][r])))
        }
    };
}

kernel_256!(rows_avx2, "avx2,fma,f16c", |aw, sx| _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1)));
kernel_256!(rows_avx_vnni, "avx2,fma,f16c,avxvnni", |aw, sx| _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), aw, sx));

/// AVX-512 VNNI: two blocks per 512-bit `vpdpbusd`, the scales of the two blocks in the two
/// halves of the scale vector; an odd last block goes through the 256-bit form.
///
/// # Safety
/// As the 256-bit kernels, with AVX512F/BW/VL/DQ and AVX512_VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
pub unsafe fn rows_avx512_vnni<const Q4: bool, const R: usize>(
    w: &[u8],
    x: [&[i8]; R],
    scales: [&[f32]; R],
) -> [f32; R] {
    let nb = scales[0].len();
    let bs = block_bytes::<Q4>();
    let zero = _mm512_setzero_si512();
    let mut acc = [_mm512_setzero_ps(); R];
    let mut b = 0;
    while b + 2 <= nb {
        // SAFETY: blocks b and b + 1 exist in w and in every x row.
        let (w0, w1) = unsafe { (w.as_ptr().add(b * bs), w.as_ptr().add((b + 1) * bs)) };
        let wq = _mm512_inserti64x4(_mm512_castsi256_si512(codes::<Q4>(w0)), codes::<Q4>(w1), 1);
        let aw = _mm512_abs_epi8(wq);
        let negative = _mm512_movepi8_mask(wq);
        let (d0, d1) = (scale_of(w0), scale_of(w1));
        for r in 0..R {
            let xv = unsafe { _mm512_loadu_si512(x[r].as_ptr().add(b * 32) as *const _) };
            let sx = _mm512_mask_sub_epi8(xv, negative, zero, xv);
            let sum = _mm512_dpbusd_epi32(zero, aw, sx);
            let d = _mm512_insertf32x8(_mm512_set1_ps(d0 * scales[r][b]), _mm256_set1_ps(d1 * scales[r][b + 1]), 1);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), d, acc[r]);
        }
        b += 2;
    }
    let mut out: [f32; R] = std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]));
    if b < nb {
        let wb = unsafe { w.as_ptr().add(b * bs) };
        let wq = codes::<Q4>(wb);
        let aw = _mm256_sign_epi8(wq, wq);
        let dw = scale_of(wb);
        for r in 0..R {
            let xv = unsafe { _mm256_loadu_si256(x[r].as_ptr().add(b * 32) as *const __m256i) };
            let sum = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, _mm256_sign_epi8(xv, wq));
            out[r] += hsum256(_mm256_cvtepi32_ps(sum)) * (dw * scales[r][b]);
        }
    }
    out
}
