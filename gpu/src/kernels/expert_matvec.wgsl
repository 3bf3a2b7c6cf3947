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
// Stacked weights over the storage binding limit are bound a window of whole experts at a time
// (split.rs), one dispatch each over every row: experts base..base + count are bound, the first
// from w_offset, and a row routed to another window's expert keeps what that window's dispatch
// writes (within the limit: one window, base 0, count = experts, w_offset the view's offset).
// The generated piece gives matmul.rs's matrix-vector readers (A, W, load_a, load_b, load_a8,
// load_b8), one matrix (MATS = 1, load_w, load_w8, combine) and the flags VEC and B_K_CONTIGUOUS.

struct Params {
    n: u32,
    k: u32,
    experts: u32,
    base: u32, // the first expert bound (this window's)
    w_offset: u32,
    w_expert: u32,
    w_row: u32,
    w_col: u32,
    count: u32, // the experts bound
    pad0: u32,
    pad1: u32,
    pad2: u32,
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

// Whether expert `e` is bound in this dispatch (its window's); false for an id out of range.
fn bound_here(e: u32) -> bool {
    return e - params.base < params.count;
}

// This thread's share of the SUMS rows of outputs n0..n0 + OUTS of row `row`; a row whose id is
// out of range sums nothing. A row of another window's expert keeps its outputs: thread t < OUTS
// returns output n0 + t as its share of sum t (MATS = 1: sum s is output n0 + s), the others
// nothing, so the entry point writes back what the thread itself read (v + 0 is exactly v).
fn partial_sums(row: u32, n0: u32, t: u32) -> array<f32, SUMS> {
    let e = expert_of(row, t);
    if (!bound_here(e)) {
        var kept = array<f32, SUMS>();
        if (e < params.experts && t < SUMS && n0 + t < params.n) {
            kept[t] = out[row * params.n + n0 + t];
        }
        return kept;
    }
    let starts = array<u32, MATS>(params.w_offset + (e - params.base) * params.w_expert);
    let rows = weight_rows(starts, n0, params.n, params.w_col);
    return row_sums(row * params.k, 1u, rows, params.w_row, t);
}

// W[e] [K, N] with N contiguous: output n of row `row`, one thread each.
fn walk_column(row: u32, n: u32) {
    let e = expert_of(row, n);
    let here = bound_here(e);
    if (n >= params.n || (!here && e < params.experts)) {
        return; // past N, or another window's expert
    }
    var sum = 0.0;
    if (here) {
        let a_base = row * params.k;
        let b_base = params.w_offset + (e - params.base) * params.w_expert + n * params.w_col;
        for (var k = 0u; k < params.k; k = k + 1u) {
            sum = sum + load_a(a_base + k) * load_b(b_base + k * params.w_row);
        }
    }
    out[row * params.n + n] = sum;
}
