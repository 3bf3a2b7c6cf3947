// Elementwise ops of one operand: dst[i] = op(src at the view's i-th element). `op` and the
// helpers it may use come from the generated piece; p0 and p1 carry an op's constants.

struct Params {
    n: u32,
    pad0: u32,
    p0: f32,
    p1: f32,
    src: Layout,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(wid, lid, groups);
    if (i >= params.n) {
        return;
    }
    dst[i] = op(src[strided_index(params.src, i)], params.p0, params.p1);
}
