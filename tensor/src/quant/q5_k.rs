//! Q5_K: Q4_K with a fifth bit per weight. Bytes: f16 `d`, f16 `dmin`, 12 bytes of scales and
//! minimums, 32 bytes of high bits (bit i of byte l is the high bit of weight 32 i + l), 128
//! bytes of low nibbles (176 bytes, 5.5 bits).

use super::f16_at;
use super::k_scales::{quantize_scale_min_block, scale_min};

pub fn dequantize_block(block: &[u8], out: &mut [f32; 256]) {
    let d = f16_at(block, 0);
    let dmin = f16_at(block, 2);
    let scales = &block[4..16];
    let qh = &block[16..48];
    let qs = &block[48..176];
    for chunk in 0..4 {
        let (sc1, m1) = scale_min(2 * chunk, scales);
        let (sc2, m2) = scale_min(2 * chunk + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let q = &qs[32 * chunk..32 * chunk + 32];
        let o = &mut out[64 * chunk..64 * chunk + 64];
        for l in 0..32 {
            let h1 = ((qh[l] >> (2 * chunk)) & 1) << 4;
            let h2 = ((qh[l] >> (2 * chunk + 1)) & 1) << 4;
            o[l] = d1 * ((q[l] & 0x0F) | h1) as f32 - m1;
            o[l + 32] = d2 * ((q[l] >> 4) | h2) as f32 - m2;
        }
    }
}

/// One block as ggml's `quantize_row_q5_K_ref` (codes 0..=31, trial scales (31 − 0.5 + 0.1 i) /
/// (max − min) for i in 0..=15); the fifth bit of weight 32 i + l goes to bit i of `qh[l]`.
pub fn quantize_block(x: &[f32]) -> [u8; 176] {
    let (d, dmin, scales, l) = quantize_scale_min_block(x, 31, -0.5, 0.1, 15);
    let mut out = [0u8; 176];
    out[0..2].copy_from_slice(&d.to_le_bytes());
    out[2..4].copy_from_slice(&dmin.to_le_bytes());
    out[4..16].copy_from_slice(&scales);
    for (i, &q) in l.iter().enumerate() {
        out[16 + i % 32] |= (q >> 4) << (i / 32);
    }
    for chunk in 0..4 {
        for i in 0..32 {
            out[48 + 32 * chunk + i] = (l[64 * chunk + i] & 0x0F) | ((l[64 * chunk + 32 + i] & 0x0F) << 4);
        }
    }
    out
}
