//! FP8 E4M3 ("e4m3fn": 1 sign, 4 exponent bits with bias 7, 3 mantissa bits, no infinities,
//! S.1111.111 is NaN) with the block scales DeepSeek-V3 and Kimi K2 ship: a weight [R, C] comes
//! with `weight_scale_inv` [ceil(R/128), ceil(C/128)], and weight = fp8 value * scale of its
//! 128x128 tile (DeepSeek-V3's `weight_dequant`, computed in f32).

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
    let table: Vec<f32> = (0..=255u8).map(e4m3_to_f32).collect();
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
}
