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
