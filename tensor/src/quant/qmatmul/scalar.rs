//! The portable kernel, and the reference the SIMD ones are tested against: for each of a group's
//! 8 interleaved weight rows (see `quant::interleave`), per block an exact integer sum of code
//! products, times the weight scale times the activation scale, the blocks added in order (ggml's
//! `ggml_vec_dot_q8_0_q8_0` / `ggml_vec_dot_q4_0_q8_0` generic code).

use super::super::f16_at;
use super::super::interleave::GROUP;
use super::Row;

/// One group of 8 Q4_0 (`Q4`) or Q8_0 weight rows against one activation row.
///
/// Q4_0 holds weight `i` of a block in the low nibble of its byte `i` and weight `i + 16` in the
/// high one, each as code + 8; Q8_0 holds signed codes.
pub fn group<const Q4: bool>(w: &[u8], x: Row) -> [f32; GROUP] {
    let tile = GROUP * if Q4 { 18 } else { 34 };
    let mut out = [0.0f32; GROUP];
    for (b, t) in w.chunks_exact(tile).enumerate() {
        let xb = &x.codes[32 * b..32 * b + 32];
        for (r, o) in out.iter_mut().enumerate() {
            // Byte i of slice s of row r's codes.
            let byte = |s: usize, i: usize| t[2 * GROUP + 64 * s + 8 * r + i];
            let mut sum = 0i32;
            for s in 0..if Q4 { 2 } else { 4 } {
                for i in 0..8 {
                    let c = 8 * s + i;
                    sum += if Q4 {
                        let q = byte(s, i);
                        ((q & 0x0F) as i32 - 8) * xb[c] as i32 + ((q >> 4) as i32 - 8) * xb[c + 16] as i32
                    } else {
                        (byte(s, i) as i8) as i32 * xb[c] as i32
                    };
                }
            }
            *o += sum as f32 * (f16_at(t, 2 * r) * x.scales[b]);
        }
    }
    out
}
