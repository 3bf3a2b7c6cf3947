// MXFP4 (ggml's block: an E8M0 scale byte e, then 16 bytes of E2M1 codes, low nibbles elements
// 0..16 and high nibbles 16..32): a unit is one block, w = kvalue[q] * 2^(e - 128) with
// ggml's doubled value table (`kvalues_mxfp4`) and its half scale (`ggml_e8m0_to_fp32_half`).
// The scales sit after every block's codes, four to a word.
var<private> KVALUES: array<f32, 16> =
    array<f32, 16>(0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 0.0, -1.0, -2.0, -3.0, -4.0, -6.0, -8.0, -12.0);

fn e8m0_half(e: u32) -> f32 {
    if (e < 2u) {
        return bitcast<f32>(0x00200000u << e);
    }
    return bitcast<f32>((e - 1u) << 23u);
}

fn load_unit(row: u32, u: u32) {
    let block = row * params.units + u;
    let slot = params.scales + block;
    let d = e8m0_half(extractBits(s[slot >> 2u], 8u * (slot & 3u), 8u));
    for (var i = 0u; i < 4u; i = i + 1u) {
        let q = w[params.offset + block * 4u + i];
        for (var b = 0u; b < 4u; b = b + 1u) {
            let byte = extractBits(q, 8u * b, 8u);
            unit[4u * i + b] = KVALUES[byte & 15u] * d;
            unit[16u + 4u * i + b] = KVALUES[byte >> 4u] * d;
        }
    }
}
