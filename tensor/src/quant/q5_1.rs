//! Q5_1: 32 weights as an f16 scale `d`, an f16 minimum `m`, a little-endian u32 `qh` of fifth
//! bits and 16 bytes of 4-bit codes (ggml's `block_q5_1`, 24 bytes, 6 bits); weight = d * q + m
//! with the 5-bit code q = low nibble | (bit of `qh`) << 4, nibbles and bits laid out as in Q5_0.

use super::f16_at;
use super::q5_0::high_bits;

/// One block as ggml's `dequantize_row_q5_1`: `(nibble | high << 4) * d + m`, a product and a
/// sum each rounded (no fused multiply-add).
pub fn dequantize_block(block: &[u8], out: &mut [f32; 32]) {
    let d = f16_at(block, 0);
    let m = f16_at(block, 2);
    let qh = high_bits(block, 4);
    for (j, &q) in block[8..24].iter().enumerate() {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        out[j] = ((q & 0x0F) as u32 | h0) as f32 * d + m;
        out[j + 16] = ((q >> 4) as u32 | h1) as f32 * d + m;
    }
}

/// One block as ggml's `quantize_row_q5_1_ref` encodes it: the minimum `m` and the step
/// `d = (max - min) / 31` (both stored as f16), each code `trunc((x - min) / d + 0.5)` computed
/// with the f32 step, its fifth bit into `qh`. (ggml casts to `uint8_t` without a clamp; codes
/// of finite values never pass 31, so the clamp here changes nothing.)
pub fn quantize_block(x: &[f32]) -> [u8; 24] {
    let (min, d, id) = super::q4_1::min_and_step(x, 31.0);
    let code = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 31) as u32;
    let mut out = [0u8; 24];
    out[0..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
    out[2..4].copy_from_slice(&half::f16::from_f32(min).to_le_bytes());
    let qh = super::q5_0::put_codes(x, code, &mut out[8..24]);
    out[4..8].copy_from_slice(&qh.to_le_bytes());
    out
}
