// RMSNorm then the rotary embedding of each row of a contiguous [rows, d] tensor (from its
// offset: one of matmul_each's products) whose row r sits at position r % t, one workgroup per
// row (a head of one token): the row's mean square is reduced in workgroup memory, then each
// thread normalises, scales and rotates pairs (i, i + d/2), or (2i, 2i + 1) interleaved, with the
// [t, d/2] cos and sin tables. The same arithmetic as rms_norm.wgsl followed by rope.wgsl,
// without writing the normed row out between (`inv_rms` and `scale` from rms_row.wgsl). With
// `norm` 0 it is the rotation alone.
//
// Row r is written at `y_offset + (r / t) * y_outer + (r % t) * d`: contiguous rows from 0, or a
// step's keys straight into the rows of a KV cache ([heads, capacity, d], one head's t new rows
// `y_outer = capacity * d` apart from the next head's).

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    mode: u32, // 0: no weight, 1: w, 2: 1 + w
    t: u32,
    interleaved: u32,
    cos_offset: u32, // where row 0 of each table sits in its buffer
    sin_offset: u32,
    x_offset: u32, // where x's row 0 sits in its buffer
    norm: u32,     // 1: RMSNorm first; 0: the rotation alone
    y_offset: u32,
    y_outer: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> cos_table: array<f32>;
@group(0) @binding(4) var<storage, read> sin_table: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = group_index(wid, groups);
    if (row >= params.rows) {
        return; // uniform across the workgroup
    }
    let base = row * params.d;
    let at = params.x_offset + base;
    var inv = 1.0;
    if (params.norm == 1u) {
        inv = inv_rms(at, lid.x); // uniform: a parameter
    }
    let half = params.d / 2u;
    let pos = row % params.t;
    let out = params.y_offset + (row / params.t) * params.y_outer + pos * params.d;
    for (var i = lid.x; i < half; i = i + 256u) {
        var ja = i;
        var jb = i + half;
        if (params.interleaved == 1u) {
            ja = 2u * i;
            jb = ja + 1u;
        }
        var a = x[at + ja];
        var b = x[at + jb];
        if (params.norm == 1u) {
            a = a * inv * scale(ja);
            b = b * inv * scale(jb);
        }
        let c = cos_table[params.cos_offset + pos * half + i];
        let s = sin_table[params.sin_offset + pos * half + i];
        y[out + ja] = a * c - b * s;
        y[out + jb] = b * c + a * s;
    }
}
