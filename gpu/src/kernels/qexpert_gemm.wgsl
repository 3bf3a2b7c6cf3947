// The grouped mixture-of-experts product on quantized blocks for many rows (prefill), from the
// plan expert_group.wgsl made: as qmatmul.wgsl, a workgroup computes a TM x TN tile of out, 2 x 4
// outputs per thread, staging TM x 32 values of x and TN decoded units of weights in workgroup
// memory for each unit of K; but its TM rows are one tile of the plan (up to TM rows of one
// expert, gathered from x through the permutation), its weights are rows e n + n0.. of the
// stacked [E n, k] matrix, and each result row goes straight to its original row of out. An
// expert's blocks are so decoded once per tile of its rows, not once per row. The grid is the
// most tiles the plan may list by the column blocks; workgroups past its tile count leave at
// once, as do those of a tile whose expert another window of a split stack holds.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> plan: array<u32>;

const TM: u32 = 32u; // matmul/expert.rs's TILE_M, the rows of a tile in the plan
const TN: u32 = 64u;
const PAD: u32 = 33u;

var<workgroup> xs: array<f32, 1056>; // [TM][PAD]
var<workgroup> ws: array<f32, 2112>; // [TN][PAD]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = wid.y;
    if (tile >= plan[0]) {
        return; // uniform: the whole workgroup
    }
    // The plan: [0] the tile count, [1, 1 + m) the permutation, then three words a tile.
    let at = 1u + params.m + tile * 3u;
    let expert = plan[at] - params.base;
    if (expert >= params.experts) {
        return; // uniform: another window's expert
    }
    let listed = 1u + plan[at + 1u]; // where the permutation lists the tile's first row
    let rows = plan[at + 2u];
    let tx = lid.x % 16u;
    let ty = lid.x / 16u;
    let n0 = wid.x * TN;
    var acc: array<f32, 8>; // [2][4]: rows ty + 16 r, columns tx + 16 c
    for (var u = 0u; u < params.units; u = u + 1u) {
        for (var e = lid.x; e < TM * 32u; e = e + 256u) {
            let i = e / 32u;
            var v = 0.0;
            if (i < rows) {
                v = x[plan[listed + i] * params.k + u * 32u + e % 32u];
            }
            xs[i * PAD + e % 32u] = v;
        }
        if (lid.x < TN) {
            let row = n0 + lid.x;
            if (row < params.n) {
                load_unit(expert * params.n + row, u);
            } else {
                for (var j = 0u; j < 32u; j = j + 1u) {
                    unit[j] = 0.0;
                }
            }
            for (var j = 0u; j < 32u; j = j + 1u) {
                ws[lid.x * PAD + j] = unit[j];
            }
        }
        workgroupBarrier();
        for (var j = 0u; j < 32u; j = j + 1u) {
            for (var r = 0u; r < 2u; r = r + 1u) {
                let xv = xs[(ty + 16u * r) * PAD + j];
                for (var c = 0u; c < 4u; c = c + 1u) {
                    acc[r * 4u + c] = acc[r * 4u + c] + xv * ws[(tx + 16u * c) * PAD + j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 2u; r = r + 1u) {
        let i = ty + 16u * r;
        if (i >= rows) {
            break;
        }
        let dst = plan[listed + i] * params.n;
        for (var c = 0u; c < 4u; c = c + 1u) {
            let ni = n0 + tx + 16u * c;
            if (ni < params.n) {
                out[dst + ni] = acc[r * 4u + c];
            }
        }
    }
}
