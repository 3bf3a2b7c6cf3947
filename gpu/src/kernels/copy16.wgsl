// Copies between views of 16-bit elements (bf16, f16), stored two per 32-bit word. Two threads
// may write the two halves of one destination word, so each clears and sets only its own half
// with atomic and/or, which commute. `Params`: in copy_params.wgsl, prepended.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<atomic<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(wid, lid, groups);
    if (i >= params.n) {
        return;
    }
    let s = strided_index(params.src, i);
    let half = (src[s >> 1u] >> ((s & 1u) * 16u)) & 0xffffu;
    let d = strided_index(params.dst, i);
    let shift = (d & 1u) * 16u;
    atomicAnd(&dst[d >> 1u], ~(0xffffu << shift));
    atomicOr(&dst[d >> 1u], half << shift);
}
