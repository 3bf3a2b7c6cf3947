// Elementwise ops of two same-shape views (broadcast operands have stride 0):
// dst[i] = op(a at i, b at i). T is f32 or u32, from the generated piece.

struct Params {
    n: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    a: Layout,
    b: Layout,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<T>;
@group(0) @binding(2) var<storage, read> b: array<T>;
@group(0) @binding(3) var<storage, read_write> dst: array<R>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(wid, lid, groups);
    if (i >= params.n) {
        return;
    }
    dst[i] = op(a[strided_index(params.a, i)], b[strided_index(params.b, i)]);
}
