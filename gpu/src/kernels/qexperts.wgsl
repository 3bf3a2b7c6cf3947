// The mixture-of-experts product on quantized blocks: out[r, :] = x[r, :] times the transpose of
// expert ids[r]'s [n, k] matrix, the experts' matrices stacked as one [E n, k] matrix of blocks
// (so expert e's row j is row e n + j). A workgroup computes ROWS outputs of one activation row,
// LANES threads each walking every LANES-th unit; a decoded token reads only its experts'
// blocks. An expert id past the stack sets the error flag and gives zeros. A stack over the
// binding limit runs a window of whole experts at a time: each dispatch writes the rows of its
// experts.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> ids: array<u32>;
@group(0) @binding(6) var<storage, read_write> error_flag: array<atomic<u32>>;

const LANES: u32 = 32u;
const ROWS: u32 = 8u;

var<workgroup> partial: array<f32, 256>; // [ROWS][LANES]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let lane = lid.x % LANES;
    let j = lid.x / LANES;
    let chunks = (params.n + ROWS - 1u) / ROWS;
    let g = group_index(wid, groups);
    let r = g / chunks;
    let n = (g % chunks) * ROWS + j;
    if (r >= params.m) {
        return; // uniform: the whole workgroup
    }
    let e = ids[r];
    let valid = e < params.total;
    let here = e - params.base < params.experts; // bound in this dispatch
    if (!valid && lid.x == 0u) {
        atomicOr(&error_flag[0], 1u);
    }
    var acc = 0.0;
    if (here && n < params.n) {
        let xb = r * params.k;
        for (var u = lane; u < params.units; u = u + LANES) {
            load_unit((e - params.base) * params.n + n, u);
            var s = 0.0;
            for (var t = 0u; t < 32u; t = t + 1u) {
                s = s + unit[t] * x[xb + u * 32u + t];
            }
            acc = acc + s;
        }
    }
    partial[j * LANES + lane] = acc;
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s = s >> 1u) {
        if (lane < s) {
            partial[j * LANES + lane] = partial[j * LANES + lane] + partial[j * LANES + lane + s];
        }
        workgroupBarrier();
    }
    if (lane == 0u && n < params.n && (here || !valid)) {
        out[r * params.n + n] = partial[j * LANES];
    }
}
