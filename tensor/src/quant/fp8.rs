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

/// The tile edge of DeepSeek-V3's `quantization_config.weight_block_size`.
pub const BLOCK: usize = 128;

/// Dequantizes a row-major [rows, cols] E4M3 weight with its [ceil(rows/b), ceil(cols/b)] f32
/// scales for tiles of `b`x`b`.
pub fn dequantize_block_scaled(
    weight: &[u8],
    scale_inv: &[f32],
    rows: usize,
    cols: usize,
    b: usize,
) -> crate::Result<Vec<f32>> {
    let (sr, sc) = (rows.div_ceil(b.max(1)), cols.div_ceil(b.max(1)));
    if b == 0 || weight.len() != rows * cols || scale_inv.len() != sr * sc {
        return Err(crate::Error::shape(
            "fp8_dequant",
            format!(
                "a [{rows}, {cols}] weight in {b}x{b} tiles needs {} bytes and [{sr}, {sc}] scales, got {} and {}",
                rows * cols,
                weight.len(),
                scale_inv.len()
            ),
        ));
    }
    let table: Vec<f32> = (0..=255u8).map(e4m3_to_f32).collect();
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let srow = &scale_inv[(r / b) * sc..(r / b + 1) * sc];
        for (c, &q) in weight[r * cols..(r + 1) * cols].iter().enumerate() {
            out.push(table[q as usize] * srow[c / b]);
        }
    }
    Ok(out)
}
