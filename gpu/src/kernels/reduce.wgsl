// Reductions over the middle axis of a contiguous [outer, k, inner] tensor. With inner == 1 one
// workgroup reduces each row (threads stride over it, then a tree in workgroup memory); with
// inner > 1 each thread owns one output and walks its column. The generated piece gives the
// element type T, the output type R, `identity()`, `better(a, ai, b, bi)` (for max/min: whether
// b at index bi should replace a at ai: NaN wins, then the larger/smaller, then the lower index),
// and SUM / ARG flags. `Params`: in axis_params.wgsl, prepended.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<T>;
@group(0) @binding(2) var<storage, read_write> dst: array<R>;

var<workgroup> values: array<T, 256>;
var<workgroup> indices: array<u32, 256>;

const EMPTY: u32 = 0xffffffffu;

fn fold(a: T, ai: u32, b: T, bi: u32) -> vec2<u32> {
    // Returns (winner's bits, winner's index); sums add and keep no index.
    if (SUM) {
        return vec2<u32>(bitcast<u32>(a + b), 0u);
    }
    if (ai == EMPTY || (bi != EMPTY && better(a, ai, b, bi))) {
        return vec2<u32>(bitcast<u32>(b), bi);
    }
    return vec2<u32>(bitcast<u32>(a), ai);
}

fn finish(v: T, i: u32) -> R {
    if (ARG) {
        return R(i);
    }
    return R(v);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    if (params.inner == 1u) {
        let row = group_index(wid, groups);
        if (row >= params.outer) {
            return; // the whole workgroup shares the row, so this is uniform
        }
        var v = identity();
        var at = EMPTY;
        for (var j = lid.x; j < params.k; j = j + 256u) {
            let r = fold(v, at, src[row * params.k + j], j);
            v = bitcast<T>(r.x);
            at = r.y;
        }
        values[lid.x] = v;
        indices[lid.x] = at;
        workgroupBarrier();
        for (var s = 128u; s > 0u; s = s >> 1u) {
            if (lid.x < s) {
                let r = fold(values[lid.x], indices[lid.x], values[lid.x + s], indices[lid.x + s]);
                values[lid.x] = bitcast<T>(r.x);
                indices[lid.x] = r.y;
            }
            workgroupBarrier();
        }
        if (lid.x == 0u) {
            dst[row] = finish(values[0], indices[0]);
        }
        return;
    }
    let o = thread_index(wid, lid, groups);
    if (o >= params.outer * params.inner) {
        return;
    }
    let base = (o / params.inner) * params.k * params.inner + o % params.inner;
    var v = identity();
    var at = EMPTY;
    for (var j = 0u; j < params.k; j = j + 1u) {
        let r = fold(v, at, src[base + j * params.inner], j);
        v = bitcast<T>(r.x);
        at = r.y;
    }
    dst[o] = finish(v, at);
}
