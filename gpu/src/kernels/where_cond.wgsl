// where_cond: dst[i] = cond at i != 0 ? a at i : b at i, all three same-shape views. C is the
// mask's element type (u32 or f32), T the branches'.

struct Params {
    n: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    cond: Layout,
    a: Layout,
    b: Layout,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cond: array<C>;
@group(0) @binding(2) var<storage, read> a: array<T>;
@group(0) @binding(3) var<storage, read> b: array<T>;
@group(0) @binding(4) var<storage, read_write> dst: array<T>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(wid, lid, groups);
    if (i >= params.n) {
        return;
    }
    let picked = cond[strided_index(params.cond, i)] != C(0);
    dst[i] = select(b[strided_index(params.b, i)], a[strided_index(params.a, i)], picked);
}
