// Fills `n` 32-bit words with one pattern (a value's bits; for 16-bit types the value twice; for
// 64-bit types alternating low and high words).

struct Params {
    n: u32,
    low: u32,
    high: u32,
    pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(wid, lid, groups);
    if (i >= params.n) {
        return;
    }
    dst[i] = select(params.low, params.high, (i & 1u) == 1u);
}
