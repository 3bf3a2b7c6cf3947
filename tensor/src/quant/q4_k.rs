//! Q4_K: 256 weights in 8 sub-blocks of 32. Bytes: f16 `d`, f16 `dmin`, 12 bytes of 6-bit
//! sub-block scales and minimums, 128 bytes of 4-bit codes; weight = d * sc * q - dmin * m
//! (144 bytes, 4.5 bits). Each 32 bytes of codes give two sub-blocks: low nibbles, then high.

use super::f16_at;
use super::k_scales::{quantize_scale_min_block, scale_min};

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

/// One block as ggml's `quantize_row_q4_K_ref` (see `k_scales::quantize_scale_min_block`: codes
/// 0..=15, trial scales (15 − 1 + 0.1 i) / (max − min) for i in 0..=20).
pub fn quantize_block(x: &[f32]) -> [u8; 144] {
    let (d, dmin, scales, l) = quantize_scale_min_block(x, 15, -1.0, 0.1, 20);
    let mut out = [0u8; 144];
    out[0..2].copy_from_slice(&d.to_le_bytes());
    out[2..4].copy_from_slice(&dmin.to_le_bytes());
    out[4..16].copy_from_slice(&scales);
    for chunk in 0..4 {
        for i in 0..32 {
            out[16 + 32 * chunk + i] = l[64 * chunk + i] | (l[64 * chunk + 32 + i] << 4);
        }
    }
    out
}
