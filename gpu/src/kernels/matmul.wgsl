// Batched matmul out[b] = A[b] @ B[b] with A [M, K], B [K, N] given by strides (one of each
// operand's two strides is 1), out [M, N] contiguous.
//
// Tiled for registers and workgroup memory: a 16x16 workgroup computes a 128x64 block of out,
// each thread an 8x4 sub-block (rows ty*8.., columns tx*4..) held in registers. K advances
// KT = 16 at a time through workgroup memory, both slices stored k-major with a row padded by 4
// ([KT][BM + 4] and [KT][BN + 4]), so a thread reads its 8 values of A as two vec4s and its 4
// of B as one: across a warp, two distinct A addresses (broadcast) and 16 consecutive B vec4s,
// no bank conflict; the stores of a k-contiguous operand transpose into it with at most a
// 2-way conflict. Global memory is read four elements at a time along each operand's
// contiguous dim (neighbouring threads neighbouring quads; one vec4 load, or vec2<u32> of four
// packed halves, where the operand is 16-byte / 8-byte aligned, else four scalar loads), and
// the next slice is fetched into registers while the current one is multiplied (a register
// double buffer, in the workgroup memory of one slice). Elements past M, N or K read as 0.
//
// The generated piece gives the binding types A and W, `load_a(i)` / `load_b(i)` (element i as
// f32), `load_a4(i)` / `load_b4(i)` (elements i..i+4, i a multiple of 4, used only with
// A_VEC / B_VEC), and the flags A_K_CONTIGUOUS, B_N_CONTIGUOUS, A_VEC, B_VEC.

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
@group(0) @binding(1) var<storage, read> a: array<A>;
@group(0) @binding(2) var<storage, read> b: array<W>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const BM: u32 = 128u;
const BN: u32 = 64u;
const KT: u32 = 16u;
const SA: u32 = 132u; // BM + 4
const SB: u32 = 68u; // BN + 4

var<workgroup> a_tile: array<vec4<f32>, 528>; // [KT][SA] floats
var<workgroup> b_tile: array<vec4<f32>, 272>; // [KT][SB] floats

// Four elements of A from (r, k) along its contiguous dim (k when A_K_CONTIGUOUS, else m).
fn fetch_a(base: u32, r: u32, k: u32) -> vec4<f32> {
    let i = base + r * params.a_row + k * params.a_col;
    var v = vec4<f32>(0.0);
    if (A_K_CONTIGUOUS) {
        if (r >= params.m) {
            return v;
        }
        if (A_VEC && k + 3u < params.k) {
            return load_a4(i);
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (k + j < params.k) {
                v[j] = load_a(i + j * params.a_col);
            }
        }
    } else {
        if (k >= params.k) {
            return v;
        }
        if (A_VEC && r + 3u < params.m) {
            return load_a4(i);
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (r + j < params.m) {
                v[j] = load_a(i + j * params.a_row);
            }
        }
    }
    return v;
}

// Four elements of B from (k, c) along its contiguous dim (`fetch_b_strided`, tile_b.wgsl).
fn fetch_b(base: u32, k: u32, c: u32) -> vec4<f32> {
    return fetch_b_strided(base, k, c, params.b_row, params.b_col);
}

// The quads this thread loads of the slice at k0: A's 512 (two each), B's 256 (one each),
// numbered so that neighbouring threads read neighbouring addresses.
struct Fetched {
    a0: vec4<f32>,
    a1: vec4<f32>,
    b0: vec4<f32>,
}

fn a_quad(q: u32) -> vec2<u32> {
    // (row, k) of the quad's first element.
    if (A_K_CONTIGUOUS) {
        return vec2<u32>(q / 4u, (q % 4u) * 4u);
    }
    return vec2<u32>((q % 32u) * 4u, q / 32u);
}

fn fetch(a_base: u32, b_base: u32, row0: u32, col0: u32, k0: u32, flat: u32) -> Fetched {
    let qa0 = a_quad(flat);
    let qa1 = a_quad(flat + 256u);
    let qb = b_quad(flat);
    return Fetched(
        fetch_a(a_base, row0 + qa0.x, k0 + qa0.y),
        fetch_a(a_base, row0 + qa1.x, k0 + qa1.y),
        fetch_b(b_base, k0 + qb.x, col0 + qb.y),
    );
}

fn store_a(q: u32, v: vec4<f32>) {
    let at = a_quad(q);
    if (A_K_CONTIGUOUS) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            set_a((at.y + j) * SA + at.x, v[j]);
        }
    } else {
        a_tile[(at.y * SA + at.x) >> 2u] = v;
    }
}

fn store_b(q: u32, v: vec4<f32>) {
    let at = b_quad(q);
    if (B_N_CONTIGUOUS) {
        b_tile[(at.x * SB + at.y) >> 2u] = v;
    } else {
        for (var j = 0u; j < 4u; j = j + 1u) {
            set_b((at.x + j) * SB + at.y, v[j]);
        }
    }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let batch = wid.z;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let flat = lid.y * 16u + lid.x;
    let a_base = params.a_offset + batch * params.a_batch;
    let b_base = params.b_offset + batch * params.b_batch;
    var acc: array<vec4<f32>, 8>;
    var next = fetch(a_base, b_base, row0, col0, 0u, flat);
    for (var k0 = 0u; k0 < params.k; k0 = k0 + KT) {
        store_a(flat, next.a0);
        store_a(flat + 256u, next.a1);
        store_b(flat, next.b0);
        workgroupBarrier();
        if (k0 + KT < params.k) {
            next = fetch(a_base, b_base, row0, col0, k0 + KT, flat);
        }
        for (var kk = 0u; kk < KT; kk = kk + 1u) {
            let a_lo = a_tile[(kk * SA) / 4u + lid.y * 2u];
            let a_hi = a_tile[(kk * SA) / 4u + lid.y * 2u + 1u];
            let bv = b_tile[(kk * SB) / 4u + lid.x];
            for (var i = 0u; i < 4u; i = i + 1u) {
                acc[i] = acc[i] + a_lo[i] * bv;
                acc[i + 4u] = acc[i + 4u] + a_hi[i] * bv;
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 8u; i = i + 1u) {
        let row = row0 + lid.y * 8u + i;
        if (row >= params.m) {
            break;
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = col0 + lid.x * 4u + j;
            if (col < params.n) {
                out[(batch * params.m + row) * params.n + col] = acc[i][j];
            }
        }
    }
}
