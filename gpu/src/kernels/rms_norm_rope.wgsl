// RMSNorm then the rotary embedding of each row of x [.., t, d], row r at position r % t, one
// workgroup per row (a head of one token): the row's mean square is reduced in workgroup memory,
// then each thread normalises, scales and rotates pairs (i, i + d/2), or (2i, 2i + 1)
// interleaved, with the [t, d/2] cos and sin tables. The same arithmetic as rms_norm.wgsl
// followed by rope.wgsl, without writing the normed row out between (`inv_rms` and `scale` from
// rms_row.wgsl). With `norm` 0 it is the rotation alone.
//
// Every operand is rows of a view: row r = (o, p) with o = r / t (head and sequence) and p = r % t
// (position) starts at `offset + o * outer + p * row`. So x is read in place, whether one of
// matmul_each's products or a prefill's heads (a transposed view), and y is written either as a
// new contiguous tensor or straight into a KV cache's rows (one head's new rows a capacity apart
// from the next's). With `v_rows` = rows, each workgroup also copies row r of `v` (v_d values)
// into `vy`: a step's values into their cache in the same dispatch as its keys.

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    mode: u32, // 0: no weight, 1: w, 2: 1 + w
    t: u32,
    interleaved: u32,
    cos_offset: u32, // where row 0 of each table sits in its buffer
    sin_offset: u32,
    norm: u32, // 1: RMSNorm first; 0: the rotation alone
    v_rows: u32, // 0: no values to copy
    v_d: u32,
    pad: u32,
    x_at: vec4<u32>, // offset, outer, row (and a pad), in elements
    y_at: vec4<u32>,
    v_at: vec4<u32>,
    vy_at: vec4<u32>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> cos_table: array<f32>;
@group(0) @binding(4) var<storage, read> sin_table: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read> v: array<f32>;
@group(0) @binding(7) var<storage, read_write> vy: array<f32>;

// Where row `row` of an operand placed at `at` starts.
fn row_start(at: vec4<u32>, row: u32) -> u32 {
    return at.x + (row / params.t) * at.y + (row % params.t) * at.z;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = group_index(wid, groups);
    if (row >= params.rows) {
        return; // uniform across the workgroup
    }
    let at = row_start(params.x_at, row);
    var inv = 1.0;
    if (params.norm == 1u) {
        inv = inv_rms(at, lid.x); // uniform: a parameter
    }
    let half = params.d / 2u;
    let pos = row % params.t;
    let out = row_start(params.y_at, row);
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
    if (row < params.v_rows) {
        let src = row_start(params.v_at, row);
        let dst = row_start(params.vy_at, row);
        for (var j = lid.x; j < params.v_d; j = j + 256u) {
            vy[dst + j] = v[src + j];
        }
    }
}
