// index_select on a table of 16-bit elements (bf16, f16, stored two per 32-bit word), so a
// half-precision embedding table stays so on the device: dst[o, i, j] = src[o, ids[i], j] over
// contiguous [outer, a, inner] views. One thread per output word (two elements, which may come
// from different rows), so no two threads write one word. An id out of range reads as 0 and
// sets the error flag, as in index.wgsl.

// The same parameters as index.wgsl's: the rows base .. base + rows of the source are bound
// (row `base` at element `offset`, rows `stride` elements apart). A thread whose ids both fall
// outside them writes nothing, so a table over the binding limit is gathered one window at a
// time; that needs each output word inside one row (`inner` even), which the launcher checks.
struct Params {
    outer: u32,
    a: u32,
    inner: u32,
    n_ids: u32,
    index: Layout,
    data: Layout,
    axis: u32,
    base: u32,
    rows: u32,
    offset: u32,
    stride: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;
@group(0) @binding(4) var<storage, read_write> error_flag: array<atomic<u32>>;

// Whether output element t's id is bound in this dispatch (or out of range, read as 0).
fn here(t: u32) -> bool {
    let id = ids[(t / params.inner) % params.n_ids];
    return id >= params.a || (id >= params.base && id - params.base < params.rows);
}

// The 16 bits of output element t.
fn element(t: u32) -> u32 {
    let j = t % params.inner;
    let i = (t / params.inner) % params.n_ids;
    let o = t / (params.inner * params.n_ids);
    let id = ids[i];
    if (id >= params.a) {
        atomicOr(&error_flag[0], 1u);
        return 0u;
    }
    let s = params.offset + (o * params.rows + id - params.base) * params.stride + j;
    return (src[s >> 1u] >> ((s & 1u) * 16u)) & 0xffffu;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let w = thread_index(wid, lid, groups);
    let total = params.outer * params.n_ids * params.inner;
    if (2u * w >= total) {
        return;
    }
    if (!here(2u * w)) {
        return;
    }
    var hi = 0u;
    if (2u * w + 1u < total) {
        hi = element(2u * w + 1u);
    }
    dst[w] = element(2u * w) | (hi << 16u);
}
