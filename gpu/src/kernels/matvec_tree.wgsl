// The matrix-vector product's entry point on any adapter: the SUMS partial sums of the WG
// threads are added by a tree through workgroup memory (log2(WG) barriers), then OUTS threads
// write `combine` of their output's MATS sums. Appended to matvec.wgsl, matvec_each.wgsl or
// expert_matvec.wgsl, after matvec_rows.wgsl.

var<workgroup> partial: array<f32, 512>; // [SUMS][WG]

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let batch = wid.z;
    if (!B_K_CONTIGUOUS) {
        walk_column(batch, group_index(wid, groups) * WG + lid.x);
        return;
    }
    let n0 = group_index(wid, groups) * OUTS;
    if (n0 >= params.n) {
        return; // uniform: the whole workgroup
    }
    let sums = partial_sums(batch, n0, lid.x);
    for (var s = 0u; s < SUMS; s = s + 1u) {
        partial[s * WG + lid.x] = sums[s];
    }
    workgroupBarrier();
    for (var h = WG / 2u; h > 0u; h = h >> 1u) {
        if (lid.x < h) {
            for (var s = 0u; s < SUMS; s = s + 1u) {
                partial[s * WG + lid.x] = partial[s * WG + lid.x] + partial[s * WG + lid.x + h];
            }
        }
        workgroupBarrier();
    }
    if (lid.x < OUTS && n0 + lid.x < params.n) {
        var dots: array<f32, MATS>;
        for (var m = 0u; m < MATS; m = m + 1u) {
            dots[m] = partial[(m * OUTS + lid.x) * WG];
        }
        out[batch * params.n + n0 + lid.x] = combine(dots);
    }
}
