//! Block-quantized weight formats: the ggml block layouts GGUF files hold (Q8_0, Q4_0, Q4_1,
//! Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, MXFP4) and the two block-scaled formats releases ship in
//! safetensors (gpt-oss's MXFP4 `*_blocks`/`*_scales`, DeepSeek-V3's FP8 e4m3 with 128x128
//! `weight_scale_inv`).
//! The FP8 weights are kept in a block format of this crate's own, [`GgmlType::FP8_E4M3`]: 32
//! E4M3 codes with their tile's f32 scale, so that they share the block machinery (products on
//! the blocks, interleaving, device layouts) with ggml's formats.
//!
//! A format stores a row of `block_size` weights as `type_size` bytes; a tensor's rows are
//! consecutive blocks. Dequantization follows ggml's reference code operation for operation (the
//! same f32 products in the same order, no fused multiply-add), so its output is bit-identical to
//! ggml's `dequantize_row_*` and to the `gguf` Python package's `gguf.quants.dequantize`.

mod device_blocks;
mod expert_matmul;
pub mod fp8;
pub mod interleave;
mod k_quantize;
mod k_scales;
pub mod mxfp4;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod qmatmul;
mod qmatrix;

pub use device_blocks::{DeviceQMatrix, device_words};
pub use expert_matmul::expert_matmul;
pub use qmatrix::{GEMM_MIN_ROWS, QMatrix, set_gemm_min_rows};

use half::{bf16, f16};

use crate::{Error, Result};

/// The tensor types of ggml (`enum ggml_type`), with their numeric ids as GGUF stores them.
/// Every type is listed so a file's layout can be checked and described; [`GgmlType::can_dequantize`]
/// says which ones this crate decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
    /// Not a ggml type: the block this crate keeps FP8 weights in (DeepSeek-V3's and Kimi K2's
    /// released E4M3 weights with their tile scales, see `quant::fp8`): an f32 scale, then 32
    /// E4M3 codes. No GGUF file holds it ([`GgmlType::from_id`] never returns it).
    FP8_E4M3,
}

/// The id [`GgmlType::FP8_E4M3`] carries in [`TABLE`]: none that ggml assigns.
const NOT_GGML: u32 = u32::MAX;

/// (type, ggml id, name, weights per block, bytes per block), from ggml's `type_traits` table.
const TABLE: [(GgmlType, u32, &str, usize, usize); 33] = [
    (GgmlType::F32, 0, "F32", 1, 4),
    (GgmlType::F16, 1, "F16", 1, 2),
    (GgmlType::Q4_0, 2, "Q4_0", 32, 18),
    (GgmlType::Q4_1, 3, "Q4_1", 32, 20),
    (GgmlType::Q5_0, 6, "Q5_0", 32, 22),
    (GgmlType::Q5_1, 7, "Q5_1", 32, 24),
    (GgmlType::Q8_0, 8, "Q8_0", 32, 34),
    (GgmlType::Q8_1, 9, "Q8_1", 32, 40),
    (GgmlType::Q2_K, 10, "Q2_K", 256, 84),
    (GgmlType::Q3_K, 11, "Q3_K", 256, 110),
    (GgmlType::Q4_K, 12, "Q4_K", 256, 144),
    (GgmlType::Q5_K, 13, "Q5_K", 256, 176),
    (GgmlType::Q6_K, 14, "Q6_K", 256, 210),
    (GgmlType::Q8_K, 15, "Q8_K", 256, 292),
    (GgmlType::IQ2_XXS, 16, "IQ2_XXS", 256, 66),
    (GgmlType::IQ2_XS, 17, "IQ2_XS", 256, 74),
    (GgmlType::IQ3_XXS, 18, "IQ3_XXS", 256, 98),
    (GgmlType::IQ1_S, 19, "IQ1_S", 256, 50),
    (GgmlType::IQ4_NL, 20, "IQ4_NL", 32, 18),
    (GgmlType::IQ3_S, 21, "IQ3_S", 256, 110),
    (GgmlType::IQ2_S, 22, "IQ2_S", 256, 82),
    (GgmlType::IQ4_XS, 23, "IQ4_XS", 256, 136),
    (GgmlType::I8, 24, "I8", 1, 1),
    (GgmlType::I16, 25, "I16", 1, 2),
    (GgmlType::I32, 26, "I32", 1, 4),
    (GgmlType::I64, 27, "I64", 1, 8),
    (GgmlType::F64, 28, "F64", 1, 8),
    (GgmlType::IQ1_M, 29, "IQ1_M", 256, 56),
    (GgmlType::BF16, 30, "BF16", 1, 2),
    (GgmlType::TQ1_0, 34, "TQ1_0", 256, 54),
    (GgmlType::TQ2_0, 35, "TQ2_0", 256, 66),
    (GgmlType::MXFP4, 39, "MXFP4", 32, 17),
    (GgmlType::FP8_E4M3, NOT_GGML, "FP8_E4M3", 32, 36),
];

impl GgmlType {
    fn row(self) -> &'static (GgmlType, u32, &'static str, usize, usize) {
        TABLE.iter().find(|r| r.0 == self).expect("every GgmlType is in TABLE")
    }

    /// The type with ggml id `id`; None for ids ggml never assigned or has retired.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TABLE.iter().find(|r| r.1 == id && id != NOT_GGML).map(|r| r.0)
    }

    /// The type named `name` (`"q8_0"`, `"Q4_K"`, ...; case-insensitive).
    pub fn parse(name: &str) -> Option<GgmlType> {
        TABLE.iter().find(|r| r.2.eq_ignore_ascii_case(name)).map(|r| r.0)
    }

    pub fn id(self) -> u32 {
        self.row().1
    }

    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// Weights per block (1 for plain element types).
    pub fn block_size(self) -> usize {
        self.row().3
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        self.row().4
    }

    /// Bits per weight, scales included (8.5 for Q8_0, 4.5 for Q4_0 and Q4_K, 6.5625 for Q6_K).
    pub fn bits_per_weight(self) -> f64 {
        (self.type_size() * 8) as f64 / self.block_size() as f64
    }

    /// The bytes `n` weights take, or None when `n` is not a whole number of blocks or the count
    /// overflows.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let b = self.block_size() as u64;
        if !n.is_multiple_of(b) {
            return None;
        }
        (n / b).checked_mul(self.type_size() as u64)
    }

    /// Whether [`dequantize`] decodes this type.
    pub fn can_dequantize(self) -> bool {
        use GgmlType::*;
        matches!(
            self,
            F32 | F16 | BF16 | F64 | Q8_0 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q4_K | Q5_K | Q6_K | MXFP4 | FP8_E4M3
        )
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Decodes `bytes` of type `ty` into `out` (one f32 per weight). `bytes` must hold exactly
/// `out.len()` weights.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let expected = ty.bytes_for(out.len() as u64);
    if expected != Some(bytes.len() as u64) {
        return Err(Error::shape(
            "dequantize",
            format!(
                "{} weights of {ty} need {}, got {} bytes",
                out.len(),
                match expected {
                    Some(n) => format!("{n} bytes"),
                    None => format!("a multiple of {}", ty.block_size()),
                },
                bytes.len()
            ),
        ));
    }
    fn blocks<const B: usize>(bytes: &[u8], size: usize, out: &mut [f32], f: impl Fn(&[u8], &mut [f32; B])) {
        for (block, o) in bytes.chunks_exact(size).zip(out.chunks_exact_mut(B)) {
            f(block, o.try_into().expect("chunks of B"));
        }
    }
    match ty {
        GgmlType::F32 => {
            for (c, o) in bytes.chunks_exact(4).zip(out.iter_mut()) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        GgmlType::F64 => {
            for (c, o) in bytes.chunks_exact(8).zip(out.iter_mut()) {
                *o = f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32;
            }
        }
        GgmlType::F16 => {
            for (c, o) in bytes.chunks_exact(2).zip(out.iter_mut()) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        GgmlType::BF16 => {
            for (c, o) in bytes.chunks_exact(2).zip(out.iter_mut()) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        GgmlType::Q8_0 => blocks(bytes, ty.type_size(), out, q8_0::dequantize_block),
        GgmlType::Q4_0 => blocks(bytes, ty.type_size(), out, q4_0::dequantize_block),
        GgmlType::Q4_1 => blocks(bytes, ty.type_size(), out, q4_1::dequantize_block),
        GgmlType::Q5_0 => blocks(bytes, ty.type_size(), out, q5_0::dequantize_block),
        GgmlType::Q5_1 => blocks(bytes, ty.type_size(), out, q5_1::dequantize_block),
        GgmlType::Q4_K => blocks(bytes, ty.type_size(), out, q4_k::dequantize_block),
        GgmlType::Q5_K => blocks(bytes, ty.type_size(), out, q5_k::dequantize_block),
        GgmlType::Q6_K => blocks(bytes, ty.type_size(), out, q6_k::dequantize_block),
        GgmlType::MXFP4 => blocks(bytes, ty.type_size(), out, mxfp4::dequantize_block),
        GgmlType::FP8_E4M3 => blocks(bytes, ty.type_size(), out, fp8::dequantize_block),
        _ => return Err(Error::unsupported("dequantize", format!("tensor type {ty} is not decoded by this crate"))),
    }
    Ok(())
}

/// Encodes `values` as type `ty` (Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 bit-identical to ggml's
/// reference quantizers, `quantize_row_q8_0_ref`, `quantize_row_q{4,5}_{0,1}_ref`; Q4_K, Q5_K and
/// Q6_K following `quantize_row_q{4,5,6}_K_ref` step for step (ggml's quantizers without an
/// importance matrix); F32, F16 and BF16 round to nearest even; FP8_E4M3 with the scale
/// max|x| / 448 per block and codes rounded to nearest even, as `torch`'s float8 conversion
/// rounds).
pub fn quantize(ty: GgmlType, values: &[f32]) -> Result<Vec<u8>> {
    let bytes = ty.bytes_for(values.len() as u64).ok_or_else(|| {
        Error::shape(
            "quantize",
            format!("{} weights are not a whole number of {ty} blocks of {}", values.len(), ty.block_size()),
        )
    })?;
    let mut out = Vec::with_capacity(bytes as usize);
    match ty {
        GgmlType::F32 => values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => values.iter().for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        GgmlType::BF16 => values.iter().for_each(|v| out.extend_from_slice(&bf16::from_f32(*v).to_le_bytes())),
        GgmlType::Q8_0 => values.chunks_exact(32).for_each(|b| out.extend_from_slice(&q8_0::quantize_block(b))),
        GgmlType::Q4_0 => values.chunks_exact(32).for_each(|b| out.extend_from_slice(&q4_0::quantize_block(b))),
        GgmlType::Q4_1 => values.chunks_exact(32).for_each(|b| out.extend_from_slice(&q4_1::quantize_block(b))),
        GgmlType::Q5_0 => values.chunks_exact(32).for_each(|b| out.extend_from_slice(&q5_0::quantize_block(b))),
        GgmlType::Q5_1 => values.chunks_exact(32).for_each(|b| out.extend_from_slice(&q5_1::quantize_block(b))),
        GgmlType::Q4_K => values.chunks_exact(256).for_each(|b| out.extend_from_slice(&q4_k::quantize_block(b))),
        GgmlType::Q5_K => values.chunks_exact(256).for_each(|b| out.extend_from_slice(&q5_k::quantize_block(b))),
        GgmlType::Q6_K => values.chunks_exact(256).for_each(|b| out.extend_from_slice(&q6_k::quantize_block(b))),
        GgmlType::MXFP4 => values.chunks_exact(32).for_each(|b| out.extend_from_slice(&mxfp4::quantize_block(b))),
        GgmlType::FP8_E4M3 => values.chunks_exact(32).for_each(|b| out.extend_from_slice(&fp8::quantize_block(b))),
        _ => return Err(Error::unsupported("quantize", format!("quantizing to {ty} is not implemented"))),
    }
    Ok(out)
}

/// The little-endian f16 at `bytes[at..at + 2]`, widened exactly to f32.
#[inline]
pub(crate) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}
