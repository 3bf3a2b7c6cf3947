// Kernels on quantized blocks (see qmatmul.rs): the [n, k] weight matrix whose blocks `w` holds
// in DeviceQMatrix's word layout, multiplied (qmatvec.wgsl, qmatmul.wgsl, and per expert
// qexperts.wgsl) or gathered by rows (qrows.wgsl). The generated piece (one of qunit_*.wgsl) defines `load_unit(row, u)`: weight
// row `row`'s elements 32u..32u+32, decoded with ggml's formulas into `unit`. Each body
// declares its other bindings.
//
// `w` and `s` bind the same buffer: whole, or, for a matrix over the storage binding limit
// (split.rs), a window of its rows base.. (or experts) each, `w` from a little before the
// first row's blocks (`offset` words before them) and `s` before its scales. Rows are counted
// from base: row 0 is the window's first.

struct Params {
    // Activation rows (products), or ids (gathers).
    m: u32,
    n: u32,
    k: u32,
    // k / 32: the 32-element units of a weight row.
    units: u32,
    // Q8_0, Q4_0, Q5_0 and MXFP4: the scale slot in `s` (a half-word; a byte for MXFP4) of row 0's
    // first block; the scales follow every block's quants.
    scales: u32,
    // Experts bound (qexperts.wgsl, qexpert_gemm.wgsl): rows e n.. are expert base + e's.
    experts: u32,
    // The word in `w` where row 0's blocks (or quants) start.
    offset: u32,
    // The first row (products, gathers) or expert bound: the whole matrix's row base is row 0.
    base: u32,
    // The whole matrix's rows (the products' output row length) or experts.
    total: u32,
    pad1: u32,
    pad2: u32,
    pad3: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> s: array<u32>;

var<private> unit: array<f32, 32>;

// Byte `i` counted from word `base`.
fn byte_at(base: u32, i: u32) -> u32 {
    return extractBits(w[base + (i >> 2u)], 8u * (i & 3u), 8u);
}

// The f16 scale of block `block` (Q8_0, Q4_0, Q5_0): two to a word after the quants.
fn block_scale(block: u32) -> f32 {
    let slot = params.scales + block;
    return unpack2x16float(s[slot >> 1u])[slot & 1u];
}

// Q4_K's and Q5_K's sub-block j of the block at word `base` (f16 d and dmin, then 12 bytes of
// 6-bit scales and mins): (d * scale_j, dmin * min_j), as ggml's get_scale_min_k4 unpacks them.
fn k_scale_min(base: u32, j: u32) -> vec2<f32> {
    let dm = unpack2x16float(w[base]);
    var sc: u32;
    var mn: u32;
    if (j < 4u) {
        sc = byte_at(base + 1u, j) & 63u;
        mn = byte_at(base + 1u, j + 4u) & 63u;
    } else {
        sc = (byte_at(base + 1u, j + 4u) & 15u) | ((byte_at(base + 1u, j - 4u) >> 6u) << 4u);
        mn = (byte_at(base + 1u, j + 4u) >> 4u) | ((byte_at(base + 1u, j) >> 6u) << 4u);
    }
    return vec2<f32>(dm.x * f32(sc), dm.y * f32(mn));
}
