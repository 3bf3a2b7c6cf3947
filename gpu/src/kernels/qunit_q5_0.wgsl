// Q5_0 (ggml's block_q5_0: f16 d, u32 qh, 16 bytes of nibbles): a unit is one block, kept as 5
// words, qh (bit j: element j's fifth bit) then the 16 bytes whose low nibbles are elements 0..16
// and high nibbles 16..32, with the scale d after every block's words (as Q4_0's):
// w = ((nibble | fifth bit << 4) - 16) * d (ggml's dequantize_row_q5_0).
fn load_unit(row: u32, u: u32) {
    let block = row * params.units + u;
    let d = block_scale(block);
    let base = params.offset + block * 5u;
    let qh = w[base];
    for (var i = 0u; i < 4u; i = i + 1u) {
        let q = w[base + 1u + i];
        for (var b = 0u; b < 4u; b = b + 1u) {
            let j = 4u * i + b;
            let byte = extractBits(q, 8u * b, 8u);
            let lo = (byte & 15u) | (extractBits(qh, j, 1u) << 4u);
            let hi = (byte >> 4u) | (extractBits(qh, j + 16u, 1u) << 4u);
            unit[j] = f32(i32(lo) - 16) * d;
            unit[16u + j] = f32(i32(hi) - 16) * d;
        }
    }
}
