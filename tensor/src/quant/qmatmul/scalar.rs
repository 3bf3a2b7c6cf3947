//! The portable kernels, and the reference the SIMD ones are tested against: per block an exact
//! integer sum of code products, times the weight scale times the activation scale, the blocks
//! added in order (ggml's `ggml_vec_dot_q8_0_q8_0` / `ggml_vec_dot_q4_0_q8_0` generic code).

use super::super::f16_at;

/// One Q8_0 weight row (34-byte blocks: f16 scale, 32 signed codes) against one activation row.
pub fn q8_0(w: &[u8], codes: &[i8], scales: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    for ((wb, x), &dx) in w.chunks_exact(34).zip(codes.chunks_exact(32)).zip(scales) {
        let s: i32 = wb[2..34].iter().zip(x).map(|(&a, &b)| (a as i8) as i32 * b as i32).sum();
        sum += s as f32 * (f16_at(wb, 0) * dx);
    }
    sum
}

/// One Q4_0 weight row (18-byte blocks: f16 scale, 16 bytes holding weight j in the low nibble of
/// byte j and weight j + 16 in the high one, each stored as code + 8) against one activation row.
pub fn q4_0(w: &[u8], codes: &[i8], scales: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    for ((wb, x), &dx) in w.chunks_exact(18).zip(codes.chunks_exact(32)).zip(scales) {
        let mut s = 0i32;
        for (j, &q) in wb[2..18].iter().enumerate() {
            s += ((q & 0x0F) as i32 - 8) * x[j] as i32 + ((q >> 4) as i32 - 8) * x[j + 16] as i32;
        }
        sum += s as f32 * (f16_at(wb, 0) * dx);
    }
    sum
}
