// RMSNorm then the rotary embedding of each row of a contiguous [rows, d] tensor (from its
// offset: one of matmul_each's products) whose row r sits at position r % t, one workgroup per
// row (a head of one token): the row's mean square is reduced in workgroup memory, then each
// thread normalises, scales and rotates pairs (i, i + d/2), or (2i, 2i + 1) interleaved, with the
// [t, d/2] cos and sin tables. The same arithmetic as rms_norm.wgsl followed by rope.wgsl,
// without writing the normed row out between (`inv_rms` and `scale` from rms_row.wgsl).

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
    pad0: u32,
    pad1: u32,
    pad2: u32,
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
    let inv = inv_rms(at, lid.x);
    let half = params.d / 2u;
    let pos = row % params.t;
    for (var i = lid.x; i < half; i = i + 256u) {
        var ja = i;
        var jb = i + half;
        if (params.interleaved == 1u) {
            ja = 2u * i;
            jb = ja + 1u;
        }
        let a = x[at + ja] * inv * scale(ja);
        let b = x[at + jb] * inv * scale(jb);
        let c = cos_table[params.cos_offset + pos * half + i];
        let s = sin_table[params.sin_offset + pos * half + i];
        y[base + ja] = a * c - b * s;
        y[base + jb] = b * c + a * s;
    }
}
