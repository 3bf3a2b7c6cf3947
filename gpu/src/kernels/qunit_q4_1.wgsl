// Q4_1: a unit is one block of 5 words as ggml stores it: the f16 scale d and minimum m, then 16
// bytes whose low nibbles are elements 0..16 and high nibbles 16..32: w = q * d + m.
fn load_unit(row: u32, u: u32) {
    let base = params.offset + (row * params.units + u) * 5u;
    let dm = unpack2x16float(w[base]);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let q = w[base + 1u + i];
        for (var b = 0u; b < 4u; b = b + 1u) {
            let byte = extractBits(q, 8u * b, 8u);
            unit[4u * i + b] = f32(byte & 15u) * dm.x + dm.y;
            unit[16u + 4u * i + b] = f32(byte >> 4u) * dm.x + dm.y;
        }
    }
}
