// Matrix-vector products for batch-1 decoding, out[b, n] = sum_k x[b, k] * B[b][k, n]: the
// whole cost is reading B once, so the kernels are arranged for that read to be coalesced.
// - B_K_CONTIGUOUS (the usual x @ W^T with W [N, K] row-major): one workgroup per output; its
//   256 threads read W's row n together, then add up their partial sums in workgroup memory.
// - otherwise (B [K, N] row-major): one thread per output walking k; at each k neighbouring
//   threads read neighbouring outputs' weights.

struct Params {
    n: u32,
    k: u32,
    batch: u32,
    pad0: u32,
    a_offset: u32,
    a_batch: u32,
    a_col: u32,
    pad1: u32,
    b_offset: u32,
    b_batch: u32,
    b_row: u32,
    b_col: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<W>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let batch = wid.z;
    let a_base = params.a_offset + batch * params.a_batch;
    let b_base = params.b_offset + batch * params.b_batch;
    if (B_K_CONTIGUOUS) {
        let n = wid.y * groups.x + wid.x;
        if (n >= params.n) {
            return; // uniform: one output per workgroup
        }
        var sum = 0.0;
        for (var k = lid.x; k < params.k; k = k + 256u) {
            sum = sum + a[a_base + k * params.a_col] * load_b(b_base + n * params.b_col + k * params.b_row);
        }
        partial[lid.x] = sum;
        workgroupBarrier();
        for (var s = 128u; s > 0u; s = s >> 1u) {
            if (lid.x < s) {
                partial[lid.x] = partial[lid.x] + partial[lid.x + s];
            }
            workgroupBarrier();
        }
        if (lid.x == 0u) {
            out[batch * params.n + n] = partial[0];
        }
    } else {
        let n = (wid.y * groups.x + wid.x) * 256u + lid.x;
        if (n >= params.n) {
            return;
        }
        var sum = 0.0;
        for (var k = 0u; k < params.k; k = k + 1u) {
            sum = sum + a[a_base + k * params.a_col] * load_b(b_base + k * params.b_row + n * params.b_col);
        }
        out[batch * params.n + n] = sum;
    }
}
