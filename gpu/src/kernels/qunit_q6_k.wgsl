// Q6_K: 256-element blocks of 53 words (ggml's 210 bytes, padded): 128 bytes ql of low
// nibbles, 64 bytes qh of 2-bit high parts, 16 signed scales, f16 d. A unit is the c-th 32 of a
// 128-element half: low (c < 2) or high nibbles of ql bytes 64 half + 32 (c & 1) + l, bits
// 2c..2c+2 of qh byte 32 half + l, scale 8 half + l / 16 + 2c; w = d * scale * (q - 32)
// (ggml's dequantize_row_q6_K).
fn load_unit(row: u32, u: u32) {
    let base = params.offset + (row * (params.units / 8u) + u / 8u) * 53u;
    let j = u % 8u;
    let half = j / 4u;
    let c = j % 4u;
    let d = unpack2x16float(w[base + 52u]).x;
    let ql0 = half * 64u + (c & 1u) * 32u;
    let qh0 = 128u + half * 32u;
    let sc0 = 192u + half * 8u + 2u * c;
    let nibble = (c >> 1u) * 4u;
    for (var l = 0u; l < 32u; l = l + 1u) {
        let low = (byte_at(base, ql0 + l) >> nibble) & 15u;
        let high = (byte_at(base, qh0 + l) >> (2u * c)) & 3u;
        let q = i32(low | (high << 4u)) - 32;
        let scale = bitcast<i32>(byte_at(base, sc0 + l / 16u) << 24u) >> 24u;
        unit[l] = d * f32(scale) * f32(q);
    }
}
