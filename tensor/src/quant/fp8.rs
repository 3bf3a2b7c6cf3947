//! FP8 E4M3 ("e4m3fn": 1 sign, 4 exponent bits with bias 7, 3 mantissa bits, no infinities,
//! S.1111.111 is NaN) with the block scales DeepSeek-V3 and Kimi K2 ship: a weight [R, C] comes
//! with `weight_scale_inv` [ceil(R/128), ceil(C/128)], and weight = fp8 value * scale of its
//! 128x128 tile (DeepSeek-V3's `weight_dequant`, computed in f32).
//!
//! Kept for computing, such a weight becomes blocks of [`GgmlType::FP8_E4M3`](super::GgmlType):
//! per row, each 32 columns as their tile's f32 scale (4 bytes, little-endian) followed by the 32
//! E4M3 codes as stored (36 bytes, 9 bits per weight where the file takes 8 and 1/512). A block
//! never straddles two tiles when the tile's width is a multiple of 32 (128 in the releases), and
//! the weight it decodes to is the same f32 product `weight_dequant` computes, bit for bit.

/// The f32 value of one E4M3 byte (exact: every E4M3 value is an f32).
pub fn e4m3_to_f32(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let e = ((b >> 3) & 0x0F) as i32;
    let m = (b & 0x07) as f32;
    if e == 15 && b & 0x07 == 7 {
        return f32::NAN;
    }
    let magnitude = if e == 0 { m * (2.0f32).powi(-9) } else { (1.0 + m / 8.0) * (2.0f32).powi(e - 7) };
    sign * magnitude
}

/// Every E4M3 byte's f32 value.
pub(crate) static E4M3: std::sync::LazyLock<[f32; 256]> =
    std::sync::LazyLock::new(|| std::array::from_fn(|b| e4m3_to_f32(b as u8)));

/// The largest finite E4M3 magnitude (S.1111.110).
pub const E4M3_MAX: f32 = 448.0;

/// One [`GgmlType::FP8_E4M3`](super::GgmlType) block (36 bytes) into its 32 weights: code value
/// times the block's scale, one f32 product each.
pub fn dequantize_block(block: &[u8], out: &mut [f32; 32]) {
    let d = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
    for (o, &q) in out.iter_mut().zip(&block[4..36]) {
        *o = E4M3[q as usize] * d;
    }
}

/// The E4M3 code nearest to `v` (ties to the even code, as IEEE rounding and `torch`'s
/// float8 conversion do), saturated to +-448. Codes 0x00..=0x7E are the non-negative finite
/// values in increasing order, so the nearest is found by bisection.
pub fn f32_to_e4m3(v: f32) -> u8 {
    let sign = if v.is_sign_negative() { 0x80 } else { 0 };
    let a = v.abs();
    if a.is_nan() {
        return 0x7F | sign;
    }
    let (mut lo, mut hi) = (0u8, 0x7Eu8);
    if a >= E4M3_MAX {
        return sign | hi;
    }
    // Invariant: value(lo) <= a < value(hi).
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if E4M3[mid as usize] <= a { lo = mid } else { hi = mid }
    }
    let (dl, dh) = (a - E4M3[lo as usize], E4M3[hi as usize] - a);
    let code = if dl < dh || (dl == dh && lo % 2 == 0) { lo } else { hi };
    sign | code
}

/// One block of 32 weights: the scale max|x| / 448 (so the largest weight is the largest code),
/// each weight the nearest code of `x / scale`. Used to make test and benchmark matrices; the
/// released weights come with their own codes and scales ([`blocks_from_tiles`]).
pub fn quantize_block(x: &[f32]) -> [u8; 36] {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / E4M3_MAX;
    let mut out = [0u8; 36];
    out[..4].copy_from_slice(&d.to_le_bytes());
    for (o, &v) in out[4..].iter_mut().zip(x) {
        *o = if d > 0.0 { f32_to_e4m3(v / d) } else { 0 };
    }
    out
}

/// A row-major [rows, cols] E4M3 weight with its tile scales ([`scale_shape`]) as
/// [`GgmlType::FP8_E4M3`](super::GgmlType) blocks, row after row; None when the blocks cannot
/// carry the tiles exactly: `cols` or the tile's width is not a multiple of 32. A NaN code
/// (S.1111.111) is an error naming its place: no trained weight is NaN, and the AVX2 kernel,
/// which turns codes into f16 by moving bits, would read it as a number.
pub fn blocks_from_tiles(
    weight: &[u8],
    scale_inv: &[f32],
    rows: usize,
    cols: usize,
    block: [usize; 2],
) -> crate::Result<Option<Vec<u8>>> {
    let [sr, sc] = scale_shape(rows, cols, block);
    if block[0] == 0 || block[1] == 0 || weight.len() != rows * cols || scale_inv.len() != sr * sc {
        // The same checks and message as the dequantization's.
        return dequantize_block_scaled(weight, scale_inv, rows, cols, block).map(|_| None);
    }
    if cols == 0 || !cols.is_multiple_of(32) || !block[1].is_multiple_of(32) {
        return Ok(None);
    }
    if let Some(i) = weight.iter().position(|&q| q & 0x7F == 0x7F) {
        return Err(crate::Error::shape(
            "fp8_blocks",
            format!("the [{rows}, {cols}] weight holds the E4M3 NaN code at [{}, {}]", i / cols, i % cols),
        ));
    }
    let mut out = Vec::with_capacity(rows * cols / 32 * 36);
    for (r, codes) in weight.chunks_exact(cols).enumerate() {
        let srow = &scale_inv[(r / block[0]) * sc..][..sc];
        for (b, c) in codes.chunks_exact(32).enumerate() {
            out.extend_from_slice(&srow[32 * b / block[1]].to_le_bytes());
            out.extend_from_slice(c);
        }
    }
    Ok(Some(out))
}

/// The tile of DeepSeek-V3's and Kimi K2's `quantization_config.weight_block_size`, [rows, cols].
pub const BLOCK: [usize; 2] = [128, 128];

/// The shape of the scales a [rows, cols] weight in `block` tiles has: one per tile, the last
/// tile of a row or column cut short when the weight does not divide into whole tiles.
pub fn scale_shape(rows: usize, cols: usize, block: [usize; 2]) -> [usize; 2] {
    [rows.div_ceil(block[0].max(1)), cols.div_ceil(block[1].max(1))]
}

/// Dequantizes a row-major [rows, cols] E4M3 weight with its f32 scales, one per `block` tile
/// ([`scale_shape`]), in f32 as DeepSeek-V3's `weight_dequant` computes it.
pub fn dequantize_block_scaled(
    weight: &[u8],
    scale_inv: &[f32],
    rows: usize,
    cols: usize,
    block: [usize; 2],
) -> crate::Result<Vec<f32>> {
    let [sr, sc] = scale_shape(rows, cols, block);
    let [br, bc] = block;
    if br == 0 || bc == 0 || weight.len() != rows * cols || scale_inv.len() != sr * sc {
        return Err(crate::Error::shape(
            "fp8_dequant",
            format!(
                "a [{rows}, {cols}] weight in {br}x{bc} tiles needs {} bytes and [{sr}, {sc}] scales, got {} and {}",
                rows * cols,
                weight.len(),
                scale_inv.len()
            ),
        ));
    }
    let table = &*E4M3;
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let srow = &scale_inv[(r / br) * sc..(r / br + 1) * sc];
        for (c, &q) in weight[r * cols..(r + 1) * cols].iter().enumerate() {
            out.push(table[q as usize] * srow[c / bc]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A [3, 5] weight in 2x3 tiles: four tiles, the last row and column cut short; every weight
    /// is E4M3 1.0 (0x38), so each output is its tile's scale.
    #[test]
    fn non_square_ragged_tiles_pick_their_scale() {
        assert_eq!(e4m3_to_f32(0x38), 1.0);
        assert_eq!(scale_shape(3, 5, [2, 3]), [2, 2]);
        let got = dequantize_block_scaled(&[0x38; 15], &[1.0, 2.0, 3.0, 4.0], 3, 5, [2, 3]).unwrap();
        #[rustfmt::skip]
        let want = [1.0, 1.0, 1.0, 2.0, 2.0,
                    1.0, 1.0, 1.0, 2.0, 2.0,
                    3.0, 3.0, 3.0, 4.0, 4.0];
        assert_eq!(got, want);
        assert!(dequantize_block_scaled(&[0x38; 15], &[1.0; 3], 3, 5, [2, 3]).is_err());
        assert!(dequantize_block_scaled(&[0x38; 15], &[1.0; 4], 3, 5, [0, 3]).is_err());
    }

    /// Blocks carry the tiles exactly: a [3, 64] weight in 2x32 tiles decodes as the
    /// dequantization of the tiles does, bit for bit; tiles 16 wide cannot be carried.
    #[test]
    fn blocks_from_tiles_decode_as_the_tiles() {
        let (rows, cols) = (3, 64);
        let weight: Vec<u8> = (0..rows * cols).map(|i| (i * 37 % 251) as u8 & !0x78 | 0x30).collect();
        let scales = [0.5f32, -3.25, 1e-3, 7.0];
        let want = dequantize_block_scaled(&weight, &scales, rows, cols, [2, 32]).unwrap();
        let blocks = blocks_from_tiles(&weight, &scales, rows, cols, [2, 32]).unwrap().unwrap();
        let mut got = vec![0.0f32; rows * cols];
        crate::quant::dequantize(crate::quant::GgmlType::FP8_E4M3, &blocks, &mut got).unwrap();
        assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(blocks_from_tiles(&weight, &[1.0; 8], rows, cols, [2, 16]).unwrap().is_none());
        assert!(blocks_from_tiles(&weight, &[1.0; 3], rows, cols, [2, 32]).is_err());
        assert!(blocks_from_tiles(&weight, &[1.0; 128], rows, cols, [2, 0]).is_err(), "a tile 0 wide");
        let mut nan = weight.clone();
        nan[cols + 5] = 0xFF;
        let err = blocks_from_tiles(&nan, &scales, rows, cols, [2, 32]).unwrap_err().to_string();
        assert!(err.contains("NaN code at [1, 5]"), "{err}");
    }

    /// Rounding to E4M3: exact values stay, halfway values go to the even code, the range
    /// saturates, and every finite code decodes back to itself.
    #[test]
    fn f32_to_e4m3_rounds_to_nearest_even() {
        for b in (0..=255u8).filter(|b| b & 0x7F != 0x7F) {
            assert_eq!(f32_to_e4m3(e4m3_to_f32(b)), b, "{b:#x}");
        }
        // 1.0 is 0x38 and the next value up is 1.125 (0x39): halfway goes to the even 0x38;
        // halfway between 0x39 and 0x3A (1.25) goes to 0x3A.
        assert_eq!(f32_to_e4m3(1.0625), 0x38);
        assert_eq!(f32_to_e4m3(1.1875), 0x3A);
        assert_eq!(f32_to_e4m3(1e6), 0x7E);
        assert_eq!(f32_to_e4m3(-1e6), 0xFE);
        assert_eq!(f32_to_e4m3(2f32.powi(-11)), 0x00);
    }
}
