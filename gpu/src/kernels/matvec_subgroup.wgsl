// The matrix-vector product's entry point where the adapter has subgroups (`SUBGROUP`): each
// subgroup adds its threads' partial sums with subgroupAdd (no memory, no barrier), its first
// thread leaves the total in workgroup memory, and after one barrier OUTS threads add the
// subgroups' totals of their output's MATS sums and write `combine` of them. Only for
// B_K_CONTIGUOUS, on adapters whose subgroups hold at least 4 threads (so at most MAX_SUBGROUPS
// per workgroup). Appended to matvec.wgsl, matvec_each.wgsl or expert_matvec.wgsl, after
// matvec_rows.wgsl.

const MAX_SUBGROUPS: u32 = 32u; // WG / 4

var<workgroup> totals: array<f32, 128>; // [SUMS][MAX_SUBGROUPS]

@compute @workgroup_size(128)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) subgroups: u32,
) {
    let batch = wid.z;
    let n0 = group_index(wid, groups) * OUTS;
    if (n0 >= params.n) {
        return; // uniform: the whole workgroup
    }
    let sums = partial_sums(batch, n0, lid.x);
    for (var s = 0u; s < SUMS; s = s + 1u) {
        let total = subgroupAdd(sums[s]);
        if (lane == 0u) {
            totals[s * MAX_SUBGROUPS + subgroup] = total;
        }
    }
    workgroupBarrier();
    if (lid.x < OUTS && n0 + lid.x < params.n) {
        var dots: array<f32, MATS>;
        for (var m = 0u; m < MATS; m = m + 1u) {
            let s = m * OUTS + lid.x;
            for (var g = 0u; g < subgroups; g = g + 1u) {
                dots[m] = dots[m] + totals[s * MAX_SUBGROUPS + g];
            }
        }
        out[batch * params.n + n0 + lid.x] = combine(dots);
    }
}
