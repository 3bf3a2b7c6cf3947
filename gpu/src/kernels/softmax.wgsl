// Softmax (or log-softmax) over each row of a contiguous [rows, d] tensor, one workgroup per row:
// the row max (tree reduction), the sum of exp(x - max), then the outputs. Subtracting the max
// keeps every exponent <= 0.

struct Params {
    rows: u32,
    d: u32,
    log: u32,
    pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = group_index(wid, groups);
    if (row >= params.rows) {
        return; // uniform across the workgroup
    }
    let base = row * params.d;
    var m = bitcast<f32>(0xff800000u);
    for (var j = lid.x; j < params.d; j = j + 256u) {
        m = max(m, src[base + j]);
    }
    partial[lid.x] = m;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid.x < s) {
            partial[lid.x] = max(partial[lid.x], partial[lid.x + s]);
        }
        workgroupBarrier();
    }
    // A row of -inf has no finite max: shift by 0 and let 0/0 give NaN, as the CPU does.
    var shift = partial[0];
    if (shift == bitcast<f32>(0xff800000u) || shift == bitcast<f32>(0x7f800000u)) {
        shift = 0.0;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var j = lid.x; j < params.d; j = j + 256u) {
        total = total + exp(src[base + j] - shift);
    }
    partial[lid.x] = total;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid.x < s) {
            partial[lid.x] = partial[lid.x] + partial[lid.x + s];
        }
        workgroupBarrier();
    }
    let sum = partial[0];
    for (var j = lid.x; j < params.d; j = j + 256u) {
        let x = src[base + j] - shift;
        if (params.log == 1u) {
            dst[base + j] = x - log(sum);
        } else {
            dst[base + j] = exp(x) / sum;
        }
    }
}
