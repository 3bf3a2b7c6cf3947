// Matrix-vector products for batch-1 decoding, out[b, n] = sum_k x[b, k] * B[b][k, n]: the
// whole cost is reading B once, so the reads are arranged to be coalesced and wide.
// - B_K_CONTIGUOUS (the usual x @ W^T with W [N, K] row-major): a workgroup of WG threads
//   computes ROWS outputs. Its threads walk K together, each keeping ROWS partial sums, so every
//   x value loaded serves ROWS rows. With VEC, 8 consecutive k at a time: per row one 16-byte
//   load of 8 packed halves (vec4<u32>) or two of 4 f32s, and two vec4 loads of x. The tail of K
//   past its last multiple of 8 (all of K without VEC) is read one element at a time. The
//   entry point, appended from matvec_tree.wgsl or matvec_subgroup.wgsl, adds the partial sums.
// - otherwise (B [K, N] row-major): one thread per output walking k; at each k neighbouring
//   threads read neighbouring outputs' weights.
// The generated piece gives the binding types A and W, `load_a(i)` / `load_b(i)` (element i as
// f32) and `load_a8(i)` / `load_b8(i)` (elements i..i+8, i a multiple of 8 when VEC), and the
// flags VEC and B_K_CONTIGUOUS.

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
@group(0) @binding(1) var<storage, read> a: array<A>;
@group(0) @binding(2) var<storage, read> b: array<W>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WG: u32 = 128u;
const ROWS: u32 = 4u;

// Eight consecutive elements, widened to f32.
struct Chunk {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// This thread's share of rows n0..n0 + ROWS of out[batch]: its k are t, t + WG, ... (8 at a
// time with VEC). Rows past N repeat the last row (read, never written).
fn partial_sums(batch: u32, n0: u32, t: u32) -> array<f32, ROWS> {
    let a_base = params.a_offset + batch * params.a_batch;
    let b_base = params.b_offset + batch * params.b_batch;
    var rows: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r = r + 1u) {
        rows[r] = b_base + min(n0 + r, params.n - 1u) * params.b_col;
    }
    var sums: array<f32, ROWS>;
    var k_vec = 0u;
    if (VEC) {
        k_vec = params.k & ~7u;
        for (var k = t * 8u; k < k_vec; k = k + WG * 8u) {
            let x = load_a8(a_base + k);
            for (var r = 0u; r < ROWS; r = r + 1u) {
                let w = load_b8(rows[r] + k);
                sums[r] = sums[r] + dot(x.lo, w.lo) + dot(x.hi, w.hi);
            }
        }
    }
    for (var k = k_vec + t; k < params.k; k = k + WG) {
        let x = load_a(a_base + k * params.a_col);
        for (var r = 0u; r < ROWS; r = r + 1u) {
            sums[r] = sums[r] + x * load_b(rows[r] + k * params.b_row);
        }
    }
    return sums;
}

// B [K, N] with N contiguous: output n of out[batch], one thread each.
fn walk_column(batch: u32, n: u32) {
    if (n >= params.n) {
        return;
    }
    let a_base = params.a_offset + batch * params.a_batch;
    let b_base = params.b_offset + batch * params.b_batch;
    var sum = 0.0;
    for (var k = 0u; k < params.k; k = k + 1u) {
        sum = sum + load_a(a_base + k * params.a_col) * load_b(b_base + k * params.b_row + n * params.b_col);
    }
    out[batch * params.n + n] = sum;
}
