// Batched matmul out[b] = A[b] @ B[b] with A [M, K], B [K, N] given by strides (one of each
// operand's two strides is 1), out [M, N] contiguous.
//
// Tiled: a 16x16 workgroup computes a 64x64 block of out, each thread a 4x4 sub-block held in
// registers. The K dimension advances 16 at a time through workgroup memory: all 256 threads
// load a 64x16 slice of A and a 16x64 slice of B (reading along whichever dim is contiguous, so
// neighbouring threads read neighbouring addresses), then each thread does 16 x 4 x 4
// multiply-adds from fast memory. The generated piece gives `load_b(i) -> f32` (B may be f32,
// or bf16/f16 packed two per word) and the A_K_CONTIGUOUS / B_N_CONTIGUOUS flags.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_offset: u32,
    a_batch: u32,
    a_row: u32,
    a_col: u32,
    b_offset: u32,
    b_batch: u32,
    b_row: u32,
    b_col: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<W>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const TILE: u32 = 64u;
const KT: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [TILE rows][KT]
var<workgroup> b_tile: array<f32, 1024>; // [KT][TILE cols]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let batch = wid.z;
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let flat = lid.y * 16u + lid.x;
    let a_base = params.a_offset + batch * params.a_batch;
    let b_base = params.b_offset + batch * params.b_batch;
    var acc: array<array<f32, 4>, 4>;
    for (var i = 0u; i < 4u; i = i + 1u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            acc[i][j] = 0.0;
        }
    }
    for (var k0 = 0u; k0 < params.k; k0 = k0 + KT) {
        for (var e = 0u; e < 4u; e = e + 1u) {
            let idx = flat + e * 256u;
            var r: u32;
            var kk: u32;
            if (A_K_CONTIGUOUS) {
                r = idx / KT;
                kk = idx % KT;
            } else {
                kk = idx / TILE;
                r = idx % TILE;
            }
            var v = 0.0;
            if (row0 + r < params.m && k0 + kk < params.k) {
                v = a[a_base + (row0 + r) * params.a_row + (k0 + kk) * params.a_col];
            }
            a_tile[r * KT + kk] = v;
            var c: u32;
            var kb: u32;
            if (B_N_CONTIGUOUS) {
                kb = idx / TILE;
                c = idx % TILE;
            } else {
                c = idx / KT;
                kb = idx % KT;
            }
            var w = 0.0;
            if (k0 + kb < params.k && col0 + c < params.n) {
                w = load_b(b_base + (k0 + kb) * params.b_row + (col0 + c) * params.b_col);
            }
            b_tile[kb * TILE + c] = w;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk = kk + 1u) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i = i + 1u) {
                av[i] = a_tile[(lid.y * 4u + i) * KT + kk];
                bv[i] = b_tile[kk * TILE + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    acc[i][j] = acc[i][j] + av[i] * bv[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = col0 + lid.x * 4u + j;
            if (row < params.m && col < params.n) {
                out[(batch * params.m + row) * params.n + col] = acc[i][j];
            }
        }
    }
}
