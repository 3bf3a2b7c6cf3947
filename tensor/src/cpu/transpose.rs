//! Out-of-place transposition of f32 matrices, `dst[c][r] = src[r][c]`, 8 x 8 blocks at a time
//! through registers.
//!
//! Why: a Linear's weight is stored [N, K] (the Hugging Face layout, one output's weights
//! contiguous), and a prefill multiplies by its transpose. Handed that transposed view, the
//! `gemm` crate packs it value by value at a stride of K (scalar loads and stores, 16% of an
//! f32 GEMM of 512 x 2048 x 6144 on a Zen 4 EPYC); handed a row-major [K, N] copy it packs
//! whole vectors, and the product ran 1.25x faster. Transposing in blocks of 8 x 8 (eight rows
//! loaded as vectors, eight columns stored as vectors) is the fast way to make that copy.

use super::isa::{Isa, dispatch};

/// `dst[c * dst_stride + r] = src[r * src_stride + c]` for `r < rows`, `c < cols`.
///
/// # Panics
/// If either slice is too short for its rows at its stride.
pub fn transpose(
    isa: Isa,
    src: &[f32],
    src_stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [f32],
    dst_stride: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(cols <= src_stride && src.len() >= (rows - 1) * src_stride + cols, "transpose: source too short");
    assert!(rows <= dst_stride && dst.len() >= (cols - 1) * dst_stride + rows, "transpose: destination too short");
    dispatch!(
        isa,
        blocks_scalar(src, src_stride, rows, cols, dst, dst_stride),
        x86::transpose_avx2(src, src_stride, rows, cols, dst, dst_stride),
        x86::transpose_avx2(src, src_stride, rows, cols, dst, dst_stride)
    )
}

/// The plain loops, in 8 x 8 blocks so that both sides stay within a few cache lines.
fn blocks_scalar(src: &[f32], src_stride: usize, rows: usize, cols: usize, dst: &mut [f32], dst_stride: usize) {
    for r0 in (0..rows).step_by(8) {
        for c0 in (0..cols).step_by(8) {
            for r in r0..(r0 + 8).min(rows) {
                for c in c0..(c0 + 8).min(cols) {
                    dst[c * dst_stride + r] = src[r * src_stride + c];
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Whole 8 x 8 blocks in registers (unpack pairs of rows, shuffle pairs of pairs, swap
    /// 128-bit halves), the ragged edges by the plain loops. AVX-512 would move 16 x 16 blocks
    /// with more shuffles per value; the copy is bound by memory either way, so both paths
    /// take this one.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn transpose_avx2(
        src: &[f32],
        src_stride: usize,
        rows: usize,
        cols: usize,
        dst: &mut [f32],
        dst_stride: usize,
    ) {
        let (rows8, cols8) = (rows / 8 * 8, cols / 8 * 8);
        let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
        for r0 in (0..rows8).step_by(8) {
            for c0 in (0..cols8).step_by(8) {
                // SAFETY: rows r0..r0 + 8 and columns c0..c0 + 8 lie inside both matrices
                // (whole blocks only; `transpose` checked the lengths).
                unsafe {
                    let row = |i: usize| _mm256_loadu_ps(sp.add((r0 + i) * src_stride + c0));
                    let (a0, a1, a2, a3) = (row(0), row(1), row(2), row(3));
                    let (a4, a5, a6, a7) = (row(4), row(5), row(6), row(7));
                    // Pairs of rows interleaved: t0 = [a0_0 a1_0 a0_1 a1_1 | a0_4 a1_4 a0_5 a1_5] ...
                    let (t0, t1) = (_mm256_unpacklo_ps(a0, a1), _mm256_unpackhi_ps(a0, a1));
                    let (t2, t3) = (_mm256_unpacklo_ps(a2, a3), _mm256_unpackhi_ps(a2, a3));
                    let (t4, t5) = (_mm256_unpacklo_ps(a4, a5), _mm256_unpackhi_ps(a4, a5));
                    let (t6, t7) = (_mm256_unpacklo_ps(a6, a7), _mm256_unpackhi_ps(a6, a7));
                    // Four rows' values of one column per 128-bit half.
                    let u0 = _mm256_shuffle_ps::<0b01_00_01_00>(t0, t2);
                    let u1 = _mm256_shuffle_ps::<0b11_10_11_10>(t0, t2);
                    let u2 = _mm256_shuffle_ps::<0b01_00_01_00>(t1, t3);
                    let u3 = _mm256_shuffle_ps::<0b11_10_11_10>(t1, t3);
                    let u4 = _mm256_shuffle_ps::<0b01_00_01_00>(t4, t6);
                    let u5 = _mm256_shuffle_ps::<0b11_10_11_10>(t4, t6);
                    let u6 = _mm256_shuffle_ps::<0b01_00_01_00>(t5, t7);
                    let u7 = _mm256_shuffle_ps::<0b11_10_11_10>(t5, t7);
                    // The low halves hold columns 0-3, the high halves 4-7.
                    let out = [
                        _mm256_permute2f128_ps::<0x20>(u0, u4),
                        _mm256_permute2f128_ps::<0x20>(u1, u5),
                        _mm256_permute2f128_ps::<0x20>(u2, u6),
                        _mm256_permute2f128_ps::<0x20>(u3, u7),
                        _mm256_permute2f128_ps::<0x31>(u0, u4),
                        _mm256_permute2f128_ps::<0x31>(u1, u5),
                        _mm256_permute2f128_ps::<0x31>(u2, u6),
                        _mm256_permute2f128_ps::<0x31>(u3, u7),
                    ];
                    for (i, v) in out.into_iter().enumerate() {
                        _mm256_storeu_ps(dp.add((c0 + i) * dst_stride + r0), v);
                    }
                }
            }
            for r in r0..r0 + 8 {
                for c in cols8..cols {
                    dst[c * dst_stride + r] = src[r * src_stride + c];
                }
            }
        }
        for r in rows8..rows {
            for c in 0..cols {
                dst[c * dst_stride + r] = src[r * src_stride + c];
            }
        }
    }
}
