// The residual add then RMSNorm of each row of contiguous [rows, d] tensors, one workgroup per
// row: h = x + r is written out (the residual stream goes on) and normed in the same pass,
// y = h / sqrt(mean(h^2) + eps) * scale. The arithmetic of binary.wgsl's add followed by
// rms_norm.wgsl, in one dispatch (`inv_rms_of` and `scale` from rms_row.wgsl).

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    mode: u32, // 0: no weight, 1: w, 2: 1 + w
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> r: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> h: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = group_index(wid, groups);
    if (row >= params.rows) {
        return; // uniform across the workgroup
    }
    let base = row * params.d;
    var sum = 0.0;
    for (var j = lid.x; j < params.d; j = j + 256u) {
        let v = x[base + j] + r[base + j];
        h[base + j] = v;
        sum = sum + v * v;
    }
    let inv = inv_rms_of(sum, lid.x);
    // Each thread reads back only the elements it wrote.
    for (var j = lid.x; j < params.d; j = j + 256u) {
        y[base + j] = h[base + j] * inv * scale(j);
    }
}
