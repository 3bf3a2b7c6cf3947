// Rotary embedding of a contiguous [rows, d] tensor whose row r sits at position r % t, one
// thread per rotated pair: (a, b) -> (a cos - b sin, b cos + a sin), pairs (i, i + d/2) or
// interleaved (2i, 2i + 1); x is read from its offset (one of matmul_each's products), cos and
// sin are [t, d/2] tables from theirs.

struct Params {
    pairs: u32,
    d: u32,
    t: u32,
    interleaved: u32,
    cos_offset: u32, // where row 0 of each table sits in its buffer
    sin_offset: u32,
    x_offset: u32, // where x's row 0 sits in its buffer
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cos_table: array<f32>;
@group(0) @binding(3) var<storage, read> sin_table: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let p = thread_index(wid, lid, groups);
    if (p >= params.pairs) {
        return;
    }
    let half = params.d / 2u;
    let row = p / half;
    let i = p % half;
    var ia = row * params.d + i;
    var ib = ia + half;
    if (params.interleaved == 1u) {
        ia = row * params.d + 2u * i;
        ib = ia + 1u;
    }
    let pos = row % params.t;
    let c = cos_table[params.cos_offset + pos * half + i];
    let s = sin_table[params.sin_offset + pos * half + i];
    let a = x[params.x_offset + ia];
    let b = x[params.x_offset + ib];
    y[ia] = a * c - b * s;
    y[ib] = b * c + a * s;
}
