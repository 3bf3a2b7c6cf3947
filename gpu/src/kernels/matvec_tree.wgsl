// The matrix-vector product's entry point on any adapter: the ROWS partial sums of the WG
// threads are added by a tree through workgroup memory (log2(WG) barriers). Appended to
// matvec.wgsl.

var<workgroup> partial: array<f32, 512>; // [ROWS][WG]

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let batch = wid.z;
    if (!B_K_CONTIGUOUS) {
        walk_column(batch, group_index(wid, groups) * WG + lid.x);
        return;
    }
    let n0 = group_index(wid, groups) * ROWS;
    if (n0 >= params.n) {
        return; // uniform: the whole workgroup
    }
    let sums = partial_sums(batch, n0, lid.x);
    for (var r = 0u; r < ROWS; r = r + 1u) {
        partial[r * WG + lid.x] = sums[r];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid.x < s) {
            for (var r = 0u; r < ROWS; r = r + 1u) {
                partial[r * WG + lid.x] = partial[r * WG + lid.x] + partial[r * WG + lid.x + s];
            }
        }
        workgroupBarrier();
    }
    if (lid.x < ROWS && n0 + lid.x < params.n) {
        out[batch * params.n + n0 + lid.x] = partial[lid.x * WG];
    }
}
