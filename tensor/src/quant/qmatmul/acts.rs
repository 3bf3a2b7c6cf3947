//! Activation rows quantized to Q8_0 for the integer dot products: per 32 values one scale
//! `d = max|x| / 127` (rounded to f16, as ggml's `quantize_row_q8_0` stores it) and 32 codes
//! `round(x / d)` in [-127, 127]. Codes and scales are kept in separate arrays (ggml interleaves
//! them in 34-byte blocks) so that a kernel loads a block's 32 codes with one aligned-free load and
//! never converts an activation scale from f16 in its inner loop. Each block's code sum is kept
//! too: the kernels multiply unsigned weight codes (Q4_0's nibbles, Q8_0's codes + 128) and take
//! the offset times that sum back off.

use half::f16;

use super::super::q8_0::round_half_away;

/// `m` rows of `k` activations, quantized.
pub struct QuantizedActs {
    pub k: usize,
    /// `m * k` codes, row after row.
    pub codes: Vec<i8>,
    /// `m * k / 32` scales (the f16 scale widened to f32).
    pub scales: Vec<f32>,
    /// `m * k / 32` sums of each block's codes.
    pub sums: Vec<i32>,
}

/// One quantized activation row.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    pub codes: &'a [i8],
    pub scales: &'a [f32],
    pub sums: &'a [i32],
}

impl QuantizedActs {
    /// Quantizes `x` (`m` rows of `k` values, `k` a multiple of 32) block by block, with the same
    /// arithmetic as `quant::q8_0::quantize_block` (ggml's reference quantizer). The codes never
    /// reach -128, which the sign trick of the SIMD kernels relies on.
    pub fn new(x: &[f32], k: usize) -> QuantizedActs {
        debug_assert!(k.is_multiple_of(32) && x.len().is_multiple_of(k.max(1)));
        let mut codes = vec![0i8; x.len()];
        let mut scales = vec![0.0f32; x.len() / 32];
        let mut sums = vec![0i32; x.len() / 32];
        let blocks = x.chunks_exact(32).zip(codes.chunks_exact_mut(32));
        for ((block, out), (scale, sum)) in blocks.zip(scales.iter_mut().zip(sums.iter_mut())) {
            let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            for (o, &v) in out.iter_mut().zip(block) {
                *o = round_half_away(v * id) as i8;
            }
            *scale = f16::from_f32(d).to_f32();
            *sum = out.iter().map(|&c| c as i32).sum();
        }
        QuantizedActs { k, codes, scales, sums }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> Row<'_> {
        let nb = self.k / 32;
        Row {
            codes: &self.codes[i * self.k..(i + 1) * self.k],
            scales: &self.scales[i * nb..(i + 1) * nb],
            sums: &self.sums[i * nb..(i + 1) * nb],
        }
    }
}
