// The plan of the grouped mixture-of-experts product (expert_gemm.wgsl), made on the device so the
// host never waits for the ids: which rows each expert takes, listed together, and the tiles of
// up to TILE_M of them that the product's workgroups multiply. One workgroup does it all (its
// cost is a few passes over the R ids, next to a product that reads every chosen expert's
// weights), so its counts live in workgroup memory and need no clearing dispatch:
// 1. a histogram of the ids over WINDOW experts at a time (workgroup atomics);
// 2. an exclusive scan of those counts, and of their tiles (ceil(count / TILE_M) each): each
//    thread adds up PER experts, then the THREADS totals are scanned in log2(THREADS) steps;
// 3. each expert's tiles are written to the tile table, and its count becomes the cursor where
//    its rows start in the permutation;
// 4. every row takes the next place of its expert's (an atomic bump of the cursor): the order
//    within an expert varies from run to run, the values do not, each output row depending on its
//    own row alone.
// More than WINDOW experts are taken a window at a time, carrying the rows and tiles before.
// A row whose id is past the experts is in no tile: its output row is zeroed here and the error
// flag set.
//
// `plan` (u32): [0] the number of tiles; [1, 1 + R) the permutation (original row numbers); from
// 1 + R, three words a tile (expert, the tile's first place in the permutation, its rows).
// The generated piece gives TILE_M.

struct Params {
    rows: u32,
    experts: u32,
    n: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> plan: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> error_flag: array<atomic<u32>>;

const THREADS: u32 = 256u;
const PER: u32 = 4u;
const WINDOW: u32 = 1024u; // THREADS * PER

var<workgroup> counts: array<atomic<u32>, 1024>; // [WINDOW]
// Each thread's rows and tiles, then their inclusive scans (the thread's and those before it).
var<workgroup> row_sums: array<u32, 256>; // [THREADS]
var<workgroup> tile_sums: array<u32, 256>; // [THREADS]

// Whether expert `e` lies in the window from `e0` (and is an expert at all).
fn in_window(e: u32, e0: u32) -> bool {
    return e >= e0 && e - e0 < WINDOW && e < params.experts;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    var row_base = 0u;
    var tile_base = 0u;
    for (var e0 = 0u; e0 < params.experts; e0 = e0 + WINDOW) {
        for (var i = 0u; i < PER; i = i + 1u) {
            atomicStore(&counts[t * PER + i], 0u);
        }
        workgroupBarrier();
        for (var r = t; r < params.rows; r = r + THREADS) {
            let e = ids[r];
            if (in_window(e, e0)) {
                atomicAdd(&counts[e - e0], 1u);
            }
        }
        workgroupBarrier();
        // This thread's experts t * PER .. (t + 1) * PER of the window.
        var mine: array<u32, PER>;
        var rows = 0u;
        var tiles = 0u;
        for (var i = 0u; i < PER; i = i + 1u) {
            mine[i] = atomicLoad(&counts[t * PER + i]);
            rows = rows + mine[i];
            tiles = tiles + (mine[i] + TILE_M - 1u) / TILE_M;
        }
        row_sums[t] = rows;
        tile_sums[t] = tiles;
        workgroupBarrier();
        // Inclusive scan (Hillis-Steele): after the step of s, each total holds the 2s before it.
        for (var s = 1u; s < THREADS; s = s << 1u) {
            var r_add = 0u;
            var t_add = 0u;
            if (t >= s) {
                r_add = row_sums[t - s];
                t_add = tile_sums[t - s];
            }
            workgroupBarrier();
            row_sums[t] = row_sums[t] + r_add;
            tile_sums[t] = tile_sums[t] + t_add;
            workgroupBarrier();
        }
        var first = row_base + row_sums[t] - rows;
        var tile = tile_base + tile_sums[t] - tiles;
        for (var i = 0u; i < PER; i = i + 1u) {
            let count = mine[i];
            for (var j = 0u; j < count; j = j + TILE_M) {
                let at = 1u + params.rows + tile * 3u;
                plan[at] = e0 + t * PER + i;
                plan[at + 1u] = first + j;
                plan[at + 2u] = min(TILE_M, count - j);
                tile = tile + 1u;
            }
            atomicStore(&counts[t * PER + i], first);
            first = first + count;
        }
        row_base = row_base + row_sums[THREADS - 1u];
        tile_base = tile_base + tile_sums[THREADS - 1u];
        workgroupBarrier();
        for (var r = t; r < params.rows; r = r + THREADS) {
            let e = ids[r];
            if (in_window(e, e0)) {
                plan[1u + atomicAdd(&counts[e - e0], 1u)] = r;
            }
        }
        // The next window clears the cursors only once every row has taken its place.
        workgroupBarrier();
    }
    if (t == 0u) {
        plan[0] = tile_base;
    }
    for (var r = t; r < params.rows; r = r + THREADS) {
        if (ids[r] >= params.experts) {
            atomicOr(&error_flag[0], 1u);
            for (var c = 0u; c < params.n; c = c + 1u) {
                out[r * params.n + c] = 0.0;
            }
        }
    }
}
