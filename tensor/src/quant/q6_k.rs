//! Q6_K: 256 weights in 16 sub-blocks of 16. Bytes: 128 of low nibbles, 64 of 2-bit high parts,
//! 16 signed 8-bit sub-block scales, f16 `d`; weight = d * sc * (q - 32) (210 bytes, 6.5625 bits).

use half::f16;

use super::f16_at;
use super::k_quantize::{GROUP_MAX_EPS, nearest_int, signed_scale_search};

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

/// One block as ggml's `quantize_row_q6_K_ref`: each 16 weights get a scale from
/// `signed_scale_search` (codes -32..31), the sixteen scales are quantized to i8 against the
/// one of largest magnitude (which maps to -128, clamped to 127 above), and every weight is
/// re-coded against its group's quantized scale. A block whose scales are all below
/// `GROUP_MAX_EPS` is all zeros.
pub fn quantize_block(x: &[f32]) -> [u8; 210] {
    let mut l = [0u8; 256];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for (g, scale) in scales.iter_mut().enumerate() {
        *scale = signed_scale_search(32, &x[16 * g..16 * g + 16], &mut l[16 * g..16 * g + 16]);
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = *scale;
        }
    }
    let mut out = [0u8; 210];
    if max_abs_scale < GROUP_MAX_EPS {
        return out;
    }
    let iscale = -128.0 / max_scale;
    let d = f16::from_f32(1.0 / iscale);
    out[208..210].copy_from_slice(&d.to_le_bytes());
    for g in 0..16 {
        let sc = nearest_int(iscale * scales[g]).min(127) as i8;
        out[192 + g] = sc as u8;
        let dg = d.to_f32() * sc as f32;
        if dg == 0.0 {
            continue;
        }
        for i in 16 * g..16 * g + 16 {
            l[i] = (nearest_int(x[i] / dg).clamp(-32, 31) + 32) as u8;
        }
    }
    for half in 0..2 {
        let l = &l[128 * half..128 * half + 128];
        for i in 0..32 {
            out[64 * half + i] = (l[i] & 0x0F) | ((l[i + 64] & 0x0F) << 4);
            out[64 * half + 32 + i] = (l[i + 32] & 0x0F) | ((l[i + 96] & 0x0F) << 4);
            out[128 + 32 * half + i] =
                (l[i] >> 4) | ((l[i + 32] >> 4) << 2) | ((l[i + 64] >> 4) << 4) | ((l[i + 96] >> 4) << 6);
        }
    }
    out
}
