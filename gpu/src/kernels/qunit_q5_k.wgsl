// Q5_K: 256-element blocks of 44 words (f16 d and dmin, 12 bytes of 6-bit scales and mins, 32
// bytes qh of high bits, 128 bytes of low nibbles); a unit is one of its 8 sub-blocks j: the
// low (j even) or high nibbles of bytes 32 (j / 2)..+32 of the nibbles, plus 16 where bit j of
// the element's qh byte is set: w = d * scale_j * q - dmin * min_j (ggml's
// dequantize_row_q5_K). The scales and mins are Q4_K's (`k_scale_min`).
fn load_unit(row: u32, u: u32) {
    let base = params.offset + (row * (params.units / 8u) + u / 8u) * 44u;
    let j = u % 8u;
    let dm = k_scale_min(base, j);
    let d = dm.x;
    let m = dm.y;
    let q0 = base + 12u + (j / 2u) * 8u;
    let shift = (j & 1u) * 4u;
    for (var i = 0u; i < 8u; i = i + 1u) {
        let q = w[q0 + i];
        let h = w[base + 4u + i];
        for (var b = 0u; b < 4u; b = b + 1u) {
            let high = extractBits(h, 8u * b + j, 1u) * 16u;
            unit[4u * i + b] = d * f32(extractBits(q, 8u * b + shift, 4u) + high) - m;
        }
    }
}
