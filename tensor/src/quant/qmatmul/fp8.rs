//! Products of f32 activations with FP8_E4M3 weights (`quant::fp8`), computed on the blocks as
//! they are kept: groups of 8 rows interleaved (`quant::interleave`), each block its 32 E4M3 codes
//! and its tile's f32 scale. E4M3 values are not integers, so unlike the other formats these
//! products are floating point: each block's code values times the activations, summed, times
//! the block's scale.
//!
//! - **AVX512_BF16 with AVX512_VBMI** (the avx512 path where the bf16 GEMM is on): every E4M3
//!   value is exactly a bf16 (3 mantissa bits, exponents 2^-9..2^8), so a code becomes its bf16
//!   with two 128-entry byte lookups (`vpermi2b`: the high and the low byte of the bf16 of its
//!   magnitude; the sign bit is then copied into the high byte), and `vdpbf16ps` multiplies 32
//!   weights per instruction with the activations rounded to bf16, as the bf16 matrix-vector
//!   products do (`cpu::matvec_bf16`: a relative error of at most 2^-8 per activation, below
//!   E4M3's own 2^-4). A 64-byte slice of a tile holds 8 codes of each of the 8 rows; unpacking
//!   the low and high bytes interleaves rows 0, 2, 4, 6 into one register and rows 1, 3, 5, 7
//!   into another, 8 weights per row in each 128-bit lane, which meet the same 8 activations
//!   broadcast to every lane.
//! - **AVX2**: per row, 16 codes at a time made f16 by moving their bits and widened with
//!   `vcvtph2ps`, multiplied by f32 activations with FMA.
//! - **Scalar**: the same sums, one weight at a time.
//!
//! For a decoded token that is 9 bits per weight from memory (the file's 8, and the scale per
//! 32 weights), where the bf16 copy the weights used to be widened to takes 16.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::super::fp8::E4M3;
use super::super::interleave::GROUP;
use super::QKernel;
use crate::cpu::isa;

/// Bytes of a tile (one block column of a group): 8 f32 scales, then 8 rows of 32 codes.
const TILE: usize = GROUP * 36;
/// Where a tile's codes start.
const CODES: usize = GROUP * 4;

/// How the FP8 products are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    Scalar,
    Avx2,
    Avx512Bf16,
}

impl Path {
    /// The path a block-dot kernel choice maps to: the avx512 kernels take `vdpbf16ps` where the
    /// CPU has AVX512_BF16 and AVX512_VBMI and the bf16 GEMM is on (`isa::bf16_gemm`), every
    /// other SIMD choice the AVX2 path.
    pub(crate) fn of(kernel: QKernel) -> Path {
        let f = isa::features();
        match kernel {
            QKernel::Scalar => Path::Scalar,
            QKernel::Avx512Vnni if f.avx512_vbmi && isa::bf16_gemm() => Path::Avx512Bf16,
            _ => Path::Avx2,
        }
    }
}

/// The activation rows as a path reads them: f32 as given, or rounded to bf16 and packed in
/// pairs (`cpu::gemm_bf16::pack_pairs`).
pub(crate) struct Acts<'a> {
    pub path: Path,
    pub k: usize,
    x: &'a [f32],
    pairs: Vec<u32>,
}

impl<'a> Acts<'a> {
    /// `x`: `m` rows of `k` activations, `k` a multiple of 32.
    pub(crate) fn new(path: Path, x: &'a [f32], k: usize) -> Acts<'a> {
        let mut pairs = Vec::new();
        if path == Path::Avx512Bf16 {
            pairs = vec![0u32; x.len() / 2];
            for (row, out) in x.chunks_exact(k).zip(pairs.chunks_exact_mut(k / 2)) {
                crate::cpu::gemm_bf16::pack_pairs(row, out);
            }
        }
        Acts { path, k, x, pairs }
    }

    /// `R` activation rows from row `i` against one group of 8 interleaved rows `w`.
    pub(crate) fn group<const R: usize>(&self, w: &[u8], i: usize) -> [[f32; GROUP]; R] {
        let k = self.k;
        match self.path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Path::of` chose this path only where the CPU has AVX512_BF16 and VBMI;
            // every pair row holds k / 2 lanes and `w` is a whole group of k / 32 tiles.
            Path::Avx512Bf16 => unsafe {
                group_avx512(w, std::array::from_fn(|r| &self.pairs[(i + r) * k / 2..][..k / 2]))
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `QKernel::or_available` left a SIMD kernel only where the CPU has AVX2.
            Path::Avx2 => unsafe { group_avx2(w, std::array::from_fn(|r| &self.x[(i + r) * k..][..k])) },
            _ => std::array::from_fn(|r| group_scalar(w, &self.x[(i + r) * k..][..k])),
        }
    }
}

/// The scale of row `r` in tile `t`.
#[inline]
fn scale(t: &[u8], r: usize) -> f32 {
    f32::from_le_bytes(t[4 * r..4 * r + 4].try_into().expect("4 bytes"))
}

/// One activation row against 8 interleaved rows, weight by weight.
pub(crate) fn group_scalar(w: &[u8], x: &[f32]) -> [f32; GROUP] {
    let mut out = [0.0f32; GROUP];
    for (b, t) in w.chunks_exact(TILE).enumerate() {
        for (r, o) in out.iter_mut().enumerate() {
            let mut sum = 0.0f32;
            for s in 0..4 {
                let codes = &t[CODES + 64 * s + 8 * r..][..8];
                let xs = &x[32 * b + 8 * s..][..8];
                sum += codes.iter().zip(xs).map(|(&q, &v)| E4M3[q as usize] * v).sum::<f32>();
            }
            *o += sum * scale(t, r);
        }
    }
    out
}

/// Row by row over the group's tiles: 16 codes at a time made f16 by moving their bits (the
/// magnitude's 7 bits shifted left by 7, the sign to bit 15), which is the E4M3 value times 2^-8
/// for every code, subnormals included: both formats give subnormals the same structure, and
/// f16's exponent bias is 8 above E4M3's. (The NaN code would read as 480; the loader refuses
/// weights holding it, see `fp8::blocks_from_tiles`.) `vcvtph2ps` widens them, FMA multiplies
/// them by the f32 activations of each of the `R` rows, and each block's sum is multiplied by
/// its scale times 2^8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_avx2<const R: usize>(w: &[u8], x: [&[f32]; R]) -> [[f32; GROUP]; R] {
    let mut out = [[0.0f32; GROUP]; R];
    let sign = _mm256_set1_epi16(0x80);
    for r in 0..GROUP {
        let mut total = [_mm256_setzero_ps(); R];
        for (b, t) in w.chunks_exact(TILE).enumerate() {
            let mut acc = [_mm256_setzero_ps(); R];
            for s in [0, 2] {
                let codes = |s: usize| {
                    let c = &t[CODES + 64 * s + 8 * r..][..8];
                    // SAFETY: 8 bytes read from an 8-byte slice.
                    unsafe { _mm_loadl_epi64(c.as_ptr() as *const __m128i) }
                };
                let q = _mm256_cvtepu8_epi16(_mm_unpacklo_epi64(codes(s), codes(s + 1)));
                // (q + (q & 0x80)) << 7: the sign bit doubled carries past bit 14 into bit 15.
                let h = _mm256_slli_epi16::<7>(_mm256_add_epi16(q, _mm256_and_si256(q, sign)));
                let v = [_mm256_cvtph_ps(_mm256_castsi256_si128(h)), _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(h))];
                for (a, xr) in acc.iter_mut().zip(&x) {
                    let xs = &xr[32 * b + 8 * s..][..16];
                    // SAFETY: 16 f32 read from a 16-element slice.
                    let (x0, x1) = unsafe { (_mm256_loadu_ps(xs.as_ptr()), _mm256_loadu_ps(xs.as_ptr().add(8))) };
                    *a = _mm256_fmadd_ps(v[1], x1, _mm256_fmadd_ps(v[0], x0, *a));
                }
            }
            let d = _mm256_set1_ps(scale(t, r) * 256.0);
            for (tot, a) in total.iter_mut().zip(acc) {
                *tot = _mm256_fmadd_ps(a, d, *tot);
            }
        }
        for (o, tot) in out.iter_mut().zip(total) {
            let h = _mm_add_ps(_mm256_castps256_ps128(tot), _mm256_extractf128_ps::<1>(tot));
            let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            o[r] = _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
        }
    }
    out
}

/// The bf16 of every E4M3 magnitude (codes 0..128), split into its low bytes and its high bytes,
/// each 128-entry table as the two 64-byte halves `vpermi2b` takes.
#[cfg(target_arch = "x86_64")]
fn byte_tables() -> [[u8; 64]; 4] {
    static TABLES: std::sync::OnceLock<[[u8; 64]; 4]> = std::sync::OnceLock::new();
    *TABLES.get_or_init(|| {
        let bits = |m: usize| half::bf16::from_f32(E4M3[m]).to_bits();
        let half = |from: usize, high: bool| std::array::from_fn(|i| (bits(from + i) >> (8 * high as u32)) as u8);
        [half(0, false), half(64, false), half(0, true), half(64, true)]
    })
}

/// Sums each 128-bit lane's 4 values: `[lane 0, lane 1, lane 2, lane 3]`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn lane_sums(v: __m512) -> [f32; 4] {
    let v = _mm512_add_ps(v, _mm512_permute_ps::<0b10_11_00_01>(v));
    let v = _mm512_add_ps(v, _mm512_permute_ps::<0b01_00_11_10>(v));
    let mut all = [0.0f32; 16];
    // SAFETY: 16 f32 into a 16-element array.
    unsafe { _mm512_storeu_ps(all.as_mut_ptr(), v) };
    [all[0], all[4], all[8], all[12]]
}

/// `R` packed bf16 activation rows against one group: per 64-byte slice two lookups, the sign,
/// two unpacks and two `vdpbf16ps` per row; each block's sums times the 8 scales, which sit in
/// the lanes of their rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi")]
unsafe fn group_avx512<const R: usize>(w: &[u8], xp: [&[u32]; R]) -> [[f32; GROUP]; R] {
    let [lo0, lo1, hi0, hi1] = byte_tables().map(|t| {
        // SAFETY: 64 bytes read from a 64-byte array.
        unsafe { _mm512_loadu_si512(t.as_ptr() as *const _) }
    });
    let sign = _mm512_set1_epi8(0x80u8 as i8);
    let even = _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6);
    let odd = _mm512_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7);
    let bh = |v: __m512i| -> __m512bh {
        // SAFETY: the same 512 bits, read as 32 bf16.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
    };
    let (mut tot_even, mut tot_odd) = ([_mm512_setzero_ps(); R], [_mm512_setzero_ps(); R]);
    for (b, t) in w.chunks_exact(TILE).enumerate() {
        let (mut acc_even, mut acc_odd) = ([_mm512_setzero_ps(); R], [_mm512_setzero_ps(); R]);
        for s in 0..4 {
            let slice = &t[CODES + 64 * s..][..64];
            // SAFETY: 64 bytes read from a 64-byte slice.
            let v = unsafe { _mm512_loadu_si512(slice.as_ptr() as *const _) };
            let lo = _mm512_permutex2var_epi8(lo0, v, lo1);
            // The high byte of the magnitude's bf16, or the code's sign bit (A | (B & C)).
            let hi = _mm512_ternarylogic_epi32::<0xF8>(_mm512_permutex2var_epi8(hi0, v, hi1), v, sign);
            let (w_even, w_odd) = (bh(_mm512_unpacklo_epi8(lo, hi)), bh(_mm512_unpackhi_epi8(lo, hi)));
            for r in 0..R {
                let lanes = &xp[r][16 * b + 4 * s..][..4];
                // SAFETY: 4 lanes (8 bf16 activations) read from a 4-element slice.
                let x = bh(_mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(lanes.as_ptr() as *const __m128i) }));
                acc_even[r] = _mm512_dpbf16_ps(acc_even[r], w_even, x);
                acc_odd[r] = _mm512_dpbf16_ps(acc_odd[r], w_odd, x);
            }
        }
        // SAFETY: the tile starts with 8 f32 scales.
        let scales = _mm512_castps256_ps512(unsafe { _mm256_loadu_ps(t.as_ptr() as *const f32) });
        let (s_even, s_odd) = (_mm512_permutexvar_ps(even, scales), _mm512_permutexvar_ps(odd, scales));
        for r in 0..R {
            tot_even[r] = _mm512_fmadd_ps(acc_even[r], s_even, tot_even[r]);
            tot_odd[r] = _mm512_fmadd_ps(acc_odd[r], s_odd, tot_odd[r]);
        }
    }
    std::array::from_fn(|r| {
        let (e, o) = (lane_sums(tot_even[r]), lane_sums(tot_odd[r]));
        [e[0], o[0], e[1], o[1], e[2], o[2], e[3], o[3]]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{GgmlType, dequantize, interleave};

    /// Each path against the product of the decoded rows computed in f64 (the bf16 path's with
    /// its activations rounded to bf16), over codes of every value and a ragged last group.
    #[test]
    fn every_path_matches_the_decoded_product() {
        let (rows, k) = (13, 96);
        let mut src: Vec<u8> = (0..rows * k / 32 * 36).map(|i| (i * 131 + i / 7) as u8).collect();
        for (j, block) in src.chunks_exact_mut(36).enumerate() {
            let d = [0.5f32, -1.5e-3, 2.0, 7e-2][j % 4];
            block[..4].copy_from_slice(&d.to_le_bytes());
            // No NaN codes (S.1111.111): a weight file holding one is broken, and NaN sums
            // compare unequal.
            block[4..].iter_mut().filter(|q| **q & 0x7F == 0x7F).for_each(|q| *q ^= 1);
        }
        let data = interleave::interleave(GgmlType::FP8_E4M3, rows, k, &src);
        let mut wf = vec![0.0f32; rows * k];
        dequantize(GgmlType::FP8_E4M3, &src, &mut wf).unwrap();
        let x: Vec<f32> = (0..4 * k).map(|i| ((i * 29 % 17) as f32 - 8.0) * 0.37).collect();
        let group_bytes = k / 32 * TILE;
        for kernel in QKernel::ALL.into_iter().filter(|k| k.available()) {
            let path = Path::of(kernel);
            let acts = Acts::new(path, &x, k);
            for (g, wg) in data.chunks_exact(group_bytes).enumerate() {
                let four: [[f32; GROUP]; 4] = acts.group(wg, 0);
                for i in 0..4 {
                    let one: [[f32; GROUP]; 1] = acts.group(wg, i);
                    for r in 0..GROUP.min(rows - g * GROUP) {
                        let j = g * GROUP + r;
                        let xr = &x[i * k..][..k];
                        let round =
                            |v: f32| if path == Path::Avx512Bf16 { half::bf16::from_f32(v).to_f32() } else { v };
                        let want: f64 =
                            wf[j * k..][..k].iter().zip(xr).map(|(&w, &v)| w as f64 * round(v) as f64).sum();
                        let scale: f64 = wf[j * k..][..k].iter().zip(xr).map(|(&w, &v)| (w * v).abs() as f64).sum();
                        let tol = 1e-5 * scale + 1e-6;
                        assert!(
                            (four[i][r] as f64 - want).abs() <= tol,
                            "{path:?} row {j} act {i}: {} vs {want}",
                            four[i][r]
                        );
                        assert!((one[0][r] as f64 - want).abs() <= tol, "{path:?} row {j} act {i} alone");
                    }
                }
            }
        }
    }
}
