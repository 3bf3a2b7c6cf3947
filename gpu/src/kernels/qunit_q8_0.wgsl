// Q8_0: a unit is one block, 32 signed bytes q (8 words) and the scale d: w = q * d.
fn load_unit(row: u32, u: u32) {
    let block = row * params.units + u;
    let d = block_scale(block);
    for (var i = 0u; i < 8u; i = i + 1u) {
        let q = bitcast<i32>(w[params.offset + block * 8u + i]);
        for (var b = 0u; b < 4u; b = b + 1u) {
            unit[4u * i + b] = f32(extractBits(q, 8u * b, 8u)) * d;
        }
    }
}
