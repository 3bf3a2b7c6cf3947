// Matrix-vector products for batch-1 decoding, out[b, n] = sum_k x[b, k] * B[b][k, n]; or, with
// MATS = 2, matmul_glu's out[b, n] = act(sum_k x[b, k] B[b][k, n]) * sum_k x[b, k] C[b][k, n],
// the gate rows from b and the up rows from c (matvec_glu.wgsl), each weight read once: the
// whole cost is reading the weights, so the reads are arranged to be coalesced and wide.
// - B_K_CONTIGUOUS (the usual x @ W^T with W [N, K] row-major): matvec_rows.wgsl's partial sums,
//   OUTS outputs a workgroup, added across its threads by the entry point (matvec_tree.wgsl or
//   matvec_subgroup.wgsl), which writes `combine` of each output's MATS sums.
// - otherwise (B [K, N] row-major): one thread per output walking k; at each k neighbouring
//   threads read neighbouring outputs' weights.
// The generated piece gives the binding types A and W, `load_a(i)` / `load_b(i)` (element i as
// f32) and `load_a8(i)` / `load_b8(i)` (elements i..i+8, i a multiple of 8 when VEC), MATS with
// `load_w`, `load_w8` and `combine` (see matvec_rows.wgsl), and the flags VEC and B_K_CONTIGUOUS.

struct Params {
    n: u32,
    k: u32,
    batch: u32,
    pad0: u32,
    a_offset: u32,
    a_batch: u32,
    a_col: u32,
    c_offset: u32, // matrix 1's first element (MATS = 2); its strides are b's
    b_offset: u32,
    b_batch: u32,
    b_row: u32,
    b_col: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<A>;
@group(0) @binding(2) var<storage, read> b: array<W>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// Where matrix m of batch `batch` starts: b's offset, or c's for m = 1.
fn weight_start(batch: u32, m: u32) -> u32 {
    return select(params.b_offset, params.c_offset, m == 1u) + batch * params.b_batch;
}

// This thread's share of the SUMS rows of outputs n0..n0 + OUTS of out[batch].
fn partial_sums(batch: u32, n0: u32, t: u32) -> array<f32, SUMS> {
    var starts: array<u32, MATS>;
    for (var m = 0u; m < MATS; m = m + 1u) {
        starts[m] = weight_start(batch, m);
    }
    let rows = weight_rows(starts, n0, params.n, params.b_col);
    return row_sums(params.a_offset + batch * params.a_batch, params.a_col, rows, params.b_row, t);
}

// B [K, N] with N contiguous: output n of out[batch], one thread each.
fn walk_column(batch: u32, n: u32) {
    if (n >= params.n) {
        return;
    }
    let a_base = params.a_offset + batch * params.a_batch;
    var sums: array<f32, MATS>;
    for (var k = 0u; k < params.k; k = k + 1u) {
        let x = load_a(a_base + k * params.a_col);
        for (var m = 0u; m < MATS; m = m + 1u) {
            sums[m] = sums[m] + x * load_w(m, weight_start(batch, m) + k * params.b_row + n * params.b_col);
        }
    }
    out[batch * params.n + n] = combine(sums);
}
