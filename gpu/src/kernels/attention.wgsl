// Fused attention with an online softmax (Milakov & Gimelshein 2018; the idea of
// FlashAttention): one 64-thread workgroup per query row walks the keys its mask leaves
// visible in blocks of 64, keeping a running max m, a running sum l and the weighted sum of
// values, rescaling them whenever the max grows. No [Tq, Tk] score matrix is ever stored.
//
// q is contiguous [B, Hq, Tq, D]; k and v are views (a KV cache's live rows) given by offset and
// strides with a contiguous last dim, or the pools of a paged cache read through a block table
// (`k_row_start`, `v_row_start`). Query head h reads kv head h / group (GQA, MQA).
// Optional attention sinks [Hq] add one logit per head to each row's denominator.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
// k (binding 2) and v (binding 3), and their loads `load_k` / `load_v`, are generated: f32, or
// the halves of a KV cache kept in f16 or bf16, widened as they are loaded.
@group(0) @binding(4) var<storage, read> sinks: array<f32>; // [Hq] when has_sinks
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const THREADS: u32 = 64u;
const MAX_DV_PER_THREAD: u32 = 16u; // Dv <= 1024

var<workgroup> q_row: array<f32, 1024>;
var<workgroup> probs: array<f32, 64>;
var<workgroup> reduction: array<f32, 64>;

fn reduce_max(lid: u32) -> f32 {
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            reduction[lid] = max(reduction[lid], reduction[lid + s]);
        }
        workgroupBarrier();
    }
    let result = reduction[0];
    // Every thread reads the result before any thread writes the buffer again.
    workgroupBarrier();
    return result;
}

fn reduce_sum(lid: u32) -> f32 {
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            reduction[lid] = reduction[lid] + reduction[lid + s];
        }
        workgroupBarrier();
    }
    let result = reduction[0];
    workgroupBarrier();
    return result;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let lid = lid3.x;
    let row = group_index(wid, groups);
    if (row >= params.b * params.hq * params.tq) {
        return; // uniform: one query row per workgroup
    }
    let i = row % params.tq;
    let h = (row / params.tq) % params.hq;
    let bi = row / (params.tq * params.hq);
    let kvh = h / params.group;
    for (var c = lid; c < params.d; c = c + THREADS) {
        q_row[c] = q[row * params.d + c];
    }
    workgroupBarrier();
    let range = visible_range(i);
    let neg_inf = bitcast<f32>(0xff800000u);
    // A sink (gpt-oss) starts the running softmax as a logit whose value is zero: it joins the
    // max and the sum but adds nothing to the weighted values.
    var m = neg_inf;
    var l = 0.0;
    if (params.has_sinks == 1u) {
        m = sinks[h];
        l = 1.0;
    }
    var acc: array<f32, 16>;
    for (var t = 0u; t < MAX_DV_PER_THREAD; t = t + 1u) {
        acc[t] = 0.0;
    }
    for (var j0 = range.x; j0 < range.y; j0 = j0 + THREADS) {
        let j = j0 + lid;
        var s = neg_inf;
        if (j < range.y) {
            var dot = 0.0;
            let row_base = k_row_start(bi, kvh, j);
            for (var c = 0u; c < params.d; c = c + 1u) {
                dot = dot + q_row[c] * load_k(row_base + c);
            }
            s = dot * params.scale;
            if (params.softcap > 0.0) {
                s = params.softcap * safe_tanh(s / params.softcap);
            }
        }
        reduction[lid] = s;
        workgroupBarrier();
        let block_max = reduce_max(lid);
        let new_m = max(m, block_max);
        var p = 0.0;
        if (j < range.y) {
            p = exp(s - new_m);
        }
        probs[lid] = p;
        reduction[lid] = p;
        workgroupBarrier();
        let block_sum = reduce_sum(lid);
        let correction = exp(m - new_m);
        l = l * correction + block_sum;
        m = new_m;
        let count = min(THREADS, range.y - j0);
        for (var t = 0u; t < MAX_DV_PER_THREAD; t = t + 1u) {
            let dim = lid + t * THREADS;
            if (dim < params.dv) {
                var a = acc[t] * correction;
                for (var jj = 0u; jj < count; jj = jj + 1u) {
                    a = a + probs[jj] * load_v(v_row_start(bi, kvh, j0 + jj) + dim);
                }
                acc[t] = a;
            }
        }
        workgroupBarrier();
    }
    for (var t = 0u; t < MAX_DV_PER_THREAD; t = t + 1u) {
        let dim = lid + t * THREADS;
        if (dim < params.dv) {
            out[row * params.dv + dim] = select(0.0, acc[t] / l, l > 0.0);
        }
    }
}
