//! Q8_0: 32 weights as an f16 scale `d` and 32 signed bytes; weight = d * q (34 bytes, 8.5 bits).

use half::f16;

use super::f16_at;

/// One block's 32 weights.
pub fn dequantize_block(block: &[u8], out: &mut [f32; 32]) {
    let d = f16_at(block, 0);
    for (o, &q) in out.iter_mut().zip(&block[2..34]) {
        *o = (q as i8) as f32 * d;
    }
}

/// Rounds half away from zero, as C's `roundf` (ggml's quantizers use it).
#[inline]
pub(crate) fn round_half_away(x: f32) -> f32 {
    x.round()
}

/// One block as ggml's `quantize_row_q8_0_ref`: d = max|x| / 127, q = round(x / d) with the
/// division done as a multiplication by the f32 reciprocal, d stored as f16.
pub fn quantize_block(x: &[f32]) -> [u8; 34] {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut out = [0u8; 34];
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    for (o, &v) in out[2..].iter_mut().zip(x) {
        *o = round_half_away(v * id) as i8 as u8;
    }
    out
}
