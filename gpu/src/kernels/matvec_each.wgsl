// matmul_each's products of one row x with up to three weight matrices, side by side in one
// output: out[n] = sum_k x[k] W_m[n - first_m, k] for n in matrix m's outputs
// first_m..first_(m+1), bounds = (first_0 = 0, first_1, first_2, n). Each W_m is bound on its own
// (b, c, d; a binding repeated where fewer are given, its outputs then none) and read along K
// (B_K_CONTIGUOUS) from its offset, its rows `strides[m]` apart. A workgroup's OUTS outputs lie in
// one matrix (the launcher takes only first_1 and first_2 that are multiples of OUTS), so its
// threads walk K over one matrix's rows: matvec_rows.wgsl's partial sums with MATS = 1, the
// binding chosen by the workgroup's `matrix`, added by matvec.wgsl's entry points as a product's.
// The generated piece gives x's and b's readers (A, W, load_a, load_a8, load_b, load_b8), c's
// and d's (load_c, load_c8, load_d, load_d8), and the flags VEC and B_K_CONTIGUOUS.

struct Params {
    n: u32,
    k: u32,
    a_offset: u32,
    a_col: u32,
    bounds: vec4<u32>,  // first_0 = 0, first_1, first_2, n: where each matrix's outputs start
    starts: vec4<u32>,  // each matrix's first element in its binding
    strides: vec4<u32>, // elements from one of its rows to the next
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<A>;
@group(0) @binding(2) var<storage, read> b: array<W>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> c: array<W>;
@group(0) @binding(5) var<storage, read> d: array<W>;

const MATS: u32 = 1u;

// The matrix this workgroup's outputs come from (the same for all its threads).
var<private> matrix: u32;

fn load_w(m: u32, i: u32) -> f32 {
    if (matrix == 0u) {
        return load_b(i);
    }
    if (matrix == 1u) {
        return load_c(i);
    }
    return load_d(i);
}

fn load_w8(m: u32, i: u32) -> Chunk {
    if (matrix == 0u) {
        return load_b8(i);
    }
    if (matrix == 1u) {
        return load_c8(i);
    }
    return load_d8(i);
}

fn combine(sums: array<f32, MATS>) -> f32 {
    return sums[0];
}

// This thread's share of the SUMS rows of outputs n0..n0 + OUTS (one row, batch 0).
fn partial_sums(batch: u32, n0: u32, t: u32) -> array<f32, SUMS> {
    matrix = select(select(2u, 1u, n0 < params.bounds[2]), 0u, n0 < params.bounds[1]);
    let first = params.bounds[matrix];
    let starts = array<u32, MATS>(params.starts[matrix]);
    let rows = weight_rows(starts, n0 - first, params.bounds[matrix + 1u] - first, params.strides[matrix]);
    return row_sums(params.a_offset, params.a_col, rows, 1u, t);
}

// Never called: the launcher takes weights read along K only, whose entry point does not walk
// columns.
fn walk_column(batch: u32, n: u32) {}
