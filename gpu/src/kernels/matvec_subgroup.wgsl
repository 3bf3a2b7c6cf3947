// The matrix-vector product's entry point where the adapter has subgroups (`SUBGROUP`): each
// subgroup adds its threads' partial sums with subgroupAdd (no memory, no barrier), its first
// thread leaves the total in workgroup memory, and after one barrier ROWS threads add the
// subgroups' totals. Only for B_K_CONTIGUOUS, on adapters whose subgroups hold at least 4
// threads (so at most MAX_SUBGROUPS per workgroup). Appended to matvec.wgsl.

const MAX_SUBGROUPS: u32 = 32u; // WG / 4

var<workgroup> totals: array<f32, 128>; // [ROWS][MAX_SUBGROUPS]

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
    let n0 = group_index(wid, groups) * ROWS;
    if (n0 >= params.n) {
        return; // uniform: the whole workgroup
    }
    let sums = partial_sums(batch, n0, lid.x);
    for (var r = 0u; r < ROWS; r = r + 1u) {
        let total = subgroupAdd(sums[r]);
        if (lane == 0u) {
            totals[r * MAX_SUBGROUPS + subgroup] = total;
        }
    }
    workgroupBarrier();
    if (lid.x < ROWS && n0 + lid.x < params.n) {
        var sum = 0.0;
        for (var s = 0u; s < subgroups; s = s + 1u) {
            sum = sum + totals[lid.x * MAX_SUBGROUPS + s];
        }
        out[batch * params.n + n0 + lid.x] = sum;
    }
}
