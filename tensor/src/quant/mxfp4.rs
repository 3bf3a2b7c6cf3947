//! MXFP4 (OCP Microscaling, v1.0): 32 weights share an 8-bit power-of-two scale (E8M0, bias
//! 127) and each is a 4-bit E2M1 float (values 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives).
//!
//! Two byte layouts exist. ggml's block is the scale byte then 16 code bytes, byte j holding
//! weight j in its low nibble and weight j + 16 in its high nibble. gpt-oss's safetensors keep
//! the codes (`*_blocks`, [..., G, 16]) and scales (`*_scales`, [..., G]) apart, and byte j holds
//! weights 2j (low nibble) and 2j + 1 (high nibble).

/// E2M1 values times two, so that the table is integral (ggml's `kvalues_mxfp4`).
pub(crate) const DOUBLED: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// The same values as f32, with code 8 as -0.0 as the E2M1 encoding (and transformers' table)
/// has it; ggml's integer table makes it +0.0.
const DOUBLED_SIGNED: [f32; 16] =
    [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, -0.0, -1.0, -2.0, -3.0, -4.0, -6.0, -8.0, -12.0];

/// Half the scale, 2^(e - 128), built from its bits as ggml's `ggml_e8m0_to_fp32_half` does
/// (e < 2 gives an f32 subnormal).
#[inline]
pub fn e8m0_half(e: u8) -> f32 {
    let bits = if e < 2 { 0x0020_0000u32 << e } else { ((e - 1) as u32) << 23 };
    f32::from_bits(bits)
}

/// One ggml MXFP4 block (17 bytes) into its 32 weights.
pub fn dequantize_block(block: &[u8], out: &mut [f32; 32]) {
    let d = e8m0_half(block[0]);
    for (j, &q) in block[1..17].iter().enumerate() {
        out[j] = DOUBLED[(q & 0x0F) as usize] as f32 * d;
        out[j + 16] = DOUBLED[(q >> 4) as usize] as f32 * d;
    }
}

/// One ggml MXFP4 block of 32 weights, as ggml's `quantize_row_mxfp4_ref` encodes it: the
/// shared exponent `floor(log2(max|x|)) - 2` (so the largest magnitude lands in the top binade
/// of E2M1, 4..6 times the scale), each weight the nearest of the 16 values (the first on a
/// tie, so an exact zero is code 0), weight j in the low nibble of byte j and j + 16 in the high.
pub fn quantize_block(x: &[f32]) -> [u8; 17] {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    // ggml computes the exponent with log2f in f32, then casts to a byte.
    let e = if amax > 0.0 { (amax.log2().floor() - 2.0 + 127.0) as i32 as u8 } else { 0 };
    let d = e8m0_half(e);
    let nearest = |v: f32| {
        let err = |i: usize| (DOUBLED[i] as f32 * d - v).abs();
        (1..16).fold(0, |best, i| if err(i) < err(best) { i } else { best }) as u8
    };
    let mut out = [0u8; 17];
    out[0] = e;
    for j in 0..16 {
        out[1 + j] = nearest(x[j]) | nearest(x[j + 16]) << 4;
    }
    out
}

/// gpt-oss's layout repacked as ggml blocks, so that a released checkpoint's experts are kept
/// and multiplied as MXFP4 exactly as a GGUF file's are: each scale byte followed by its 16 code
/// bytes, the nibbles regrouped from (2j, 2j + 1) to (j, j + 16). The values are unchanged
/// (E2M1's -0.0 reads as +0.0, which no sum can tell apart).
pub fn split_to_ggml(blocks: &[u8], scales: &[u8]) -> crate::Result<Vec<u8>> {
    if blocks.len() != scales.len() * 16 {
        return Err(crate::Error::shape(
            "mxfp4",
            format!("{} scales need {} code bytes, got {}", scales.len(), scales.len() * 16, blocks.len()),
        ));
    }
    let mut out = Vec::with_capacity(scales.len() * 17);
    for (codes, &e) in blocks.chunks_exact(16).zip(scales) {
        let weight = |k: usize| (codes[k / 2] >> (4 * (k % 2))) & 0x0F;
        out.push(e);
        out.extend((0..16).map(|j| weight(j) | weight(j + 16) << 4));
    }
    Ok(out)
}

/// gpt-oss's layout: `blocks` holds 16 code bytes per scale in `scales`; `out` gets 32 weights
/// per scale, in the order transformers' `convert_moe_packed_tensors` produces them.
pub fn dequantize_split(blocks: &[u8], scales: &[u8], out: &mut [f32]) -> crate::Result<()> {
    if blocks.len() != scales.len() * 16 || out.len() != scales.len() * 32 {
        return Err(crate::Error::shape(
            "mxfp4",
            format!(
                "{} scales need {} code bytes and {} outputs, got {} and {}",
                scales.len(),
                scales.len() * 16,
                scales.len() * 32,
                blocks.len(),
                out.len()
            ),
        ));
    }
    for ((codes, &e), o) in blocks.chunks_exact(16).zip(scales).zip(out.chunks_exact_mut(32)) {
        let d = e8m0_half(e);
        for (j, &q) in codes.iter().enumerate() {
            o[2 * j] = DOUBLED_SIGNED[(q & 0x0F) as usize] * d;
            o[2 * j + 1] = DOUBLED_SIGNED[(q >> 4) as usize] * d;
        }
    }
    Ok(())
}
