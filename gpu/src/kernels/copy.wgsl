// Copies between views of 32- or 64-bit elements (W is u32 or vec2<u32>; floats are copied as
// their bits): dst at the dst view's i-th element = src at the src view's i-th element.
// Serves contiguous(), copy_into (a KV cache slot), and each part of cat. `Params`: in
// copy_params.wgsl, prepended.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<W>;
@group(0) @binding(2) var<storage, read_write> dst: array<W>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(wid, lid, groups);
    if (i >= params.n) {
        return;
    }
    dst[strided_index(params.dst, i)] = src[strided_index(params.src, i)];
}
