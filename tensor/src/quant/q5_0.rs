//! Q5_0: 32 weights as an f16 scale `d`, a little-endian u32 `qh` of fifth bits and 16 bytes of
//! 4-bit codes (ggml's `block_q5_0`, 22 bytes, 5.5 bits); weight = d * (q - 16) with the 5-bit
//! code q = low nibble | (bit of `qh`) << 4. Byte j holds weight j in its low nibble and weight
//! j + 16 in its high one, as in Q4_0; bit j of `qh` is weight j's fifth bit.

use half::f16;

use super::f16_at;

/// The little-endian u32 of fifth bits at `block[at..at + 4]` (Q5_0's bytes 2..6, Q5_1's 4..8):
/// bit j is weight j's.
#[inline]
pub(crate) fn high_bits(block: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]])
}

/// One block as ggml's `dequantize_row_q5_0`: `((nibble | high << 4) - 16) * d`, an i32 made f32
/// and one f32 product.
pub fn dequantize_block(block: &[u8], out: &mut [f32; 32]) {
    let d = f16_at(block, 0);
    let qh = high_bits(block, 2);
    for (j, &q) in block[6..22].iter().enumerate() {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        out[j] = (((q & 0x0F) as u32 | h0) as i32 - 16) as f32 * d;
        out[j + 16] = (((q >> 4) as u32 | h1) as i32 - 16) as f32 * d;
    }
}

/// One block as ggml's `quantize_row_q5_0_ref`: the weight of largest magnitude (the first one if
/// several tie) maps to code 0, so d = max / -16; q = trunc(x / d + 16.5) clamped to 31, its
/// fifth bit into `qh`.
pub fn quantize_block(x: &[f32]) -> [u8; 22] {
    let d = super::q4_0::largest_magnitude(x) / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let code = |v: f32| ((v * id + 16.5) as i32).clamp(0, 31) as u32;
    let mut out = [0u8; 22];
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    let qh = put_codes(x, code, &mut out[6..22]);
    out[2..6].copy_from_slice(&qh.to_le_bytes());
    out
}

/// Writes the 5-bit codes of the 32 weights `x` as Q5_0 and Q5_1 store them: their low nibbles
/// into `nibbles` (weight j low, j + 16 high in byte j), and returns their fifth bits as `qh`
/// (bit j is weight j's).
pub(crate) fn put_codes(x: &[f32], code: impl Fn(f32) -> u32, nibbles: &mut [u8]) -> u32 {
    let mut qh = 0u32;
    for j in 0..16 {
        let (q0, q1) = (code(x[j]), code(x[j + 16]));
        nibbles[j] = ((q0 & 0x0F) | (q1 & 0x0F) << 4) as u8;
        qh |= (q0 >> 4) << j | (q1 >> 4) << (j + 16);
    }
    qh
}
