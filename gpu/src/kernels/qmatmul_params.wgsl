// Kernels on quantized blocks (see qmatmul.rs): the [n, k] weight matrix whose blocks `w` holds
// in DeviceQMatrix's word layout, multiplied (qmatvec.wgsl, qmatmul.wgsl, and per expert
// qexperts.wgsl) or gathered by rows (qrows.wgsl). The generated piece (one of qunit_*.wgsl) defines `load_unit(row, u)`: weight
// row `row`'s elements 32u..32u+32, decoded with ggml's formulas into `unit`. Each body
// declares its other bindings.

struct Params {
    // Activation rows (products), or ids (gathers).
    m: u32,
    n: u32,
    k: u32,
    // k / 32: the 32-element units of a weight row.
    units: u32,
    // Q8_0 and Q4_0: the word where the f16 scales start, after every block's quants.
    scales: u32,
    // Experts stacked in the matrix (qexperts.wgsl): rows e n.. are expert e's.
    experts: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> w: array<u32>;

var<private> unit: array<f32, 32>;

// Byte `i` counted from word `base`.
fn byte_at(base: u32, i: u32) -> u32 {
    return extractBits(w[base + (i >> 2u)], 8u * (i & 3u), 8u);
}

// The f16 scale of block `block` (Q8_0, Q4_0): two to a word after the quants.
fn block_scale(block: u32) -> f32 {
    return unpack2x16float(w[params.scales + (block >> 1u)])[block & 1u];
}
