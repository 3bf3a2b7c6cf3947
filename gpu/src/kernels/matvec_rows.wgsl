// The threads' partial sums of a matrix-vector product, shared by matvec.wgsl (a product, or
// matmul_glu's gate and up products), matvec_each.wgsl and expert_matvec.wgsl. A workgroup of WG
// threads reads SUMS weight rows: OUTS rows of each of MATS matrices (MATS = 1: one product, 4
// outputs a workgroup; MATS = 2: matmul_glu's gate and up rows of 2 outputs), sum m * OUTS + j
// from row n0 + j of matrix m. Its threads walk K together, each keeping SUMS partial sums, so
// every x value loaded serves SUMS rows. With VEC, 8 consecutive k at a time: per row one 16-byte
// load of 8 packed halves (vec4<u32>) or two of 4 f32s, and two vec4 loads of x. The tail of K
// past its last multiple of 8 (all of K without VEC) is read one element at a time. The entry
// point, appended from matvec_tree.wgsl or matvec_subgroup.wgsl, adds the partial sums across
// threads. The generated piece gives MATS, `load_w(m, i)` / `load_w8(m, i)` (element i, elements
// i..i+8, of matrix m as f32), `combine` (an output from its MATS dot products), x's readers
// `load_a(i)` / `load_a8(i)` and the flag VEC; the kernel's params hold K as `k`.

const WG: u32 = 128u;
const SUMS: u32 = 4u;
const OUTS: u32 = SUMS / MATS;

// Eight consecutive elements, widened to f32.
struct Chunk {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// The first element of each sum's weight row, for outputs n0..n0 + OUTS of N: matrix m's rows
// start at starts[m], `stride` elements apart. Rows past N repeat the last (read, never written).
fn weight_rows(starts: array<u32, MATS>, n0: u32, n: u32, stride: u32) -> array<u32, SUMS> {
    var rows: array<u32, SUMS>;
    for (var s = 0u; s < SUMS; s = s + 1u) {
        rows[s] = starts[s / OUTS] + min(n0 + s % OUTS, n - 1u) * stride;
    }
    return rows;
}

// This thread's share of the dot products of x (from a_base, a_col apart) with the weight rows
// starting at `rows` (elements b_row apart along k; 1 with VEC): its k are t, t + WG, ... (8 at a
// time with VEC).
fn row_sums(a_base: u32, a_col: u32, rows: array<u32, SUMS>, b_row: u32, t: u32) -> array<f32, SUMS> {
    var sums: array<f32, SUMS>;
    var k_vec = 0u;
    if (VEC) {
        k_vec = params.k & ~7u;
        for (var k = t * 8u; k < k_vec; k = k + WG * 8u) {
            let x = load_a8(a_base + k);
            for (var s = 0u; s < SUMS; s = s + 1u) {
                let w = load_w8(s / OUTS, rows[s] + k);
                sums[s] = sums[s] + dot(x.lo, w.lo) + dot(x.hi, w.hi);
            }
        }
    }
    for (var k = k_vec + t; k < params.k; k = k + WG) {
        let x = load_a(a_base + k * a_col);
        for (var s = 0u; s < SUMS; s = s + 1u) {
            sums[s] = sums[s] + x * load_w(s / OUTS, rows[s] + k * b_row);
        }
    }
    return sums;
}
