// RMSNorm over each row of a contiguous [rows, d] tensor, one workgroup per row:
// y = x / sqrt(mean(x^2) + eps) * scale, with scale = w, 1 + w (Gemma) or 1 (weightless).

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    mode: u32, // 0: no weight, 1: w, 2: 1 + w
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = group_index(wid, groups);
    if (row >= params.rows) {
        return; // uniform across the workgroup
    }
    let base = row * params.d;
    var sum = 0.0;
    for (var j = lid.x; j < params.d; j = j + 256u) {
        let v = x[base + j];
        sum = sum + v * v;
    }
    partial[lid.x] = sum;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid.x < s) {
            partial[lid.x] = partial[lid.x] + partial[lid.x + s];
        }
        workgroupBarrier();
    }
    let inv = inverseSqrt(partial[0] / f32(params.d) + params.eps);
    for (var j = lid.x; j < params.d; j = j + 256u) {
        var scale = 1.0;
        if (params.mode == 1u) {
            scale = w[j];
        } else if (params.mode == 2u) {
            scale = 1.0 + w[j];
        }
        y[base + j] = x[base + j] * inv * scale;
    }
}
