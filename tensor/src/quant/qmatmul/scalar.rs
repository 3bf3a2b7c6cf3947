//! The portable kernel, and the reference the SIMD ones are tested against: for each of a group's
//! 8 interleaved weight rows (see `quant::interleave`), per block an exact integer sum of code
//! products, times the weight scale times the activation scale, the blocks added in order (ggml's
//! `ggml_vec_dot_q8_0_q8_0` / `ggml_vec_dot_q4_0_q8_0` / `ggml_vec_dot_q5_0_q8_0` /
//! `ggml_vec_dot_mxfp4_q8_0` generic code; Q4_1 and Q5_1 as `ggml_vec_dot_q{4,5}_1_q8_1`).

use super::super::f16_at;
use super::super::interleave::{GROUP, high_bits_at};
use super::super::mxfp4::{DOUBLED, e8m0_half};
use super::super::q5_0::high_bits;
use super::Row;
use super::x86_formats::{FP4, Q4, Q8, Q41, Q50, Q51};
use crate::quant::GgmlType;

/// One group of 8 Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 or MXFP4 weight rows (format `F`) against one
/// activation row.
///
/// Q4_0 holds weight `i` of a block in the low nibble of its byte `i` and weight `i + 16` in the
/// high one, each as code + 8; Q4_1 the same nibbles as codes from 0, weight = code · d + m (its
/// minimum times the activations' sum is added per block, as ggml's `vec_dot_q4_1_q8_1` does
/// with Q8_1's stored sums); Q5_0 and Q5_1 are Q4_0 and Q4_1 with a fifth bit per weight (bit
/// `i` of the block's `qh` above weight `i`'s nibble), Q5_0's codes offset by 16; MXFP4 the same
/// nibble order, each an index into the doubled E2M1 values, with half its E8M0 scale; Q8_0 holds
/// signed codes.
pub fn group<const F: u8>(w: &[u8], x: Row) -> [f32; GROUP] {
    let (head, code_bytes) = match F {
        Q8 => (2, 32),
        Q4 => (2, 16),
        Q41 => (4, 16),
        Q50 => (6, 16),
        Q51 => (8, 16),
        _ => (1, 16),
    };
    let high_at = high_bits_at(if F == Q51 { GgmlType::Q5_1 } else { GgmlType::Q5_0 });
    let tile = GROUP * (head + code_bytes);
    let mut out = [0.0f32; GROUP];
    for (b, t) in w.chunks_exact(tile).enumerate() {
        let xb = &x.codes[32 * b..32 * b + 32];
        for (r, o) in out.iter_mut().enumerate() {
            // Byte i of slice s of row r's codes.
            let byte = |s: usize, i: usize| t[head * GROUP + 64 * s + 8 * r + i];
            let qh = if F == Q50 || F == Q51 { high_bits(t, high_at + 4 * r) } else { 0 };
            // The 5-bit code of weight c with low nibble n (Q5_0, Q5_1).
            let five = |n: u8, c: usize| (n as u32 | ((qh >> c) & 1) << 4) as i32;
            let mut sum = 0i32;
            for s in 0..code_bytes / 8 {
                for i in 0..8 {
                    let c = 8 * s + i;
                    let q = byte(s, i);
                    sum += match F {
                        Q8 => (q as i8) as i32 * xb[c] as i32,
                        Q4 => ((q & 0x0F) as i32 - 8) * xb[c] as i32 + ((q >> 4) as i32 - 8) * xb[c + 16] as i32,
                        Q41 => (q & 0x0F) as i32 * xb[c] as i32 + (q >> 4) as i32 * xb[c + 16] as i32,
                        Q50 => {
                            (five(q & 0x0F, c) - 16) * xb[c] as i32 + (five(q >> 4, c + 16) - 16) * xb[c + 16] as i32
                        }
                        Q51 => five(q & 0x0F, c) * xb[c] as i32 + five(q >> 4, c + 16) * xb[c + 16] as i32,
                        _ => {
                            DOUBLED[(q & 0x0F) as usize] as i32 * xb[c] as i32
                                + DOUBLED[(q >> 4) as usize] as i32 * xb[c + 16] as i32
                        }
                    };
                }
            }
            let d = if F == FP4 { e8m0_half(t[r]) } else { f16_at(t, 2 * r) };
            *o += sum as f32 * (d * x.scales[b]);
            if F == Q41 || F == Q51 {
                *o += f16_at(t, 16 + 2 * r) * (x.scales[b] * x.sums[b] as f32);
            }
        }
    }
    out
}
