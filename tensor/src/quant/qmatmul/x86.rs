//! The x86-64 kernels for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and MXFP4. Each takes one group of 8
//! interleaved weight rows (see `quant::interleave`) and `R` activation rows (one for decoding, a
//! few for prefill and batched decoding, so that every weight byte loaded is used `R` times) and
//! returns the `8 x R` dots.
//!
//! A 64-byte slice of a tile holds 8 bytes of each of the 8 rows, so one 8-byte broadcast of the
//! activation codes they meet serves all 8 rows, and per 32-bit lane (4 bytes of one row) the
//! integer dot-product instructions sum 4 code products. Those instructions multiply unsigned by
//! signed bytes, so the weights go in unsigned: Q4_0's nibbles as stored (code + 8), Q4_1's as
//! stored (offset 0, the minimum times the activation sum added in f32), Q5_0's and Q5_1's
//! nibbles with their fifth bits set in (ggml's `qh`, bit `i` for weight `i`; 0..31, Q5_0's being
//! code + 16), Q8_0's codes with the sign bit flipped (code + 128), MXFP4's nibbles looked up
//! with `pshufb` in a table of the doubled E2M1 values plus 12 (0..24); the offset times the
//! block's activation code sum is taken off in the integer sum, which starts from it, so each
//! block's sum is exact. Row `r`'s sum is spread over 2 lanes (its two 4-byte halves of each
//! slice): each lane is widened to f32 and multiplied by the two scales, and the pair is added
//! once at the end. The results differ from the scalar kernel's only in the order of the f32
//! additions.
//!
//! AVX2 without VNNI multiplies bytes with `maddubs` (i16 pair sums): the 4- and 5-bit codes and
//! MXFP4's table values go in as they are, since the 4 slices' pair sums added, at most
//! 4 · 2 · 31 · 127 = 31496 in magnitude, stay within i16; Q8_0 uses ggml's sign trick
//! (|w| and x·sign(w); |w| <= 128 is a valid unsigned byte and no activation code is -128).

use std::arch::x86_64::*;

use super::super::interleave::GROUP;
use super::super::mxfp4::DOUBLED;
use super::Row;
use super::x86_formats::{FP4, Q4, Q8, Q41, Q50, Q51};

/// Bytes of a block's header: an f16 scale (and Q4_1's and Q5_1's f16 minimum, and Q5_0's and
/// Q5_1's u32 of fifth bits), or MXFP4's E8M0 byte.
const fn head<const F: u8>() -> usize {
    match F {
        FP4 => 1,
        Q41 => 4,
        Q50 => 6,
        Q51 => 8,
        _ => 2,
    }
}

/// Whether the format has a minimum per block (weight = code · d + m): Q4_1 and Q5_1.
const fn has_min<const F: u8>() -> bool {
    F == Q41 || F == Q51
}

/// Whether the format has fifth bits (`qh`): Q5_0 and Q5_1.
const fn has_high<const F: u8>() -> bool {
    F == Q50 || F == Q51
}

/// Where a tile's 8 rows of fifth bits (4 bytes each) start: after the scales, and Q5_1's
/// minimums (`interleave::high_bits_at`).
const fn high_at<const F: u8>() -> usize {
    if F == Q51 { 32 } else { 16 }
}

/// Bytes of a tile: 8 scales and 8 rows' code bytes.
const fn tile_bytes<const F: u8>() -> usize {
    GROUP
        * match F {
            Q8 => 34,
            Q4 => 18,
            Q41 => 20,
            Q50 => 22,
            Q51 => 24,
            _ => 17,
        }
}

/// The unsigned offset of the codes the kernels multiply.
const fn offset<const F: u8>() -> i32 {
    match F {
        Q8 => 128,
        Q4 => 8,
        Q41 | Q51 => 0,
        Q50 => 16,
        _ => 12,
    }
}

/// MXFP4's table plus 12, in both 128-bit halves (`pshufb` looks up within each).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fp4_table_256() -> __m256i {
    let shifted: [u8; 16] = std::array::from_fn(|i| (DOUBLED[i] + 12) as u8);
    // SAFETY: 16 bytes read from a 16-byte array.
    _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(shifted.as_ptr() as *const __m128i) })
}

/// The tile's 8 scales as f32: f16 widened, or E8M0 bytes as `mxfp4::e8m0_half` builds them
/// (2^(e - 128) from its bits; e < 2 gives a subnormal).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn tile_scales<const F: u8>(t: *const u8) -> __m256 {
    if F == FP4 {
        // SAFETY: t points at a whole tile, which starts with 8 scale bytes.
        let e = _mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(t as *const __m128i) });
        let normal = _mm256_slli_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32(1)), 23);
        let small = _mm256_sllv_epi32(_mm256_set1_epi32(0x0020_0000), e);
        let is_small = _mm256_cmpgt_epi32(_mm256_set1_epi32(2), e);
        _mm256_castsi256_ps(_mm256_blendv_epi8(normal, small, is_small))
    } else {
        // SAFETY: t points at a whole tile, which starts with 8 f16 scales.
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(t as *const __m128i) })
    }
}

/// Q4_1's or Q5_1's 8 minimums (the tile's second 16 bytes), as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn tile_mins(t: *const u8) -> __m256 {
    // SAFETY: t points at a whole Q4_1 or Q5_1 tile: 16 bytes of scales, then 16 of minimums.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(t.add(16) as *const __m128i) })
}

/// Byte `i` of every 8-byte lane set to `1 << i`: the bit of a `qh` byte that byte `i` of an
/// 8-weight run tests.
const BIT_OF_BYTE: i64 = 0x8040_2010_0804_0201u64 as i64;

/// The `pshufb` control that spreads `qh` byte `p` (the fifth bits of weights `8p..8p + 8`) of
/// each row over that row's 8 code bytes. A 128-bit lane of code bytes holds two rows' 8 bytes
/// each; the lane it indexes holds those two rows' `qh` (4 bytes each) in its low 8 bytes, so
/// byte `8k + i` (row `k` of the two) takes byte `4k + p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn spread_control(p: usize) -> __m128i {
    let c: [u8; 16] = std::array::from_fn(|b| (4 * (b / 8) + p) as u8);
    // SAFETY: 16 bytes read from a 16-byte array.
    unsafe { _mm_loadu_si128(c.as_ptr() as *const __m128i) }
}

/// Activation codes `8p..8p + 8` of block `b`, broadcast to every 64-bit lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn codes_256(x: &Row, b: usize, p: usize) -> __m256i {
    // SAFETY: the caller's block b exists in x (32 codes).
    _mm256_set1_epi64x(unsafe { (x.codes.as_ptr().add(32 * b + 8 * p) as *const i64).read_unaligned() })
}

/// `v` in the low 32 bits of every 64-bit lane: the first lane of each row's pair.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn in_low_lanes_256(v: i32) -> __m256i {
    _mm256_set1_epi64x(v as u32 as i64)
}

/// The tile's 8 scales, each repeated for the 2 lanes of its row: rows 0-3 (`h` = 0) or 4-7.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scales_256<const F: u8>(t: *const u8, h: usize) -> __m256 {
    in_pairs_256(tile_scales::<F>(t), h)
}

/// Values of rows `4h..4h + 4`, each repeated for the 2 lanes of its row.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn in_pairs_256(v: __m256, h: usize) -> __m256 {
    let i = 4 * h as i32;
    _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(i, i, i + 1, i + 1, i + 2, i + 2, i + 3, i + 3))
}

/// Q4_1's or Q5_1's minimums of rows `4h..4h + 4` in the first lane of each row's pair (the
/// other lane 0): a row's minimum term is added once.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mins_256(t: *const u8, h: usize) -> __m256 {
    _mm256_blend_ps::<0b0101_0101>(_mm256_setzero_ps(), in_pairs_256(tile_mins(t), h))
}

/// The 4 weight vectors of a tile's rows `4h..4h + 4`, each meeting [`codes_256`]`(p)`: the
/// nibbles unpacked (the low nibbles of slices 0 and 1, then the high ones: weights `8p..8p + 8`
/// of each row), MXFP4's looked up in the table, Q5_0's and Q5_1's with 16 added where their
/// fifth bit is set; Q8_0's codes as stored (signed).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn weights_256<const F: u8>(t: *const u8, h: usize) -> [__m256i; 4] {
    // SAFETY: t points at a whole tile; slice s of half h is 32 bytes at 8·head + 64s + 32h.
    let slice =
        |s: usize| unsafe { _mm256_loadu_si256(t.add(head::<F>() * GROUP + 64 * s + 32 * h) as *const __m256i) };
    if F == Q8 {
        return [slice(0), slice(1), slice(2), slice(3)];
    }
    let m4 = _mm256_set1_epi8(0x0F);
    let (v0, v1) = (slice(0), slice(1));
    let nibbles = [
        _mm256_and_si256(v0, m4),
        _mm256_and_si256(v1, m4),
        _mm256_and_si256(_mm256_srli_epi16(v0, 4), m4),
        _mm256_and_si256(_mm256_srli_epi16(v1, 4), m4),
    ];
    if F == FP4 {
        let table = fp4_table_256();
        nibbles.map(|n| _mm256_shuffle_epi8(table, n))
    } else if has_high::<F>() {
        // Rows 4h..4h + 4's `qh` (16 bytes, 4 per row): rows 4h and 4h + 1's 8 bytes in the low
        // 128-bit lane (whose code bytes are theirs), 4h + 2 and 4h + 3's in the high one.
        // SAFETY: the tile holds 8 rows' `qh` (32 bytes) at `high_at`.
        let qh = unsafe { _mm_loadu_si128(t.add(high_at::<F>() + 16 * h) as *const __m128i) };
        let qh = _mm256_permute4x64_epi64::<0b01_01_00_00>(_mm256_castsi128_si256(qh));
        let bits = _mm256_set1_epi64x(BIT_OF_BYTE);
        let fifth = _mm256_set1_epi8(0x10);
        std::array::from_fn(|p| {
            let spread = _mm256_shuffle_epi8(qh, _mm256_broadcastsi128_si256(spread_control(p)));
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bits), bits);
            _mm256_or_si256(nibbles[p], _mm256_and_si256(set, fifth))
        })
    } else {
        nibbles
    }
}

/// Adds each row's two lanes: `acc[h]` holds rows `4h..4h + 4`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn rows_of_256(acc: [__m256; 2]) -> [f32; GROUP] {
    let mut out = [0.0f32; GROUP];
    for (h, a) in acc.into_iter().enumerate() {
        let mut lanes = [0.0f32; 8];
        // SAFETY: 8 f32 into an 8-f32 array.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), a) };
        for r in 0..4 {
            out[4 * h + r] = lanes[2 * r] + lanes[2 * r + 1];
        }
    }
    out
}

/// # Safety
/// The CPU must have AVX2, FMA and F16C; `w` must hold `x[r].scales.len()` tiles and each `x[r]`
/// 32 codes per block.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn group_avx2<const F: u8, const R: usize>(w: &[u8], x: [Row; R]) -> [[f32; GROUP]; R] {
    let ones = _mm256_set1_epi16(1);
    // acc[h][r]: rows 4h..4h + 4 against activation row r.
    let mut acc = [[_mm256_setzero_ps(); R]; 2];
    for b in 0..x[0].scales.len() {
        // SAFETY: tile b exists (the caller's contract).
        let t = unsafe { w.as_ptr().add(b * tile_bytes::<F>()) };
        for (h, acc) in acc.iter_mut().enumerate() {
            let d = scales_256::<F>(t, h);
            let mins = if has_min::<F>() { mins_256(t, h) } else { _mm256_setzero_ps() };
            let wq = weights_256::<F>(t, h);
            let aw = wq.map(|v| _mm256_sign_epi8(v, v));
            for r in 0..R {
                let xq: [__m256i; 4] = std::array::from_fn(|p| codes_256(&x[r], b, p));
                let sum = if F != Q8 {
                    let pairs: [__m256i; 4] = std::array::from_fn(|p| _mm256_maddubs_epi16(wq[p], xq[p]));
                    let s16 =
                        _mm256_add_epi16(_mm256_add_epi16(pairs[0], pairs[1]), _mm256_add_epi16(pairs[2], pairs[3]));
                    _mm256_add_epi32(_mm256_madd_epi16(s16, ones), in_low_lanes_256(-offset::<F>() * x[r].sums[b]))
                } else {
                    (0..4).fold(_mm256_setzero_si256(), |s, p| {
                        let pairs = _mm256_maddubs_epi16(aw[p], _mm256_sign_epi8(xq[p], wq[p]));
                        _mm256_add_epi32(s, _mm256_madd_epi16(pairs, ones))
                    })
                };
                let scale = _mm256_mul_ps(d, _mm256_set1_ps(x[r].scales[b]));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc[r]);
                if has_min::<F>() {
                    let xsum = _mm256_set1_ps(x[r].scales[b] * x[r].sums[b] as f32);
                    acc[r] = _mm256_fmadd_ps(mins, xsum, acc[r]);
                }
            }
        }
    }
    std::array::from_fn(|r| rows_of_256([acc[0][r], acc[1][r]]))
}

/// AVX-VNNI's 256-bit `vpdpbusd` (AVX2-era cores with VNNI).
///
/// # Safety
/// As [`group_avx2`], with AVX-VNNI.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
pub unsafe fn group_avx_vnni<const F: u8, const R: usize>(w: &[u8], x: [Row; R]) -> [[f32; GROUP]; R] {
    let flip = _mm256_set1_epi8(-128);
    // acc[h][r]: rows 4h..4h + 4 against activation row r.
    let mut acc = [[_mm256_setzero_ps(); R]; 2];
    for b in 0..x[0].scales.len() {
        // SAFETY: tile b exists (the caller's contract).
        let t = unsafe { w.as_ptr().add(b * tile_bytes::<F>()) };
        for (h, acc) in acc.iter_mut().enumerate() {
            let d = scales_256::<F>(t, h);
            let mins = if has_min::<F>() { mins_256(t, h) } else { _mm256_setzero_ps() };
            let wq = weights_256::<F>(t, h).map(|v| if F == Q8 { _mm256_xor_si256(v, flip) } else { v });
            for r in 0..R {
                let start = in_low_lanes_256(-offset::<F>() * x[r].sums[b]);
                let sum = (0..4).fold(start, |s, p| _mm256_dpbusd_avx_epi32(s, wq[p], codes_256(&x[r], b, p)));
                let scale = _mm256_mul_ps(d, _mm256_set1_ps(x[r].scales[b]));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc[r]);
                if has_min::<F>() {
                    let xsum = _mm256_set1_ps(x[r].scales[b] * x[r].sums[b] as f32);
                    acc[r] = _mm256_fmadd_ps(mins, xsum, acc[r]);
                }
            }
        }
    }
    std::array::from_fn(|r| rows_of_256([acc[0][r], acc[1][r]]))
}

/// How far ahead [`group_avx512_vnni`] prefetches its group's tiles where
/// `isa::stream_prefetch` says so (Intel CPUs).
const STREAM_AHEAD_BYTES: usize = 4 << 10;

/// AVX-512 VNNI: a whole 64-byte slice (8 bytes of each of the 8 rows) per `vpdpbusd`.
///
/// # Safety
/// As [`group_avx2`], with AVX512F/BW/VL/DQ and AVX512_VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
pub unsafe fn group_avx512_vnni<const F: u8, const R: usize>(w: &[u8], x: [Row; R]) -> [[f32; GROUP]; R] {
    let m4 = _mm512_set1_epi8(0x0F);
    let flip = _mm512_set1_epi8(-128);
    // Scale r to lanes 2r and 2r + 1.
    let pairs = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    let table = _mm512_broadcast_i32x4(_mm256_castsi256_si128(fp4_table_256()));
    let mut acc = [_mm512_setzero_ps(); R];
    let prefetch = crate::cpu::isa::stream_prefetch();
    for b in 0..x[0].scales.len() {
        // SAFETY: tile b exists (the caller's contract); slice s is 64 bytes at 8·head + 64s.
        let t = unsafe { w.as_ptr().add(b * tile_bytes::<F>()) };
        if prefetch {
            // The group's tiles are one stream (see `isa::stream_prefetch`); a prefetch never
            // faults, so reaching past the group is harmless.
            for line in (0..tile_bytes::<F>()).step_by(64) {
                _mm_prefetch::<_MM_HINT_T1>(t.wrapping_add(STREAM_AHEAD_BYTES + line) as *const i8);
            }
        }
        let slice = |s: usize| unsafe { _mm512_loadu_si512(t.add(head::<F>() * GROUP + 64 * s) as *const _) };
        let d = _mm512_permutexvar_ps(pairs, _mm512_castps256_ps512(tile_scales::<F>(t)));
        // Q4_1, Q5_1: each row's minimum in the first lane of its pair, added once.
        let mins = if has_min::<F>() {
            _mm512_maskz_permutexvar_ps(0x5555, pairs, _mm512_castps256_ps512(tile_mins(t)))
        } else {
            _mm512_setzero_ps()
        };
        let wq = if F == Q8 {
            std::array::from_fn(|s| _mm512_xor_si512(slice(s), flip))
        } else {
            let (v0, v1) = (slice(0), slice(1));
            let nibbles = [
                _mm512_and_si512(v0, m4),
                _mm512_and_si512(v1, m4),
                _mm512_and_si512(_mm512_srli_epi16(v0, 4), m4),
                _mm512_and_si512(_mm512_srli_epi16(v1, 4), m4),
            ];
            if F == FP4 {
                nibbles.map(|n| _mm512_shuffle_epi8(table, n))
            } else if has_high::<F>() {
                // The 8 rows' `qh` (32 bytes, 4 per row): rows 2L and 2L + 1's 8 bytes in the
                // 128-bit lane L that holds their code bytes (`pshufb` indexes within lanes).
                // SAFETY: the tile holds 8 rows' `qh` (32 bytes) at `high_at`.
                let qh = unsafe { _mm256_loadu_si256(t.add(high_at::<F>()) as *const __m256i) };
                let lanes = _mm512_setr_epi64(0, 0, 1, 1, 2, 2, 3, 3);
                let qh = _mm512_permutexvar_epi64(lanes, _mm512_castsi256_si512(qh));
                let bits = _mm512_set1_epi64(BIT_OF_BYTE);
                let fifth = _mm512_set1_epi8(0x10);
                std::array::from_fn(|p| {
                    let spread = _mm512_shuffle_epi8(qh, _mm512_broadcast_i32x4(spread_control(p)));
                    // Nibble plus 16 where the bit is set (an add: the nibble is below 16).
                    _mm512_mask_add_epi8(nibbles[p], _mm512_test_epi8_mask(spread, bits), nibbles[p], fifth)
                })
            } else {
                nibbles
            }
        };
        for r in 0..R {
            let start = _mm512_set1_epi64((-offset::<F>() * x[r].sums[b]) as u32 as i64);
            let sum = (0..4).fold(start, |s, p| {
                // SAFETY: block b's 32 codes exist in x[r].
                let xq = unsafe { (x[r].codes.as_ptr().add(32 * b + 8 * p) as *const i64).read_unaligned() };
                _mm512_dpbusd_epi32(s, wq[p], _mm512_set1_epi64(xq))
            });
            let scale = _mm512_mul_ps(d, _mm512_set1_ps(x[r].scales[b]));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, acc[r]);
            if has_min::<F>() {
                let xsum = _mm512_set1_ps(x[r].scales[b] * x[r].sums[b] as f32);
                acc[r] = _mm512_fmadd_ps(mins, xsum, acc[r]);
            }
        }
    }
    acc.map(|a| {
        // Each row's two lanes added into the first, then the first of each pair kept.
        let s = _mm512_add_ps(a, _mm512_castsi512_ps(_mm512_srli_epi64(_mm512_castps_si512(a), 32)));
        let mut out = [0.0f32; GROUP];
        // SAFETY: 8 f32 into an 8-f32 array.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, _mm512_cvtepi64_epi32(_mm512_castps_si512(s))) };
        out
    })
}
