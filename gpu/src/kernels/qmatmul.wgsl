// Prefill (m > MAX_M of qmatvec.wgsl): a workgroup computes a TM x TN tile of out, 2 x 4
// outputs per thread. For each unit of K, TM x 32 values of x and TN decoded units of weights
// are staged in workgroup memory (rows padded to 33 floats against bank conflicts), so each
// weight unit is decoded once per workgroup and serves TM rows of x.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const TM: u32 = 32u;
const TN: u32 = 64u;
const PAD: u32 = 33u;

var<workgroup> xs: array<f32, 1056>; // [TM][PAD]
var<workgroup> ws: array<f32, 2112>; // [TN][PAD]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tx = lid.x % 16u;
    let ty = lid.x / 16u;
    let n0 = wid.x * TN;
    let m0 = wid.y * TM;
    var acc: array<f32, 8>; // [2][4]: rows ty + 16 r, columns tx + 16 c
    for (var u = 0u; u < params.units; u = u + 1u) {
        for (var e = lid.x; e < TM * 32u; e = e + 256u) {
            let mi = m0 + e / 32u;
            var v = 0.0;
            if (mi < params.m) {
                v = x[mi * params.k + u * 32u + e % 32u];
            }
            xs[(e / 32u) * PAD + e % 32u] = v;
        }
        if (lid.x < TN) {
            let row = n0 + lid.x;
            if (row < params.n) {
                load_unit(row, u);
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
        let mi = m0 + ty + 16u * r;
        for (var c = 0u; c < 4u; c = c + 1u) {
            let ni = n0 + tx + 16u * c;
            if (mi < params.m && ni < params.n) {
                out[mi * params.total + params.base + ni] = acc[r * 4u + c];
            }
        }
    }
}
