// Converts elements of a view to another type, writing contiguously. The generated piece gives
// `load(i) -> f32 or u32` reading element i of the source view and `store(o)` writing output
// element or word o (16-bit outputs pack two elements per word, so one thread writes a word).

struct Params {
    n: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    src: Layout,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(3) var<storage, read_write> error_flag: array<atomic<u32>>;

fn src_word(i: u32) -> u32 {
    return src[strided_index(params.src, i)];
}

fn src_half(i: u32) -> u32 {
    let s = strided_index(params.src, i);
    return (src[s >> 1u] >> ((s & 1u) * 16u)) & 0xffffu;
}

fn src_pair(i: u32) -> vec2<u32> {
    let s = strided_index(params.src, i);
    return vec2<u32>(src[2u * s], src[2u * s + 1u]);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let o = thread_index(wid, lid, groups);
    store(o);
}
