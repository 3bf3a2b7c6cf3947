//! Activation rows quantized to Q8_0 for the integer dot products: per 32 values one scale
//! `d = max|x| / 127` (rounded to f16, as ggml's `quantize_row_q8_0` stores it) and 32 codes
//! `round(x / d)` in [-127, 127]. Codes and scales are kept in separate arrays (ggml interleaves
//! them in 34-byte blocks) so that a kernel loads a block's 32 codes with one aligned-free load and
//! never converts an activation scale from f16 in its inner loop. Each block's code sum is kept
//! too: the kernels multiply unsigned weight codes (Q4_0's nibbles, Q8_0's codes + 128) and take
//! the offset times that sum back off.

use half::f16;

use super::super::q8_0;
use crate::cpu::isa::{self, Isa};

/// `m` rows of `k` activations, quantized.
pub struct QuantizedActs {
    pub k: usize,
    /// `m * k` codes, row after row.
    pub codes: Vec<i8>,
    /// `m * k / 32` scales (the f16 scale widened to f32).
    pub scales: Vec<f32>,
    /// `m * k / 32` sums of each block's codes.
    pub sums: Vec<i32>,
}

/// One quantized activation row.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    pub codes: &'a [i8],
    pub scales: &'a [f32],
    pub sums: &'a [i32],
}

impl QuantizedActs {
    /// Quantizes `x` (`m` rows of `k` values, `k` a multiple of 32) block by block, with the same
    /// arithmetic as `quant::q8_0::quantize_block` (ggml's reference quantizer). The codes never
    /// reach -128, which the sign trick of the SIMD kernels relies on.
    pub fn new(x: &[f32], k: usize) -> QuantizedActs {
        QuantizedActs::new_on(isa::active(), x, k)
    }

    /// [`QuantizedActs::new`] on the given instruction-set path (AVX-512, or the scalar loop for
    /// the others): the same codes, scales and sums bit for bit.
    pub fn new_on(isa: Isa, x: &[f32], k: usize) -> QuantizedActs {
        debug_assert!(k.is_multiple_of(32) && x.len().is_multiple_of(k.max(1)));
        let mut codes = vec![0i8; x.len()];
        let mut scales = vec![0.0f32; x.len() / 32];
        let mut sums = vec![0i32; x.len() / 32];
        let (c, sc, su) = (&mut codes[..], &mut scales[..], &mut sums[..]);
        // AVX-512 where that path is taken; the AVX2 and scalar paths share the reference loop.
        #[cfg(target_arch = "x86_64")]
        if isa.or_available() == Isa::Avx512 {
            // SAFETY: `or_available` only returns paths whose features the CPU reported.
            unsafe { x86::quantize_blocks_avx512(x, c, sc, su) };
            return QuantizedActs { k, codes, scales, sums };
        }
        quantize_blocks(x, c, sc, su);
        QuantizedActs { k, codes, scales, sums }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> Row<'_> {
        let nb = self.k / 32;
        Row {
            codes: &self.codes[i * self.k..(i + 1) * self.k],
            scales: &self.scales[i * nb..(i + 1) * nb],
            sums: &self.sums[i * nb..(i + 1) * nb],
        }
    }
}

/// Every block of 32 activations of `x` into its 32 codes, its scale (the f16 value, widened)
/// and its codes' sum, by ggml's reference quantizer (`q8_0::quantize_block`).
fn quantize_blocks(x: &[f32], codes: &mut [i8], scales: &mut [f32], sums: &mut [i32]) {
    let blocks = x.chunks_exact(32).zip(codes.chunks_exact_mut(32)).zip(scales.iter_mut().zip(sums));
    for ((block, out), (scale, sum)) in blocks {
        let q = q8_0::quantize_block(block);
        for (o, &c) in out.iter_mut().zip(&q[2..]) {
            *o = c as i8;
        }
        *scale = f16::from_le_bytes([q[0], q[1]]).to_f32();
        *sum = out.iter().map(|&c| c as i32).sum();
    }
}

/// The block quantizer on AVX-512: what a decoding step's few-rows products spent in the scalar
/// loop (a libm `roundf` call per value) was ~2.5% of a q4_0 decoding step at the 0.6B shape.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    /// `round(y)` with halves away from zero, as `f32::round`: `y` truncated, plus its sign
    /// where the part cut off is at least a half (that part is exact in f32: no ties are lost
    /// to rounding, as `floor(|y| + 0.5)` would lose 0.49999997).
    #[target_feature(enable = "avx512f")]
    fn round_half_away(y: __m512) -> __m512 {
        let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
        let half_or_more = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_abs_ps(_mm512_sub_ps(y, t)), _mm512_set1_ps(0.5));
        let sign = _mm512_and_si512(_mm512_castps_si512(y), _mm512_set1_epi32(i32::MIN));
        let step = _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_castps_si512(_mm512_set1_ps(1.0))));
        _mm512_mask_add_ps(t, half_or_more, t, step)
    }

    /// `super::quantize_blocks`, each block as two vectors of 16.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn quantize_blocks_avx512(x: &[f32], codes: &mut [i8], scales: &mut [f32], sums: &mut [i32]) {
        let blocks = x.chunks_exact(32).zip(codes.chunks_exact_mut(32)).zip(scales.iter_mut().zip(sums));
        for ((block, out), (scale, sum)) in blocks {
            // SAFETY: both chunks hold 32 values.
            unsafe {
                let v = [_mm512_loadu_ps(block.as_ptr()), _mm512_loadu_ps(block.as_ptr().add(16))];
                let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])));
                let d = amax / 127.0;
                let id = _mm512_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
                let q = v.map(|v| _mm512_cvtps_epi32(round_half_away(_mm512_mul_ps(v, id))));
                _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, _mm512_cvtepi32_epi8(q[0]));
                _mm_storeu_si128(out.as_mut_ptr().add(16) as *mut __m128i, _mm512_cvtepi32_epi8(q[1]));
                *scale = f16::from_f32(d).to_f32();
                *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1]));
            }
        }
    }
}
