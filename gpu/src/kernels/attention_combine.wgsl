// Flash-decoding, pass 2 of 2: merges the splits attention_split.wgsl wrote for one query row.
// Split s holds (m_s, l_s, acc_s) relative to its own max; with M the largest m_s (and the sink's
// logit, gpt-oss, which joins the max and the denominator but adds no value),
//   out = sum_s exp(m_s - M) acc_s / (sum_s exp(m_s - M) l_s + exp(sink - M)).
// One 64-thread workgroup per output row, each thread a few of its Dv dims; no barriers.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> parts: array<f32>;
@group(0) @binding(2) var<storage, read> sinks: array<f32>; // [Hq] when has_sinks
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const THREADS: u32 = 64u;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let lid = lid3.x;
    let row = group_index(wid, groups);
    if (row >= params.b * params.hq * params.tq) {
        return;
    }
    let i = row % params.tq;
    let h = (row / params.tq) % params.hq;
    let bi = row / (params.tq * params.hq);
    let kvh = h / params.group;
    let first = (bi * params.hkv + kvh) * params.splits * params.rows_total + (h % params.group) * params.tq + i;
    let neg_inf = bitcast<f32>(0xff800000u);
    var big_m = neg_inf;
    if (params.has_sinks == 1u) {
        big_m = sinks[h];
    }
    for (var s = 0u; s < params.splits; s = s + 1u) {
        big_m = max(big_m, parts[2u * (first + s * params.rows_total)]);
    }
    var l = 0.0;
    if (params.has_sinks == 1u) {
        l = exp(sinks[h] - big_m);
    }
    for (var s = 0u; s < params.splits; s = s + 1u) {
        let p = first + s * params.rows_total;
        let m_s = parts[2u * p];
        l = l + select(0.0, exp(m_s - big_m), m_s > neg_inf) * parts[2u * p + 1u];
    }
    for (var dim = lid; dim < params.dv; dim = dim + THREADS) {
        var a = 0.0;
        for (var s = 0u; s < params.splits; s = s + 1u) {
            let p = first + s * params.rows_total;
            let m_s = parts[2u * p];
            if (m_s > neg_inf) {
                a = a + exp(m_s - big_m) * parts[params.acc_base + p * params.dv + dim];
            }
        }
        out[row * params.dv + dim] = select(0.0, a / l, l > 0.0);
    }
}
