//! Q4_0: 32 weights as an f16 scale `d` and 16 bytes of 4-bit codes; weight = d * (q - 8). Byte
//! j holds weight j in its low nibble and weight j + 16 in its high nibble (18 bytes, 4.5 bits).

use half::f16;

use super::f16_at;

pub fn dequantize_block(block: &[u8], out: &mut [f32; 32]) {
    let d = f16_at(block, 0);
    for (j, &q) in block[2..18].iter().enumerate() {
        out[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
        out[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// One block as ggml's `quantize_row_q4_0_ref`: the weight of largest magnitude (the first one
/// if several tie) maps to code 0, so d = max / -8; q = trunc(x / d + 8.5) clamped to 15.
pub fn quantize_block(x: &[f32]) -> [u8; 18] {
    let d = largest_magnitude(x) / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let code = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
    let mut out = [0u8; 18];
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    for j in 0..16 {
        out[2 + j] = code(x[j]) | (code(x[j + 16]) << 4);
    }
    out
}

/// The value of `x` with the largest magnitude, sign kept (the first one if several tie; 0 for
/// none), as ggml's symmetric reference quantizers find it: their scale maps it to the lowest
/// code.
pub(crate) fn largest_magnitude(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}
