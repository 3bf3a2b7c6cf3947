//! Activation rows quantized to Q8_K for the k-quant dot products (Q4_K, Q5_K, Q6_K), as ggml
//! quantizes `src1` for them (`quantize_row_q8_K`): per 256 values one f32 scale, 256 codes in
//! [-127, 127], and the sums of each 16 codes (`bsums`). The sums carry the terms that do not
//! depend on the weight codes: Q4_K's and Q5_K's sub-block minimums (dmin·m·Σx) and Q6_K's
//! offset of 32 (the kernels multiply the stored unsigned 6-bit codes and subtract 32·Σx), so
//! each costs one multiply per 16 values instead of one per value.

/// `m` rows of `k` activations (`k` a multiple of 256), quantized to Q8_K.
pub struct QuantizedActsK {
    pub k: usize,
    /// `m * k` codes, row after row.
    pub codes: Vec<i8>,
    /// `m * k / 256` scales.
    pub scales: Vec<f32>,
    /// `m * k / 16` sums of 16 consecutive codes.
    pub bsums: Vec<i16>,
}

/// One activation row of a [`QuantizedActsK`]: its codes, scales and sums.
#[derive(Clone, Copy)]
pub struct RowK<'a> {
    pub codes: &'a [i8],
    pub scales: &'a [f32],
    pub bsums: &'a [i16],
}

impl QuantizedActsK {
    /// Quantizes `x` (`m` rows of `k` values) block by block with ggml's reference arithmetic:
    /// the value of largest magnitude (the first if several tie) maps to -127, so the scale is
    /// `d = max / -127` and `q = min(127, round_half_even(x · (-127 / max)))`; an all-zero block
    /// has d = 0 and zero codes.
    pub fn new(x: &[f32], k: usize) -> QuantizedActsK {
        debug_assert!(k.is_multiple_of(256) && x.len().is_multiple_of(k.max(1)));
        let mut codes = vec![0i8; x.len()];
        let mut scales = vec![0.0f32; x.len() / 256];
        let mut bsums = vec![0i16; x.len() / 16];
        for (b, (block, out)) in x.chunks_exact(256).zip(codes.chunks_exact_mut(256)).enumerate() {
            let (mut amax, mut max) = (0.0f32, 0.0f32);
            for &v in block {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            if amax == 0.0 {
                continue;
            }
            let iscale = -127.0 / max;
            for (o, &v) in out.iter_mut().zip(block) {
                *o = ((iscale * v).round_ties_even() as i32).min(127) as i8;
            }
            for (s, group) in bsums[16 * b..16 * b + 16].iter_mut().zip(out.chunks_exact(16)) {
                *s = group.iter().map(|&q| q as i16).sum();
            }
            scales[b] = 1.0 / iscale;
        }
        QuantizedActsK { k, codes, scales, bsums }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> RowK<'_> {
        let (nb, ng) = (self.k / 256, self.k / 16);
        RowK {
            codes: &self.codes[i * self.k..(i + 1) * self.k],
            scales: &self.scales[i * nb..(i + 1) * nb],
            bsums: &self.bsums[i * ng..(i + 1) * ng],
        }
    }
}
