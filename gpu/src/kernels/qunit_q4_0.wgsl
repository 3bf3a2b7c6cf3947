// Q4_0: a unit is one block, 16 bytes (4 words) whose low nibbles are elements 0..16 and high
// nibbles elements 16..32, offset by 8, and the scale d: w = (q - 8) * d.
fn load_unit(row: u32, u: u32) {
    let block = row * params.units + u;
    let d = block_scale(block);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let q = w[params.offset + block * 4u + i];
        for (var b = 0u; b < 4u; b = b + 1u) {
            let byte = extractBits(q, 8u * b, 8u);
            unit[4u * i + b] = f32(i32(byte & 15u) - 8) * d;
            unit[16u + 4u * i + b] = f32(i32(byte >> 4u) - 8) * d;
        }
    }
}
