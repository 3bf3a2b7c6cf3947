// The mixture-of-experts matmul, out[r, n] = sum_k x[r, k] * W[ids[r]][k, n]: one dispatch over
// every (row, expert) pair the router chose, each thread one output, reading its row's expert.
// An expert id out of range gives zeros and sets the error flag.

struct Params {
    rows: u32,
    n: u32,
    k: u32,
    experts: u32,
    w_offset: u32,
    w_expert: u32,
    w_row: u32,
    w_col: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<W>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> error_flag: array<atomic<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = thread_index(wid, lid, groups);
    if (t >= params.rows * params.n) {
        return;
    }
    let r = t / params.n;
    let n = t % params.n;
    let e = ids[r];
    if (e >= params.experts) {
        atomicOr(&error_flag[0], 1u);
        out[t] = 0.0;
        return;
    }
    let base = params.w_offset + e * params.w_expert + n * params.w_col;
    var sum = 0.0;
    for (var k = 0u; k < params.k; k = k + 1u) {
        sum = sum + x[r * params.k + k] * load_b(base + k * params.w_row);
    }
    out[t] = sum;
}
