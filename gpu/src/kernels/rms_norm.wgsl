// RMSNorm over each row of a contiguous [rows, d] tensor (from its offset: one of matmul_each's
// products), one workgroup per row:
// y = x / sqrt(mean(x^2) + eps) * scale, with scale = w, 1 + w (Gemma) or 1 (weightless)
// (`inv_rms` and `scale` from rms_row.wgsl).

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    mode: u32, // 0: no weight, 1: w, 2: 1 + w
    x_offset: u32, // where x's row 0 sits in its buffer
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = group_index(wid, groups);
    if (row >= params.rows) {
        return; // uniform across the workgroup
    }
    let base = row * params.d;
    let at = params.x_offset + base;
    let inv = inv_rms(at, lid.x);
    for (var j = lid.x; j < params.d; j = j + 256u) {
        y[base + j] = x[at + j] * inv * scale(j);
    }
}
