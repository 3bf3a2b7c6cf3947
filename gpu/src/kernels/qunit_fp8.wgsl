// FP8_E4M3 (the block DeepSeek-V3's and Kimi K2's FP8 weights are kept in: the tile's f32 scale d,
// then 32 E4M3 codes, 9 words as the CPU holds them): a unit is one block, w = e4m3(q) * d,
// the same f32 product DeepSeek's `weight_dequant` computes.

// The value of E4M3 code `q` (1 sign, 4 exponent bits with bias 7, 3 mantissa bits), built from
// its bits so that it is exact on every device: normals as f32 bits with the exponent rebased
// by 120, subnormals m * 2^-9. (The NaN code would read as 480; the loader refuses it.)
fn e4m3(q: u32) -> f32 {
    let e = (q >> 3u) & 15u;
    let m = q & 7u;
    var v = f32(m) * 0.001953125;
    if (e != 0u) {
        v = bitcast<f32>(((e + 120u) << 23u) | (m << 20u));
    }
    return select(v, -v, (q & 128u) != 0u);
}

fn load_unit(row: u32, u: u32) {
    let base = params.offset + (row * params.units + u) * 9u;
    let d = bitcast<f32>(w[base]);
    for (var i = 0u; i < 8u; i = i + 1u) {
        let q = w[base + 1u + i];
        for (var b = 0u; b < 4u; b = b + 1u) {
            unit[4u * i + b] = e4m3(extractBits(q, 8u * b, 8u)) * d;
        }
    }
}
