// Top-k over each row of a contiguous [rows, n] tensor: one thread per row, k passes, each
// finding the element that ranks right after the previous pick. Ranking: larger keys first (the
// IEEE total order for f32: +NaN first, -NaN last, +0 before -0), then lower indices: the CPU's
// order.

struct Params {
    rows: u32,
    n: u32,
    k: u32,
    pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<T>;
@group(0) @binding(2) var<storage, read_write> values: array<T>;
@group(0) @binding(3) var<storage, read_write> indices: array<u32>;

// Whether (a, ai) ranks before (b, bi).
fn before(a: T, ai: u32, b: T, bi: u32) -> bool {
    return key(a) > key(b) || (key(a) == key(b) && ai < bi);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = thread_index(wid, lid, groups);
    if (row >= params.rows) {
        return;
    }
    let base = row * params.n;
    var prev_value = src[base];
    var prev_index = 0xffffffffu;
    for (var round = 0u; round < params.k; round = round + 1u) {
        var best = 0xffffffffu;
        var best_value = src[base];
        for (var j = 0u; j < params.n; j = j + 1u) {
            let v = src[base + j];
            let after_prev = prev_index == 0xffffffffu || before(prev_value, prev_index, v, j);
            if (after_prev && (best == 0xffffffffu || before(v, j, best_value, best))) {
                best = j;
                best_value = v;
            }
        }
        values[row * params.k + round] = best_value;
        indices[row * params.k + round] = best;
        prev_value = best_value;
        prev_index = best;
    }
}
