//! The portable k-quant kernels, and the reference the SIMD ones are tested against (ggml's
//! generic `ggml_vec_dot_q{4,5,6}_K_q8_K`): per 256-weight block exact integer sums, scaled once.
//!
//! Every format is read as unsigned codes `u` with a scale per 16 weights ([`KBlock`]):
//! - Q4_K / Q5_K: w = d·sc·u − dmin·m (sc, m per 32), so Σ w x = d·dy·Σ sc Σ u q − dmin·dy·Σ m·bsum;
//! - Q6_K: w = d·sc·(u − 32) (sc per 16), so Σ w x = d·dy·(Σ sc Σ u q − 32·Σ sc·bsum),
//!
//! with q the Q8_K codes, dy their scale and bsum their sums per 16. The SIMD kernels compute
//! the same integers in a different order and add the f32 terms in a different order.

use super::super::f16_at;
use super::super::k_scales::scale_min;
use super::acts_k::RowK;

/// Which k-quant format a kernel reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KFormat {
    Q4K,
    Q5K,
    Q6K,
}

impl KFormat {
    pub const fn block_bytes(self) -> usize {
        match self {
            KFormat::Q4K => 144,
            KFormat::Q5K => 176,
            KFormat::Q6K => 210,
        }
    }
}

/// The unsigned code of weight `i` (0..256) of a block.
#[inline]
pub fn code(f: KFormat, wb: &[u8], i: usize) -> u8 {
    let (chunk, l) = (i / 64, i % 32);
    let high_nibble = (i / 32) % 2 == 1;
    match f {
        KFormat::Q4K => {
            let q = wb[16 + 32 * chunk + l];
            if high_nibble { q >> 4 } else { q & 0x0F }
        }
        KFormat::Q5K => {
            let q = wb[48 + 32 * chunk + l];
            let low = if high_nibble { q >> 4 } else { q & 0x0F };
            low | (((wb[16 + l] >> (i / 32)) & 1) << 4)
        }
        KFormat::Q6K => {
            // Weight 128 h + 32 t + l: nibble from ql[64 h + 32 (t % 2) + l] (low for t < 2),
            // two high bits from qh[32 h + l] at bit 2 t.
            let (h, t) = (i / 128, (i / 32) % 4);
            let q = wb[64 * h + 32 * (t % 2) + l];
            let low = if t < 2 { q & 0x0F } else { q >> 4 };
            low | (((wb[128 + 32 * h + l] >> (2 * t)) & 3) << 4)
        }
    }
}

/// A block's scale per 16 weights, its minimum per 16 (zero for Q6_K), and its f16 factors
/// `d` and `dmin` (zero for Q6_K) widened to f32.
#[inline]
pub fn block_scales(f: KFormat, wb: &[u8]) -> ([i16; 16], [i16; 16], f32, f32) {
    match f {
        KFormat::Q4K | KFormat::Q5K => {
            let mut sc = [0i16; 16];
            let mut m = [0i16; 16];
            for g in 0..16 {
                let (s, mm) = scale_min(g / 2, &wb[4..16]);
                sc[g] = s as i16;
                m[g] = mm as i16;
            }
            (sc, m, f16_at(wb, 0), f16_at(wb, 2))
        }
        KFormat::Q6K => (std::array::from_fn(|g| wb[192 + g] as i8 as i16), [0; 16], f16_at(wb, 208), 0.0),
    }
}

/// One weight row of format `f` against one Q8_K activation row.
pub fn dot(f: KFormat, w: &[u8], x: RowK) -> f32 {
    let mut sum = 0.0f32;
    for (b, wb) in w.chunks_exact(f.block_bytes()).enumerate() {
        let (sc, m, d, dmin) = block_scales(f, wb);
        let q = &x.codes[256 * b..256 * b + 256];
        let bs = &x.bsums[16 * b..16 * b + 16];
        let mut s = 0i32;
        for (g, &scale) in sc.iter().enumerate() {
            let group: i32 = (16 * g..16 * g + 16).map(|i| code(f, wb, i) as i32 * q[i] as i32).sum();
            s += scale as i32 * group;
        }
        let dy = x.scales[b];
        sum += match f {
            KFormat::Q4K | KFormat::Q5K => {
                let mins: i32 = (0..16).map(|g| m[g] as i32 * bs[g] as i32).sum();
                d * dy * s as f32 - dmin * dy * mins as f32
            }
            KFormat::Q6K => {
                let offset: i32 = (0..16).map(|g| sc[g] as i32 * bs[g] as i32).sum();
                d * dy * (s - 32 * offset) as f32
            }
        };
    }
    sum
}
