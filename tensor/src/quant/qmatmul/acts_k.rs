//! Activation rows quantized to Q8_K for the k-quant dot products (Q4_K, Q5_K, Q6_K), as ggml
//! quantizes `src1` for them (`quantize_row_q8_K`): per 256 values one f32 scale, 256 codes in
//! [-127, 127], and the sums of each 16 codes (`bsums`). The sums carry the terms that do not
//! depend on the weight codes: Q4_K's and Q5_K's sub-block minimums (dmin·m·Σx) and Q6_K's
//! offset of 32 (the kernels multiply the stored unsigned 6-bit codes and subtract 32·Σx), so
//! each costs one multiply per 16 values instead of one per value.

use crate::cpu::isa::{self, Isa};

/// `m` rows of `k` activations (`k` a multiple of 256), quantized to Q8_K.
pub struct QuantizedActsK {
    pub k: usize,
    /// `m * k` codes, row after row.
    pub codes: Vec<i8>,
    /// `m * k / 256` scales.
    pub scales: Vec<f32>,
    /// `m * k / 16` sums of 16 consecutive codes.
    pub bsums: Vec<i16>,
}

/// One activation row of a [`QuantizedActsK`]: its codes, scales and sums.
#[derive(Clone, Copy)]
pub struct RowK<'a> {
    pub codes: &'a [i8],
    pub scales: &'a [f32],
    pub bsums: &'a [i16],
}

impl QuantizedActsK {
    /// Quantizes `x` (`m` rows of `k` values) block by block with ggml's reference arithmetic:
    /// the value of largest magnitude (the first if several tie) maps to -127, so the scale is
    /// `d = max / -127` and `q = min(127, round_half_even(x · (-127 / max)))`; an all-zero block
    /// has d = 0 and zero codes.
    pub fn new(x: &[f32], k: usize) -> QuantizedActsK {
        QuantizedActsK::new_on(isa::active(), x, k)
    }

    /// [`QuantizedActsK::new`] on the given instruction-set path (AVX-512, or the scalar loop for
    /// the others): the same codes, scales and sums bit for bit.
    pub fn new_on(isa: Isa, x: &[f32], k: usize) -> QuantizedActsK {
        debug_assert!(k.is_multiple_of(256) && x.len().is_multiple_of(k.max(1)));
        let mut codes = vec![0i8; x.len()];
        let mut scales = vec![0.0f32; x.len() / 256];
        let mut bsums = vec![0i16; x.len() / 16];
        let blocks = x.chunks_exact(256).zip(codes.chunks_exact_mut(256)).zip(bsums.chunks_exact_mut(16));
        for (((block, out), sums), scale) in blocks.zip(&mut scales) {
            #[cfg(target_arch = "x86_64")]
            if isa.or_available() == Isa::Avx512 {
                // SAFETY: `or_available` only returns paths whose features the CPU reported.
                if let Some(d) = unsafe { x86::quantize_block_avx512(block, out, sums) } {
                    *scale = d;
                    continue;
                }
            }
            *scale = quantize_block(block, out, sums);
        }
        QuantizedActsK { k, codes, scales, bsums }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> RowK<'_> {
        let (nb, ng) = (self.k / 256, self.k / 16);
        RowK {
            codes: &self.codes[i * self.k..(i + 1) * self.k],
            scales: &self.scales[i * nb..(i + 1) * nb],
            bsums: &self.bsums[i * ng..(i + 1) * ng],
        }
    }
}

/// One block of 256 values into `out`'s codes and `sums` (left zero for an all-zero block);
/// returns its scale `d`.
fn quantize_block(block: &[f32], out: &mut [i8], sums: &mut [i16]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in block {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        return 0.0;
    }
    let iscale = -127.0 / max;
    for (o, &v) in out.iter_mut().zip(block) {
        *o = ((iscale * v).round_ties_even() as i32).min(127) as i8;
    }
    for (s, group) in sums.iter_mut().zip(out.chunks_exact(16)) {
        *s = group.iter().map(|&q| q as i16).sum();
    }
    1.0 / iscale
}

/// The block quantizer on AVX-512: in a Q4_K_M decoding step at the Llama 3.2 1B shape the
/// scalar loop (a libm `rintf` call per value) was 3.6% of the time.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `super::quantize_block` on 16 vectors of 16, or None for a block holding a NaN or an
    /// infinity (whose codes the scalar loop's saturating casts define; the caller runs it).
    /// The first value of largest magnitude is found as the first lane equal to the maximum of
    /// the magnitudes; `vcvtps2dq` rounds half to even, as `round_ties_even`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn quantize_block_avx512(block: &[f32], out: &mut [i8], sums: &mut [i16]) -> Option<f32> {
        assert!(block.len() == 256 && out.len() == 256 && sums.len() == 16);
        // SAFETY: 16 loads of 16 within the 256 values.
        let v: [__m512; 16] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(block.as_ptr().add(16 * i)) });
        let mut magnitude = _mm512_setzero_ps();
        let mut unordered = 0u16;
        for x in v {
            magnitude = _mm512_max_ps(magnitude, _mm512_abs_ps(x));
            unordered |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
        }
        let amax = _mm512_reduce_max_ps(magnitude);
        if unordered != 0 || amax == f32::INFINITY {
            return None;
        }
        if amax == 0.0 {
            return Some(0.0);
        }
        let target = _mm512_set1_ps(amax);
        let first = (0..16).find_map(|i| {
            let hits = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_abs_ps(v[i]), target);
            (hits != 0).then(|| block[16 * i + hits.trailing_zeros() as usize])
        })?;
        let iscale = -127.0 / first;
        let (scale, top) = (_mm512_set1_ps(iscale), _mm512_set1_epi32(127));
        for (i, x) in v.into_iter().enumerate() {
            let q = _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(x, scale)), top);
            // SAFETY: 16 codes at 16 i within the 256.
            unsafe { _mm_storeu_si128(out.as_mut_ptr().add(16 * i) as *mut __m128i, _mm512_cvtepi32_epi8(q)) };
            sums[i] = _mm512_reduce_add_epi32(q) as i16;
        }
        Some(1.0 / iscale)
    }
}
