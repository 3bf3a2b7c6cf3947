// The grouped mixture-of-experts product for many rows (prefill), out[r, n] = sum_k x[r, k] *
// W[ids[r]][k, n], from the plan expert_group.wgsl made (its tile table and permutation): a
// workgroup multiplies one tile, up to BM rows of one expert gathered from x through the
// permutation, by a BN-column block of that expert's weights, and writes each result row straight
// to its original row of out. An expert's weights are so read once per tile of its rows, not
// once per row. The grid is the most tiles R rows can make (ceil(R / BM) + E) by the column
// blocks; the workgroups past the plan's real count leave at once. Stacked weights over the
// storage binding limit are bound a window of whole experts at a time (split.rs), one dispatch
// each over the same plan and grid: experts base..base + experts are bound, the first from
// w_offset, and the workgroups of a tile of another window's expert leave at once too (within
// the limit: one window, base 0, every expert, w_offset the view's offset).
//
// Tiled as matmul.wgsl, smaller (an expert's tile is often far from full): a 16x8 workgroup
// computes a 32x64 block, each thread a 4x4 sub-block (rows ty*4.., columns tx*4..) in
// registers. K advances KT = 16 at a time through workgroup memory, both slices stored k-major
// with rows padded by 4 ([KT][BM + 4] and [KT][BN + 4]), so a thread reads its 4 values of x and
// its 4 of W as one vec4 each; the next slice is fetched into registers while the current one is
// multiplied. Global memory is read four elements at a time along each operand's contiguous dim:
// x [R, K] is contiguous (along k); W[e] [K, N] along k (B_N_CONTIGUOUS false, the usual view of
// a stored [N, K]) or along n. Elements past the tile's rows, N or K read as 0.
//
// The generated piece gives matmul.rs's tiled readers (A, W, load_a, load_a4, load_b, load_b4)
// and the flags A_VEC, B_VEC and B_N_CONTIGUOUS.

struct Params {
    n: u32,
    k: u32,
    rows: u32,
    base: u32, // the first expert bound (this window's)
    w_offset: u32,
    w_expert: u32,
    w_row: u32,
    w_col: u32,
    experts: u32, // the experts bound
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<A>;
@group(0) @binding(2) var<storage, read> b: array<W>;
@group(0) @binding(3) var<storage, read> plan: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const BM: u32 = 32u; // matmul/expert.rs's TILE_M, the rows of a tile in the plan
const BN: u32 = 64u;
const KT: u32 = 16u;
const SA: u32 = 36u; // BM + 4
const SB: u32 = 68u; // BN + 4

var<workgroup> a_tile: array<vec4<f32>, 144>; // [KT][SA] floats
var<workgroup> b_tile: array<vec4<f32>, 272>; // [KT][SB] floats

// Four elements of x along k from `k` of the row starting at `base` (none when !valid).
fn fetch_a(base: u32, valid: bool, k: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (!valid) {
        return v;
    }
    if (A_VEC && k + 3u < params.k) {
        return load_a4(base + k);
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        if (k + j < params.k) {
            v[j] = load_a(base + k + j);
        }
    }
    return v;
}

// Four elements of W[e] from (k, c) along its contiguous dim (`fetch_b_strided`, tile_b.wgsl).
fn fetch_b(base: u32, k: u32, c: u32) -> vec4<f32> {
    return fetch_b_strided(base, k, c, params.w_row, params.w_col);
}

// The quads this thread loads of the slice at k0: x's (its row `flat / 4`, k `flat % 4 * 4`,
// 128 in all) and W's two.
struct Fetched {
    a: vec4<f32>,
    b0: vec4<f32>,
    b1: vec4<f32>,
}

fn fetch(a_base: u32, a_valid: bool, b_base: u32, col0: u32, k0: u32, flat: u32) -> Fetched {
    let qb0 = b_quad(flat);
    let qb1 = b_quad(flat + 128u);
    return Fetched(
        fetch_a(a_base, a_valid, k0 + (flat % 4u) * 4u),
        fetch_b(b_base, k0 + qb0.x, col0 + qb0.y),
        fetch_b(b_base, k0 + qb1.x, col0 + qb1.y),
    );
}

fn store_a(flat: u32, v: vec4<f32>) {
    let row = flat / 4u;
    let k = (flat % 4u) * 4u;
    for (var j = 0u; j < 4u; j = j + 1u) {
        set_a((k + j) * SA + row, v[j]);
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

@compute @workgroup_size(16, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = wid.y;
    if (tile >= plan[0]) {
        return; // uniform: the whole workgroup
    }
    // The plan: [0] the tile count, [1, 1 + R) the permutation, then three words a tile.
    let at = 1u + params.rows + tile * 3u;
    let expert = plan[at] - params.base;
    if (expert >= params.experts) {
        return; // uniform: another window's expert
    }
    let listed = 1u + plan[at + 1u]; // where the permutation lists the tile's first row
    let rows = plan[at + 2u];
    let col0 = wid.x * BN;
    let flat = lid.y * 16u + lid.x;
    // The row of x this thread loads from, for every slice.
    let a_valid = flat / 4u < rows;
    var a_base = 0u;
    if (a_valid) {
        a_base = plan[listed + flat / 4u] * params.k;
    }
    let b_base = params.w_offset + expert * params.w_expert;
    var acc: array<vec4<f32>, 4>;
    var next = fetch(a_base, a_valid, b_base, col0, 0u, flat);
    for (var k0 = 0u; k0 < params.k; k0 = k0 + KT) {
        store_a(flat, next.a);
        store_b(flat, next.b0);
        store_b(flat + 128u, next.b1);
        workgroupBarrier();
        if (k0 + KT < params.k) {
            next = fetch(a_base, a_valid, b_base, col0, k0 + KT, flat);
        }
        for (var kk = 0u; kk < KT; kk = kk + 1u) {
            let av = a_tile[(kk * SA) / 4u + lid.y];
            let bv = b_tile[(kk * SB) / 4u + lid.x];
            for (var i = 0u; i < 4u; i = i + 1u) {
                acc[i] = acc[i] + av[i] * bv;
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = lid.y * 4u + i;
        if (row >= rows) {
            break;
        }
        let dst = plan[listed + row] * params.n;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = col0 + lid.x * 4u + j;
            if (col < params.n) {
                out[dst + col] = acc[i][j];
            }
        }
    }
}
