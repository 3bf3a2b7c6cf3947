//! Q4_K: 256 weights in 8 sub-blocks of 32. Bytes: f16 `d`, f16 `dmin`, 12 bytes of 6-bit
//! sub-block scales and minimums, 128 bytes of 4-bit codes; weight = d * sc * q - dmin * m
//! (144 bytes, 4.5 bits). Each 32 bytes of codes give two sub-blocks: low nibbles, then high.

use super::f16_at;
use super::k_scales::scale_min;

pub fn dequantize_block(block: &[u8], out: &mut [f32; 256]) {
    let d = f16_at(block, 0);
    let dmin = f16_at(block, 2);
    let scales = &block[4..16];
    let qs = &block[16..144];
    for chunk in 0..4 {
        let (sc1, m1) = scale_min(2 * chunk, scales);
        let (sc2, m2) = scale_min(2 * chunk + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let q = &qs[32 * chunk..32 * chunk + 32];
        let o = &mut out[64 * chunk..64 * chunk + 64];
        for l in 0..32 {
            o[l] = d1 * (q[l] & 0x0F) as f32 - m1;
            o[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}
