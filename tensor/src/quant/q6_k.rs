//! Q6_K: 256 weights in 16 sub-blocks of 16. Bytes: 128 of low nibbles, 64 of 2-bit high parts,
//! 16 signed 8-bit sub-block scales, f16 `d`; weight = d * sc * (q - 32) (210 bytes, 6.5625 bits).

use super::f16_at;

pub fn dequantize_block(block: &[u8], out: &mut [f32; 256]) {
    let ql = &block[0..128];
    let qh = &block[128..192];
    let sc = &block[192..208];
    let d = f16_at(block, 208);
    for half in 0..2 {
        let ql = &ql[64 * half..64 * half + 64];
        let qh = &qh[32 * half..32 * half + 32];
        let sc = &sc[8 * half..8 * half + 8];
        let o = &mut out[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | (qh[l] & 3) << 4) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) as i32 - 32;
            let q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) as i32 - 32;
            let s = |k: usize| d * (sc[is + 2 * k] as i8) as f32;
            o[l] = s(0) * q1 as f32;
            o[l + 32] = s(1) * q2 as f32;
            o[l + 64] = s(2) * q3 as f32;
            o[l + 96] = s(3) * q4 as f32;
        }
    }
}
