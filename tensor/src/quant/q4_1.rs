//! Q4_1: 32 weights as f16 scale `d`, f16 minimum `m` and 16 bytes of 4-bit codes;
//! weight = d * q + m, nibbles laid out as in Q4_0 (20 bytes, 5 bits).

use super::f16_at;

pub fn dequantize_block(block: &[u8], out: &mut [f32; 32]) {
    let d = f16_at(block, 0);
    let m = f16_at(block, 2);
    for (j, &q) in block[4..20].iter().enumerate() {
        out[j] = (q & 0x0F) as f32 * d + m;
        out[j + 16] = (q >> 4) as f32 * d + m;
    }
}

/// One block as ggml's `quantize_row_q4_1_ref` encodes it: the minimum `m` and the step
/// `d = (max - min) / 15` (both stored as f16), each code `min(15, trunc((x - min) / d + 0.5))`
/// computed with the f32 step, weight j in the low nibble of byte j and j + 16 in the high one.
pub fn quantize_block(x: &[f32]) -> [u8; 20] {
    let (min, d, id) = min_and_step(x, 15.0);
    let code = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 15) as u8;
    let mut out = [0u8; 20];
    out[0..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
    out[2..4].copy_from_slice(&half::f16::from_f32(min).to_le_bytes());
    for j in 0..16 {
        out[4 + j] = code(x[j]) | code(x[j + 16]) << 4;
    }
    out
}

/// The minimum of `x`, the step `(max - min) / levels` and its inverse (0 where the step is 0),
/// as ggml's reference quantizers with a minimum (Q4_1, Q5_1) compute them in f32.
pub(crate) fn min_and_step(x: &[f32], levels: f32) -> (f32, f32, f32) {
    let (min, max) = x.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let d = (max - min) / levels;
    (min, d, if d != 0.0 { 1.0 / d } else { 0.0 })
}
