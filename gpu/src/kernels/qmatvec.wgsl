// Decode and small batches (m <= MAX_M): a workgroup computes ROWS weight rows, LANES threads
// each; a thread decodes every LANES-th unit of its row once and multiplies it by all m rows of
// x, so each weight is read once for the whole batch. Lanes' sums are added through workgroup
// memory.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const LANES: u32 = 32u;
const ROWS: u32 = 8u;
const MAX_M: u32 = 8u;

var<workgroup> partial: array<f32, 2048>; // [ROWS][MAX_M][LANES]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let lane = lid.x % LANES;
    let r = lid.x / LANES;
    let row = group_index(wid, groups) * ROWS + r;
    var acc: array<f32, 8>;
    if (row < params.n) {
        for (var u = lane; u < params.units; u = u + LANES) {
            load_unit(row, u);
            for (var i = 0u; i < params.m; i = i + 1u) {
                let xb = i * params.k + u * 32u;
                var s = 0.0;
                for (var j = 0u; j < 32u; j = j + 1u) {
                    s = s + unit[j] * x[xb + j];
                }
                acc[i] = acc[i] + s;
            }
        }
    }
    for (var i = 0u; i < MAX_M; i = i + 1u) {
        partial[(r * MAX_M + i) * LANES + lane] = acc[i];
    }
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s = s >> 1u) {
        if (lane < s) {
            for (var i = 0u; i < MAX_M; i = i + 1u) {
                let at = (r * MAX_M + i) * LANES + lane;
                partial[at] = partial[at] + partial[at + s];
            }
        }
        workgroupBarrier();
    }
    if (lane < params.m && row < params.n) {
        out[lane * params.total + params.base + row] = partial[(r * MAX_M + lane) * LANES];
    }
}
