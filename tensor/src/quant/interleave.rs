//! Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4 and FP8_E4M3 weights kept as groups of 8 rows interleaved,
//! the layout the CPU kernels read (ggml's CPU backend repacks some of the same formats at load for
//! the same reason: `block_q4_0x8`, `block_mxfp4x4`).
//!
//! A decoded token multiplies every weight row by the same activation row. Row by row, each
//! 32-weight block costs its own unpacking, scale conversion and sign handling besides the one
//! dot-product instruction that does the work, and Q4_0 decode ends up bound by instructions,
//! not memory. With 8 rows side by side, one 512-bit register holds 8 bytes of each of 8 rows, the
//! activation bytes they meet are one 8-byte broadcast shared by all 8, and the 8 scales are one
//! 16-byte load. The same bytes, moved: a group of 8 rows, for each block column `b`, is a tile of
//! - the 8 rows' scales of block `b` (16 bytes of f16, then for Q4_1 and Q5_1 16 bytes of f16
//!   minimums, then for Q5_0 and Q5_1 32 bytes of their u32 fifth bits `qh`; MXFP4's 8 E8M0
//!   bytes; FP8_E4M3's 32 bytes of f32): each field of ggml's block header, the 8 rows' values
//!   side by side, then
//! - for each 8-byte slice `o` of a block's code bytes (2 for the 16 nibble bytes of Q4_0, Q4_1,
//!   Q5_0, Q5_1 and MXFP4, 4 for Q8_0's and FP8_E4M3's 32 codes): row 0's bytes `8o..8o + 8`, row
//!   1's, ..., row 7's (64 bytes).
//!
//! The last group is padded with zero rows (scale 0) when the row count is not a multiple of 8.

use half::bf16;

use super::fp8::E4M3;
use super::mxfp4::{DOUBLED, e8m0_half};
use super::{GgmlType, f16_at};

/// Rows in a group.
pub const GROUP: usize = 8;

/// Whether `ty` is stored interleaved.
pub fn applies(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | MXFP4 | FP8_E4M3)
}

/// The fields of one block's header in ggml's order, their bytes each: an f16 scale; Q4_1's f16
/// scale and minimum; Q5_0's f16 scale and u32 of fifth bits (`block_q5_0`: `d`, `qh`); Q5_1's
/// scale, minimum and fifth bits (`block_q5_1`: `d`, `m`, `qh`); MXFP4's E8M0 byte; FP8_E4M3's
/// f32 scale. The 8 rows' values of a field lie side by side.
fn fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::MXFP4 => &[1],
        GgmlType::FP8_E4M3 => &[4],
        GgmlType::Q4_1 => &[2, 2],
        GgmlType::Q5_0 => &[2, 4],
        GgmlType::Q5_1 => &[2, 2, 4],
        _ => &[2],
    }
}

/// Bytes of one block's header (every field of [`fields`]).
fn head(ty: GgmlType) -> usize {
    fields(ty).iter().sum()
}

/// Where the 8 rows' fifth bits (`qh`, 4 bytes a row) start in a Q5_0 or Q5_1 tile: after the
/// scales (and Q5_1's minimums).
pub(crate) const fn high_bits_at(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q5_1 => 32,
        _ => 16,
    }
}

/// Block `b`'s scale of row `r` in a tile `t` (f16 widened, E8M0 as ggml halves it, or f32).
#[inline]
fn scale(ty: GgmlType, t: &[u8], r: usize) -> f32 {
    match ty {
        GgmlType::MXFP4 => e8m0_half(t[r]),
        GgmlType::FP8_E4M3 => f32::from_le_bytes([t[4 * r], t[4 * r + 1], t[4 * r + 2], t[4 * r + 3]]),
        _ => f16_at(t, 2 * r),
    }
}

/// Code bytes of one block of one row (the block without its scale).
fn code_bytes(ty: GgmlType) -> usize {
    ty.type_size() - head(ty)
}

/// Bytes of one tile (a block column of a group).
pub fn tile_bytes(ty: GgmlType) -> usize {
    GROUP * ty.type_size()
}

/// Bytes of the interleaved form of `rows` x `cols`.
pub fn len(ty: GgmlType, rows: usize, cols: usize) -> usize {
    rows.div_ceil(GROUP) * (cols / ty.block_size()) * tile_bytes(ty)
}

/// Where byte `i` of row `r` (of its group) block `b`'s GGUF block lies in the group's bytes.
#[inline]
fn position(ty: GgmlType, r: usize, b: usize, i: usize) -> usize {
    let (tile, h) = (b * tile_bytes(ty), head(ty));
    if i < h {
        // The 8 rows' values of each header field in turn (scales, minimums, fifth bits).
        let mut start = 0;
        for &f in fields(ty) {
            if i < start + f {
                return tile + GROUP * start + f * r + (i - start);
            }
            start += f;
        }
        unreachable!("i < head(ty)")
    } else {
        tile + h * GROUP + (i - h) / 8 * 64 + 8 * r + (i - h) % 8
    }
}

/// The interleaved form of `src`, `rows` rows of `cols` weights in GGUF's row-after-row blocks.
pub fn interleave(ty: GgmlType, rows: usize, cols: usize, src: &[u8]) -> Vec<u8> {
    debug_assert!(applies(ty) && code_bytes(ty).is_multiple_of(8));
    let (nb, bs) = (cols / ty.block_size(), ty.type_size());
    let group_bytes = nb * tile_bytes(ty);
    let mut out = vec![0u8; len(ty, rows, cols)];
    for (j, row) in src.chunks_exact(nb * bs).take(rows).enumerate() {
        let group = &mut out[j / GROUP * group_bytes..][..group_bytes];
        for (b, block) in row.chunks_exact(bs).enumerate() {
            for (at, len) in pieces(ty) {
                let to = position(ty, j % GROUP, b, at);
                group[to..to + len].copy_from_slice(&block[at..at + len]);
            }
        }
    }
    out
}

/// Row `j` of the interleaved `data` back in GGUF's layout (`out`: one row's bytes).
pub fn gguf_row(ty: GgmlType, cols: usize, data: &[u8], j: usize, out: &mut [u8]) {
    let (nb, bs) = (cols / ty.block_size(), ty.type_size());
    let group_bytes = nb * tile_bytes(ty);
    let group = &data[j / GROUP * group_bytes..][..group_bytes];
    for (b, block) in out.chunks_exact_mut(bs).enumerate() {
        for (at, len) in pieces(ty) {
            let from = position(ty, j % GROUP, b, at);
            block[at..at + len].copy_from_slice(&group[from..from + len]);
        }
    }
}

/// The runs of a GGUF block that stay together: each field of its header, then each 8-byte slice
/// of its codes (offset in the block, length).
fn pieces(ty: GgmlType) -> impl Iterator<Item = (usize, usize)> {
    let h = head(ty);
    let starts = fields(ty).iter().scan(0, |at, &f| {
        *at += f;
        Some((*at - f, f))
    });
    starts.chain((0..code_bytes(ty) / 8).map(move |s| (h + 8 * s, 8)))
}

/// The rows of one group (`group`: its bytes) decoded into `out`, `out.len() / cols` rows (8, or
/// fewer for the last group), each weight `to(v)` of the f32 value `v` that `quant::dequantize`
/// gives on the GGUF rows, bit for bit: `(nibble - 8) · d` for Q4_0, `nibble · d + m` for Q4_1,
/// `(code - 16) · d` for Q5_0 and `code · d + m` for Q5_1 (the code: the nibble and its fifth
/// bit from `qh`, ggml's `dequantize_row_q5_{0,1}`), `code · d` for Q8_0, `doubled E2M1 value ·
/// half the scale` for MXFP4, `E4M3 value · scale` for FP8_E4M3. (The GEMM path decodes straight
/// to bf16 with `to` = `bf16::from_f32`.)
pub fn dequantize_group<T>(ty: GgmlType, cols: usize, group: &[u8], out: &mut [T], to: impl Fn(f32) -> T) {
    let rows = out.len() / cols;
    let h = head(ty);
    for (b, t) in group.chunks_exact(tile_bytes(ty)).enumerate() {
        for r in 0..rows {
            let d = scale(ty, t, r);
            let m = if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) { f16_at(t, 16 + 2 * r) } else { 0.0 };
            let qh = match ty {
                GgmlType::Q5_0 | GgmlType::Q5_1 => super::q5_0::high_bits(t, high_bits_at(ty) + 4 * r),
                _ => 0,
            };
            // The 5-bit code of weight c with low nibble n.
            let code = |n: u8, c: usize| (n as u32 | ((qh >> c) & 1) << 4) as i32;
            let o = &mut out[r * cols + 32 * b..][..32];
            for s in 0..code_bytes(ty) / 8 {
                let bytes = &t[h * GROUP + 64 * s + 8 * r..][..8];
                for (i, &q) in bytes.iter().enumerate() {
                    match ty {
                        GgmlType::Q4_0 => {
                            o[8 * s + i] = to(((q & 0x0F) as i32 - 8) as f32 * d);
                            o[16 + 8 * s + i] = to(((q >> 4) as i32 - 8) as f32 * d);
                        }
                        GgmlType::MXFP4 => {
                            o[8 * s + i] = to(DOUBLED[(q & 0x0F) as usize] as f32 * d);
                            o[16 + 8 * s + i] = to(DOUBLED[(q >> 4) as usize] as f32 * d);
                        }
                        GgmlType::Q4_1 => {
                            o[8 * s + i] = to((q & 0x0F) as f32 * d + m);
                            o[16 + 8 * s + i] = to((q >> 4) as f32 * d + m);
                        }
                        GgmlType::Q5_0 => {
                            o[8 * s + i] = to((code(q & 0x0F, 8 * s + i) - 16) as f32 * d);
                            o[16 + 8 * s + i] = to((code(q >> 4, 16 + 8 * s + i) - 16) as f32 * d);
                        }
                        GgmlType::Q5_1 => {
                            o[8 * s + i] = to(code(q & 0x0F, 8 * s + i) as f32 * d + m);
                            o[16 + 8 * s + i] = to(code(q >> 4, 16 + 8 * s + i) as f32 * d + m);
                        }
                        GgmlType::FP8_E4M3 => o[8 * s + i] = to(E4M3[q as usize] * d),
                        _ => o[8 * s + i] = to((q as i8) as f32 * d),
                    }
                }
            }
        }
    }
}

/// [`dequantize_group`] to bf16 (`bf16::from_f32` of the same f32 values), vectorised where the
/// CPU has AVX512_BF16: the products `(code) · d` are the same single-rounded f32 products, and
/// `vcvtne2ps2bf16` rounds to nearest even as `bf16::from_f32` does (no NaN can arise here, and
/// the blocks whose weights would be subnormal, which the instruction flushes, are decoded one by
/// one). Q4_1, Q5_0 and Q5_1 (a minimum, or fifth bits, besides the nibbles) take the portable
/// loop.
pub fn dequantize_group_bf16(ty: GgmlType, cols: usize, group: &[u8], out: &mut [bf16]) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::isa::features().avx512_bf16 && !matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1) {
        if ty == GgmlType::FP8_E4M3 {
            // SAFETY: as below.
            unsafe { x86::group_bf16_fp8(cols, group, out) };
            return;
        }
        // SAFETY: the CPU has AVX-512 with BF16; `group` is a whole group of `cols` columns and
        // `out` whole rows of it (checked by the slicing inside).
        unsafe { x86::group_bf16(ty, cols, group, out) };
        return;
    }
    dequantize_group(ty, cols, group, out, bf16::from_f32)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{DOUBLED, E4M3, GROUP, GgmlType, bf16, e8m0_half, head, scale, tile_bytes};

    /// FP8_E4M3 rows: per row and block, the 32 codes made f16 by moving their bits (E4M3 value
    /// times 2^-8 for every code but NaN, which the loader refuses; see `qmatmul::fp8`), widened,
    /// times the block's scale times 2^8 (the same single-rounded f32 product as `E4M3[q] * d`),
    /// rounded to bf16. A block whose scale could make a weight subnormal (below 2^-117; the
    /// smallest code is 2^-9) is decoded one by one, since `vcvtne2ps2bf16` flushes subnormals.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
    pub unsafe fn group_bf16_fp8(cols: usize, group: &[u8], out: &mut [bf16]) {
        let ty = GgmlType::FP8_E4M3;
        let (tile, h) = (tile_bytes(ty), head(ty));
        let rows = out.len() / cols;
        let sign = _mm512_set1_epi16(0x80);
        for (b, t) in group.chunks_exact(tile).enumerate() {
            for r in 0..rows {
                let d = scale(ty, t, r);
                let o = &mut out[r * cols + 32 * b..][..32];
                let codes = |s: usize| &t[h * GROUP + 64 * s + 8 * r..][..8];
                if d.abs() < 2f32.powi(-117) {
                    for s in 0..4 {
                        for (i, &q) in codes(s).iter().enumerate() {
                            o[8 * s + i] = bf16::from_f32(E4M3[q as usize] * d);
                        }
                    }
                    continue;
                }
                let load = |s: usize| {
                    // SAFETY: 8 bytes read from an 8-byte slice.
                    unsafe { _mm_loadl_epi64(codes(s).as_ptr() as *const __m128i) }
                };
                let q = _mm256_inserti128_si256::<1>(
                    _mm256_castsi128_si256(_mm_unpacklo_epi64(load(0), load(1))),
                    _mm_unpacklo_epi64(load(2), load(3)),
                );
                let q = _mm512_cvtepu8_epi16(q);
                let halves = _mm512_slli_epi16::<7>(_mm512_add_epi16(q, _mm512_and_si512(q, sign)));
                let dv = _mm512_set1_ps(d * 256.0);
                let lo = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(halves)), dv);
                let hi = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64::<1>(halves)), dv);
                let v = _mm512_cvtne2ps_pbh(hi, lo);
                // SAFETY: 32 bf16 into a 32-element slice.
                unsafe { _mm512_storeu_si512(o.as_mut_ptr() as *mut _, std::mem::transmute::<__m512bh, __m512i>(v)) };
            }
        }
    }

    /// Per row and block: the 16 (Q4_0, MXFP4) or 32 (Q8_0) code bytes gathered from the tile's
    /// 8-byte slices, widened to i32 (MXFP4's nibbles through the table of doubled values first),
    /// offset, converted, scaled by the block's `d`, rounded to bf16.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
    pub unsafe fn group_bf16(ty: GgmlType, cols: usize, group: &[u8], out: &mut [bf16]) {
        let (tile, h) = (tile_bytes(ty), head(ty));
        let rows = out.len() / cols;
        // SAFETY: 16 bytes read from a 16-byte array.
        let table = unsafe { _mm_loadu_si128(DOUBLED.as_ptr() as *const __m128i) };
        let slice = |t: &[u8], s: usize, r: usize| -> __m128i {
            let b = &t[h * GROUP + 64 * s + 8 * r..][..8];
            // SAFETY: 8 bytes read from an 8-byte slice.
            unsafe { _mm_loadl_epi64(b.as_ptr() as *const __m128i) }
        };
        let store = |o: &mut [bf16], lo: __m512, hi: __m512| {
            let v = _mm512_cvtne2ps_pbh(hi, lo);
            let o = &mut o[..32];
            // SAFETY: 32 bf16 into a 32-element slice.
            unsafe { _mm512_storeu_si512(o.as_mut_ptr() as *mut _, std::mem::transmute::<__m512bh, __m512i>(v)) };
        };
        for (b, t) in group.chunks_exact(tile).enumerate() {
            for r in 0..rows {
                let d = _mm512_set1_ps(scale(ty, t, r));
                let o = &mut out[r * cols + 32 * b..];
                let widen = |v: __m128i, offset: i32| {
                    let i = _mm512_sub_epi32(_mm512_cvtepi8_epi32(v), _mm512_set1_epi32(offset));
                    _mm512_mul_ps(_mm512_cvtepi32_ps(i), d)
                };
                if ty == GgmlType::MXFP4 && t[r] < 2 {
                    // Scales 2^-128 and 2^-127 make subnormal weights, which `vcvtne2ps2bf16`
                    // flushes to zero and `bf16::from_f32` keeps: decoded one by one.
                    let d = e8m0_half(t[r]);
                    for s in 0..2 {
                        for (i, &q) in t[h * GROUP + 64 * s + 8 * r..][..8].iter().enumerate() {
                            o[8 * s + i] = bf16::from_f32(DOUBLED[(q & 0x0F) as usize] as f32 * d);
                            o[16 + 8 * s + i] = bf16::from_f32(DOUBLED[(q >> 4) as usize] as f32 * d);
                        }
                    }
                } else if ty != GgmlType::Q8_0 {
                    let q = _mm_unpacklo_epi64(slice(t, 0, r), slice(t, 1, r));
                    let m4 = _mm_set1_epi8(0x0F);
                    let (lo, hi) = (_mm_and_si128(q, m4), _mm_and_si128(_mm_srli_epi16(q, 4), m4));
                    if ty == GgmlType::MXFP4 {
                        store(o, widen(_mm_shuffle_epi8(table, lo), 0), widen(_mm_shuffle_epi8(table, hi), 0));
                    } else {
                        store(o, widen(lo, 8), widen(hi, 8));
                    }
                } else {
                    let a = _mm_unpacklo_epi64(slice(t, 0, r), slice(t, 1, r));
                    let c = _mm_unpacklo_epi64(slice(t, 2, r), slice(t, 3, r));
                    store(o, widen(a, 0), widen(c, 0));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte of every row lands in its own place and comes back, for row counts that fill
    /// the last group and that do not.
    #[test]
    fn interleaving_is_a_permutation_that_gguf_row_undoes() {
        use GgmlType::*;
        for ty in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4, FP8_E4M3] {
            for rows in [1, 8, 13] {
                let cols = 96;
                let row_bytes = cols / 32 * ty.type_size();
                let mut src: Vec<u8> = (0..rows * row_bytes).map(|i| (i * 7 + i / 251) as u8).collect();
                if ty == GgmlType::FP8_E4M3 {
                    // Finite scales of either sign and every magnitude, down to ones that make
                    // subnormal weights; every code but NaN (which the loader refuses).
                    for (k, block) in src.chunks_exact_mut(36).enumerate() {
                        let d = [0.75f32, -2e-3, 3e-38, 1.5e-40][k % 4];
                        block[..4].copy_from_slice(&d.to_le_bytes());
                        block[4..].iter_mut().filter(|q| **q & 0x7F == 0x7F).for_each(|q| *q ^= 1);
                    }
                }
                let data = interleave(ty, rows, cols, &src);
                assert_eq!(data.len(), len(ty, rows, cols));
                let mut hit = vec![0u32; cols / 32 * tile_bytes(ty)];
                for r in 0..GROUP {
                    for b in 0..cols / 32 {
                        for i in 0..ty.type_size() {
                            hit[position(ty, r, b, i)] += 1;
                        }
                    }
                }
                assert!(hit.iter().all(|&h| h == 1), "{ty}: each byte of a group is one row's byte");
                let mut row = vec![0u8; row_bytes];
                for j in 0..rows {
                    gguf_row(ty, cols, &data, j, &mut row);
                    assert_eq!(row, src[j * row_bytes..(j + 1) * row_bytes], "{ty} row {j} of {rows}");
                }
                let mut want = vec![0.0f32; rows * cols];
                crate::quant::dequantize(ty, &src, &mut want).unwrap();
                let group_bytes = cols / 32 * tile_bytes(ty);
                for (g, rows_out) in want.chunks(GROUP * cols).enumerate() {
                    let mut got = vec![0.0f32; rows_out.len()];
                    dequantize_group(ty, cols, &data[g * group_bytes..][..group_bytes], &mut got, |v| v);
                    let same = got.iter().zip(rows_out).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{ty}: group {g} of {rows} rows decodes as the GGUF rows do");
                    let mut got = vec![bf16::ZERO; rows_out.len()];
                    dequantize_group_bf16(ty, cols, &data[g * group_bytes..][..group_bytes], &mut got);
                    let same = got.iter().zip(rows_out).all(|(a, b)| a.to_bits() == bf16::from_f32(*b).to_bits());
                    assert!(same, "{ty}: group {g} of {rows} rows decodes to bf16 as bf16::from_f32 rounds");
                }
            }
        }
    }
}
