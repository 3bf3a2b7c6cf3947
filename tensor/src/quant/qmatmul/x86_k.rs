//! The x86-64 k-quant kernels: one weight row against `R` Q8_K activation rows.
//!
//! Per block the weight codes are unpacked to unsigned bytes, 32 (AVX2) or 64 (AVX-512) weights
//! at a time, and multiplied with the signed activation codes by `maddubs` (u8 × i8, adjacent
//! pairs summed to i16: at most 2·63·127 < 32768, so exact), then by the scale of each 16 weights
//! as i16 pairs summed to i32 (`madd`, or VNNI's `vpdpwssd` which also accumulates). No sign
//! trick is needed: the weight codes are unsigned (Q6_K's offset of 32 is taken off through the
//! activation sums, as ggml's AVX2 kernel does). Per block and row the i32 lanes are widened to
//! f32 and multiplied by d·dy; the minimums (Q4_K, Q5_K) or the offset (Q6_K) come from the
//! per-16 sums `bsums`. The integer sums are those of the scalar kernel; only the order of the
//! f32 additions differs.

use std::arch::x86_64::*;

use super::acts_k::RowK;
use super::scalar_k::KFormat;

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum256(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// The unsigned codes of weights 32 s .. 32 s + 32 of the block at `wb`.
///
/// # Safety
/// `wb` points to a whole block of format `F`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn codes32<const F: u8>(wb: *const u8, s: usize) -> __m256i {
    let m4 = _mm256_set1_epi8(0x0F);
    let nibbles = |q: __m256i, high: bool| {
        if high { _mm256_and_si256(_mm256_srli_epi16(q, 4), m4) } else { _mm256_and_si256(q, m4) }
    };
    // SAFETY: every offset below stays inside the block (the layouts of `scalar_k::code`).
    unsafe {
        match format(F) {
            KFormat::Q4K => nibbles(_mm256_loadu_si256(wb.add(16 + 32 * (s / 2)) as *const __m256i), s % 2 == 1),
            KFormat::Q5K => {
                let low = nibbles(_mm256_loadu_si256(wb.add(48 + 32 * (s / 2)) as *const __m256i), s % 2 == 1);
                let qh = _mm256_loadu_si256(wb.add(16) as *const __m256i);
                let bit = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(s as i32)), _mm256_set1_epi8(1));
                _mm256_or_si256(low, _mm256_slli_epi16(bit, 4))
            }
            KFormat::Q6K => {
                let (h, t) = (s / 4, s % 4);
                let low = nibbles(_mm256_loadu_si256(wb.add(64 * h + 32 * (t % 2)) as *const __m256i), t >= 2);
                let qh = _mm256_loadu_si256(wb.add(128 + 32 * h) as *const __m256i);
                let hi = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * t as i32)), _mm256_set1_epi8(3));
                _mm256_or_si256(low, _mm256_slli_epi16(hi, 4))
            }
        }
    }
}

/// An f16 at `p` widened with F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller passes a pointer to two readable bytes.
    let bits = unsafe { u16::from_le_bytes([*p, *p.add(1)]) };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// What `scalar_k::block_scales` returns (the scale and minimum of each 16 weights, `d`,
/// `dmin`), computed without a per-sub-block loop: Q4_K's and Q5_K's twelve bytes are read as
/// three u32 words and the sixteen 6-bit fields separated with masks and shifts four at a time
/// (each byte of a word is one field's low bits; bits 6-7 of the first eight bytes are the high
/// bits of the last four scales and minimums).
///
/// # Safety
/// `wb` points to a whole block of format `F`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_scales<const F: u8>(wb: *const u8) -> ([i16; 16], [i16; 16], f32, f32) {
    // SAFETY: every offset stays inside the block.
    unsafe {
        if format(F) == KFormat::Q6K {
            let sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add(192) as *const __m128i));
            let mut out = [0i16; 16];
            _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, sc);
            return (out, [0; 16], f16_at(wb.add(208)), 0.0);
        }
        let word = |i: usize| {
            u32::from_le_bytes([*wb.add(4 + 4 * i), *wb.add(5 + 4 * i), *wb.add(6 + 4 * i), *wb.add(7 + 4 * i)])
        };
        let (u0, u1, u2) = (word(0), word(1), word(2));
        let high = |u: u32| ((u >> 6) & 0x0303_0303) << 4;
        let scales = [u0 & 0x3f3f_3f3f, (u2 & 0x0f0f_0f0f) | high(u0)];
        let mins = [u1 & 0x3f3f_3f3f, ((u2 >> 4) & 0x0f0f_0f0f) | high(u1)];
        // Eight bytes to sixteen i16, each twice (one per group of 16 weights).
        let widen = |w: [u32; 2]| {
            let v = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, w[1] as i32, w[0] as i32));
            let mut out = [0i16; 16];
            _mm256_storeu_si256(
                out.as_mut_ptr() as *mut __m256i,
                _mm256_set_m128i(_mm_unpackhi_epi16(v, v), _mm_unpacklo_epi16(v, v)),
            );
            out
        };
        (widen(scales), widen(mins), f16_at(wb), f16_at(wb.add(2)))
    }
}

/// The format a kernel's const parameter names (0: Q4_K, 1: Q5_K, 2: Q6_K).
#[inline(always)]
const fn format(f: u8) -> KFormat {
    match f {
        0 => KFormat::Q4K,
        1 => KFormat::Q5K,
        _ => KFormat::Q6K,
    }
}

/// The const parameter of the kernels for a format.
pub const fn id(f: KFormat) -> u8 {
    match f {
        KFormat::Q4K => 0,
        KFormat::Q5K => 1,
        KFormat::Q6K => 2,
    }
}

/// Adds one block's integer lanes `acc` (i32, scaled sums of code products) and its per-16
/// terms to the f32 accumulator: `d·dy·(acc − 32·Σ sc·bsum)` for Q6_K, `d·dy·acc −
/// dmin·dy·Σ m·bsum` otherwise.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn finish_block<const F: u8>(
    acc: __m256i,
    bsums: *const i16,
    sc16: __m256i,
    m16: __m256i,
    d: f32,
    dmin: f32,
    dy: f32,
    out: __m256,
) -> __m256 {
    // SAFETY: the caller passes the 16 sums of this block.
    let bs = unsafe { _mm256_loadu_si256(bsums as *const __m256i) };
    if format(F) == KFormat::Q6K {
        let offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc, offset)), _mm256_set1_ps(d * dy), out)
    } else {
        let out = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(d * dy), out);
        _mm256_fnmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(m16, bs)), _mm256_set1_ps(dmin * dy), out)
    }
}

/// The 256-bit kernels differ only in how they add `maddubs` pairs times scales to the i32 lanes.
macro_rules! kernel_256 {
    ($name:ident, $features:literal, |$acc:ident, $pairs:ident, $scales:ident| $sum:expr) => {
        /// # Safety
        /// The CPU must have the features named in `target_feature`; `w` must hold as many
        /// blocks of format `F` as each `x[r]` has scales, and each `x[r]` 256 codes and 16
        /// sums per block.
        #[target_feature(enable = $features)]
        pub unsafe fn $name<const F: u8, const R: usize>(w: &[u8], x: [RowK; R]) -> [f32; R] {
            let f = format(F);
            let nb = x[0].scales.len();
            let mut out = [_mm256_setzero_ps(); R];
            for b in 0..nb {
                let wb = &w[b * f.block_bytes()..(b + 1) * f.block_bytes()];
                let (sc, m, d, dmin) = unsafe { block_scales::<F>(wb.as_ptr()) };
                let mut acc = [_mm256_setzero_si256(); R];
                for s in 0..8 {
                    // SAFETY: `wb` is a whole block.
                    let codes = unsafe { codes32::<F>(wb.as_ptr(), s) };
                    let $scales = _mm256_set_m128i(_mm_set1_epi16(sc[2 * s + 1]), _mm_set1_epi16(sc[2 * s]));
                    for r in 0..R {
                        // SAFETY: 256 codes per block in every row (the caller's contract).
                        let xv =
                            unsafe { _mm256_loadu_si256(x[r].codes.as_ptr().add(256 * b + 32 * s) as *const __m256i) };
                        let $pairs = _mm256_maddubs_epi16(codes, xv);
                        let $acc = acc[r];
                        acc[r] = $sum;
                    }
                }
                // SAFETY: both arrays hold 16 i16.
                let (sc16, m16) = unsafe {
                    (
                        _mm256_loadu_si256(sc.as_ptr() as *const __m256i),
                        _mm256_loadu_si256(m.as_ptr() as *const __m256i),
                    )
                };
                for r in 0..R {
                    let bs = unsafe { x[r].bsums.as_ptr().add(16 * b) };
                    out[r] = unsafe { finish_block::<F>(acc[r], bs, sc16, m16, d, dmin, x[r].scales[b], out[r]) };
                }
            }
            std::array::from_fn(|r| hsum256(out[r]))
        }
    };
}

kernel_256!(rows_avx2, "avx2,fma,f16c", |acc, pairs, scales| _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, scales)));
kernel_256!(rows_avx_vnni, "avx2,fma,f16c,avxvnni", |acc, pairs, scales| _mm256_dpwssd_avx_epi32(acc, pairs, scales));

/// Scale-lane indices for 64 weights: lane `i` of the 32 i16 products takes the scale of group
/// `i / 8` of the four groups of 16 weights in the chunk.
static GROUP_OF_LANE: [i16; 32] =
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];

/// The unsigned codes of weights 64 c .. 64 c + 64 of the block at `wb`.
///
/// # Safety
/// `wb` points to a whole block of format `F`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
unsafe fn codes64<const F: u8>(wb: *const u8, c: usize) -> __m512i {
    // SAFETY: every offset below stays inside the block.
    unsafe {
        if format(F) == KFormat::Q6K {
            // Weights 128 h + 64 p .. + 64: nibbles of ql[64 h .. 64 h + 64] (low for p = 0),
            // high bits 4 p and 4 p + 2 of qh[32 h .. 32 h + 32].
            let (h, p) = (c / 2, c % 2);
            let ql = _mm512_loadu_si512(wb.add(64 * h) as *const _);
            let m4 = _mm512_set1_epi8(0x0F);
            let low = if p == 1 { _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4) } else { _mm512_and_si512(ql, m4) };
            let qh = _mm256_loadu_si256(wb.add(128 + 32 * h) as *const __m256i);
            let qh2 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), qh, 1);
            let shifts = _mm512_inserti64x4(_mm512_set1_epi16(4 * p as i16), _mm256_set1_epi16(4 * p as i16 + 2), 1);
            let hi = _mm512_and_si512(_mm512_srlv_epi16(qh2, shifts), _mm512_set1_epi8(3));
            _mm512_or_si512(low, _mm512_slli_epi16(hi, 4))
        } else {
            let lo = codes32::<F>(wb, 2 * c);
            let hi = codes32::<F>(wb, 2 * c + 1);
            _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
        }
    }
}

/// How far ahead [`rows_avx512_vnni`] prefetches its rows where `isa::stream_prefetch` says so
/// (Intel CPUs).
const STREAM_AHEAD_BYTES: usize = 4 << 10;

/// AVX-512 VNNI: 64 weights per `maddubs`, their scales applied and accumulated by `vpdpwssd`;
/// per block the 16 i32 lanes are folded to 8 and finished as in the 256-bit kernels.
///
/// # Safety
/// As the 256-bit kernels, with AVX512F/BW/VL/DQ and AVX512_VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
pub unsafe fn rows_avx512_vnni<const F: u8, const R: usize>(w: &[u8], x: [RowK; R]) -> [f32; R] {
    let f = format(F);
    let nb = x[0].scales.len();
    let mut out = [_mm256_setzero_ps(); R];
    // SAFETY: a static of 32 i16.
    let lanes = unsafe { _mm512_loadu_si512(GROUP_OF_LANE.as_ptr() as *const _) };
    let prefetch = crate::cpu::isa::stream_prefetch();
    for b in 0..nb {
        let wb = &w[b * f.block_bytes()..(b + 1) * f.block_bytes()];
        if prefetch {
            // A Linear's rows lie one after another: one stream per thread (see
            // `isa::stream_prefetch`); a prefetch never faults, so reaching past the row is harmless.
            for line in (0..f.block_bytes()).step_by(64) {
                _mm_prefetch::<_MM_HINT_T1>(wb.as_ptr().wrapping_add(STREAM_AHEAD_BYTES + line) as *const i8);
            }
        }
        let (sc, m, d, dmin) = unsafe { block_scales::<F>(wb.as_ptr()) };
        // SAFETY: both arrays hold 16 i16.
        let (sc16, m16) = unsafe {
            (_mm256_loadu_si256(sc.as_ptr() as *const __m256i), _mm256_loadu_si256(m.as_ptr() as *const __m256i))
        };
        let sc_wide = _mm512_castsi256_si512(sc16);
        let mut acc = [_mm512_setzero_si512(); R];
        for c in 0..4 {
            // SAFETY: `wb` is a whole block.
            let codes = unsafe { codes64::<F>(wb.as_ptr(), c) };
            let scales = _mm512_permutexvar_epi16(_mm512_add_epi16(lanes, _mm512_set1_epi16(4 * c as i16)), sc_wide);
            for r in 0..R {
                // SAFETY: 256 codes per block in every row.
                let xv = unsafe { _mm512_loadu_si512(x[r].codes.as_ptr().add(256 * b + 64 * c) as *const _) };
                acc[r] = _mm512_dpwssd_epi32(acc[r], _mm512_maddubs_epi16(codes, xv), scales);
            }
        }
        for r in 0..R {
            let folded = _mm256_add_epi32(_mm512_castsi512_si256(acc[r]), _mm512_extracti64x4_epi64(acc[r], 1));
            let bs = unsafe { x[r].bsums.as_ptr().add(16 * b) };
            out[r] = unsafe { finish_block::<F>(folded, bs, sc16, m16, d, dmin, x[r].scales[b], out[r]) };
        }
    }
    std::array::from_fn(|r| hsum256(out[r]))
}
