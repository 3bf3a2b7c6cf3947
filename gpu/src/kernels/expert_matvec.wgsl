// The mixture-of-experts product for a few rows (decode), out[r, n] = sum_k x[r, k] *
// W[ids[r]][k, n]: matvec.wgsl's matrix-vector product with each row of x as one batch, read
// against its own expert's weights. Its entry point, matvec_tree.wgsl or matvec_subgroup.wgsl, is
// appended unchanged: it sees the row as `batch` (the grid's z) and calls the two functions here.
// - B_K_CONTIGUOUS (W[e] [K, N] a view of a stored [N, K], the usual x @ W^T): matvec_rows.wgsl's
//   partial sums of OUTS outputs of one row a workgroup, its threads walking K together, so
//   neighbouring threads read neighbouring weights (8 at a time in 16-byte loads with VEC); the
//   entry point adds the threads' partial sums (a tree through workgroup memory, or subgroupAdd).
// - otherwise (W[e] stored [K, N], as the backward pass multiplies by the transpose): one thread
//   per output walking k; at each k neighbouring threads read neighbouring outputs' weights.
// An id past the experts gives a zero row and sets the error flag.
// The generated piece gives matmul.rs's matrix-vector readers (A, W, load_a, load_b, load_a8,
// load_b8), one matrix (MATS = 1, load_w, load_w8, combine) and the flags VEC and B_K_CONTIGUOUS.

struct Params {
    n: u32,
    k: u32,
    experts: u32,
    pad: u32,
    w_offset: u32,
    w_expert: u32,
    w_row: u32,
    w_col: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<A>;
@group(0) @binding(2) var<storage, read> b: array<W>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> ids: array<u32>;
@group(0) @binding(5) var<storage, read_write> error_flag: array<atomic<u32>>;

// Row `row`'s expert. An id out of range sets the error flag (from thread `t` 0 alone); the
// caller sees it is not below params.experts and sums nothing.
fn expert_of(row: u32, t: u32) -> u32 {
    let e = ids[row];
    if (e >= params.experts && t == 0u) {
        atomicOr(&error_flag[0], 1u);
    }
    return e;
}

// This thread's share of the SUMS rows of outputs n0..n0 + OUTS of row `row`; a row whose id is
// out of range sums nothing.
fn partial_sums(row: u32, n0: u32, t: u32) -> array<f32, SUMS> {
    let e = expert_of(row, t);
    if (e >= params.experts) {
        return array<f32, SUMS>();
    }
    let starts = array<u32, MATS>(params.w_offset + e * params.w_expert);
    let rows = weight_rows(starts, n0, params.n, params.w_col);
    return row_sums(row * params.k, 1u, rows, params.w_row, t);
}

// W[e] [K, N] with N contiguous: output n of row `row`, one thread each.
fn walk_column(row: u32, n: u32) {
    let e = expert_of(row, n);
    if (n >= params.n) {
        return;
    }
    var sum = 0.0;
    if (e < params.experts) {
        let a_base = row * params.k;
        let b_base = params.w_offset + e * params.w_expert + n * params.w_col;
        for (var k = 0u; k < params.k; k = k + 1u) {
            sum = sum + load_a(a_base + k) * load_b(b_base + k * params.w_row);
        }
    }
    out[row * params.n + n] = sum;
}
