//! Dot products on the blocks: a row of Q8_0 or Q4_0 weights against activations quantized to
//! Q8_0 per 32 (ggml's `vec_dot_q8_0_q8_0` / `vec_dot_q4_0_q8_0`): per block an exact integer
//! sum of code products, scaled by the two f16 scales, the blocks' contributions added in order.
//! The AVX2 path computes the same integer sums and adds them in the same order as the scalar
//! one, so both give bit-identical results; [`Kernel`] forces one (for tests).

use super::f16_at;

/// Which implementation to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Scalar,
    /// x86-64 AVX2 (`_mm256_maddubs_epi16` on |w| and sign-adjusted x, as ggml does).
    Avx2,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn best() -> Kernel {
        if Kernel::Avx2.available() { Kernel::Avx2 } else { Kernel::Scalar }
    }

    pub fn available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 => false,
        }
    }
}

/// Σ w·x over one Q8_0 row `w` and Q8_0 activations `x` (same number of 34-byte blocks).
/// Panics if the lengths differ or are not whole blocks (callers check shapes first); an
/// unavailable kernel falls back to the scalar one.
pub fn q8_0_q8_0(w: &[u8], x: &[u8], kernel: Kernel) -> f32 {
    assert!(w.len() == x.len() && w.len().is_multiple_of(34), "q8_0 dot: {} and {} bytes", w.len(), x.len());
    let mut sum = 0.0f32;
    for (wb, xb) in w.chunks_exact(34).zip(x.chunks_exact(34)) {
        let s = match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 if kernel.available() => {
                // SAFETY: AVX2 was detected at run time; both slices hold 32 bytes past offset 2.
                unsafe { avx2::dot32_i8(&wb[2..34], &xb[2..34]) }
            }
            _ => wb[2..34].iter().zip(&xb[2..34]).map(|(&a, &b)| (a as i8) as i32 * (b as i8) as i32).sum(),
        };
        sum += s as f32 * (f16_at(wb, 0) * f16_at(xb, 0));
    }
    sum
}

/// Σ w·x over one Q4_0 row `w` (18-byte blocks) and Q8_0 activations `x` (34-byte blocks).
pub fn q4_0_q8_0(w: &[u8], x: &[u8], kernel: Kernel) -> f32 {
    assert!(w.len().is_multiple_of(18) && x.len() == w.len() / 18 * 34, "q4_0 dot: {} and {} bytes", w.len(), x.len());
    let mut sum = 0.0f32;
    for (wb, xb) in w.chunks_exact(18).zip(x.chunks_exact(34)) {
        // Unpack to signed codes: weight j in the low nibble of byte j, j + 16 in the high one.
        let mut codes = [0u8; 32];
        for (j, &q) in wb[2..18].iter().enumerate() {
            codes[j] = ((q & 0x0F) as i8 - 8) as u8;
            codes[j + 16] = ((q >> 4) as i8 - 8) as u8;
        }
        let s = match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 if kernel.available() => {
                // SAFETY: as above.
                unsafe { avx2::dot32_i8(&codes, &xb[2..34]) }
            }
            _ => codes.iter().zip(&xb[2..34]).map(|(&a, &b)| (a as i8) as i32 * (b as i8) as i32).sum(),
        };
        sum += s as f32 * (f16_at(wb, 0) * f16_at(xb, 0));
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Σ a_i b_i over 32 signed bytes, exactly. |a| and b·sign(a) turn the signed product into
    /// the unsigned-by-signed `maddubs` (|a| <= 128 and |b| <= 127 keep each pair sum within
    /// i16: 2 * 128 * 127 < 32768, except a = b = -128 which Q8_0 never stores, since codes are
    /// rounded from [-127, 127]).
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot32_i8(a: &[u8], b: &[u8]) -> i32 {
        unsafe {
            let va = _mm256_loadu_si256(a.as_ptr() as *const __m256i);
            let vb = _mm256_loadu_si256(b.as_ptr() as *const __m256i);
            let abs_a = _mm256_sign_epi8(va, va);
            let b_signed = _mm256_sign_epi8(vb, va);
            let pairs = _mm256_maddubs_epi16(abs_a, b_signed);
            let quads = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
            let lo = _mm256_castsi256_si128(quads);
            let hi = _mm256_extracti128_si256(quads, 1);
            let s = _mm_add_epi32(lo, hi);
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
            _mm_cvtsi128_si32(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{GgmlType, dequantize, quantize};

    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 3.0
            })
            .collect()
    }

    /// The integer kernels equal the f32 dot of the dequantized blocks up to f32 rounding of
    /// the per-block sums (each block's integer sum is exact, so the difference is only the
    /// order of the f32 additions: 1e-5 relative to Σ|w x|), and the kernels agree bit for bit.
    #[test]
    fn block_dots_match_the_dequantized_dot_and_each_other() {
        for (n, seed) in [(32, 1), (256, 2), (4096, 3)] {
            let w = values(seed, n);
            let x = values(seed + 100, n);
            let xq = quantize(GgmlType::Q8_0, &x).unwrap();
            let mut xd = vec![0.0; n];
            dequantize(GgmlType::Q8_0, &xq, &mut xd).unwrap();
            for ty in [GgmlType::Q8_0, GgmlType::Q4_0] {
                let wq = quantize(ty, &w).unwrap();
                let mut wd = vec![0.0; n];
                dequantize(ty, &wq, &mut wd).unwrap();
                let want: f64 = wd.iter().zip(&xd).map(|(a, b)| *a as f64 * *b as f64).sum();
                let scale: f64 = wd.iter().zip(&xd).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
                let dot = |k| if ty == GgmlType::Q8_0 { q8_0_q8_0(&wq, &xq, k) } else { q4_0_q8_0(&wq, &xq, k) };
                let scalar = dot(Kernel::Scalar);
                assert!((scalar as f64 - want).abs() <= 1e-5 * scale, "{ty} n={n}: {scalar} vs {want}");
                if Kernel::Avx2.available() {
                    assert_eq!(dot(Kernel::Avx2).to_bits(), scalar.to_bits(), "{ty} n={n}: AVX2 vs scalar");
                }
            }
        }
    }

    #[test]
    fn extreme_codes_stay_exact() {
        // Every code at +-127 (Q8_0's largest), against itself and its negation.
        let mut w = [0u8; 34];
        w[..2].copy_from_slice(&half::f16::from_f32(1.0).to_le_bytes());
        for (i, b) in w[2..].iter_mut().enumerate() {
            *b = if i % 2 == 0 { 127 } else { (-127i8) as u8 };
        }
        for k in [Kernel::Scalar, Kernel::Avx2].into_iter().filter(|k| k.available()) {
            assert_eq!(q8_0_q8_0(&w, &w, k), 32.0 * 127.0 * 127.0, "{k:?}");
        }
    }
}
