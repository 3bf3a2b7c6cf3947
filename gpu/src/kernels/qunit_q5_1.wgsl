// Q5_1: a unit is one block of 6 words as ggml stores it (block_q5_1): the f16 scale d and
// minimum m, the u32 qh (bit j: element j's fifth bit), then 16 bytes whose low nibbles are
// elements 0..16 and high nibbles 16..32: w = (nibble | fifth bit << 4) * d + m (ggml's
// dequantize_row_q5_1).
fn load_unit(row: u32, u: u32) {
    let base = params.offset + (row * params.units + u) * 6u;
    let dm = unpack2x16float(w[base]);
    let qh = w[base + 1u];
    for (var i = 0u; i < 4u; i = i + 1u) {
        let q = w[base + 2u + i];
        for (var b = 0u; b < 4u; b = b + 1u) {
            let j = 4u * i + b;
            let byte = extractBits(q, 8u * b, 8u);
            let lo = (byte & 15u) | (extractBits(qh, j, 1u) << 4u);
            let hi = (byte >> 4u) | (extractBits(qh, j + 16u, 1u) << 4u);
            unit[j] = f32(lo) * dm.x + dm.y;
            unit[16u + j] = f32(hi) * dm.x + dm.y;
        }
    }
}
