// Inclusive prefix sums along the middle axis of a contiguous [outer, k, inner] tensor: one
// thread per column, walking it in order (the same order of additions as the CPU). `Params`:
// in axis_params.wgsl, prepended.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let o = thread_index(wid, lid, groups);
    if (o >= params.outer * params.inner) {
        return;
    }
    let base = (o / params.inner) * params.k * params.inner + o % params.inner;
    var total = 0.0;
    for (var j = 0u; j < params.k; j = j + 1u) {
        total = total + src[base + j * params.inner];
        dst[base + j * params.inner] = total;
    }
}
