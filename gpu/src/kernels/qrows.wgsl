// Rows of the quantized matrix picked by ids (an embedding table kept as blocks): one thread
// per (id, 32-element unit) decodes its unit into out [m, k]. An id past the table sets the error
// flag and leaves its row zero, as index_select does. A table over the binding limit is gathered
// a window of rows at a time: each dispatch writes the rows of the ids in its window.

@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> error_flag: array<atomic<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = thread_index(wid, lid, groups);
    if (t >= params.m * params.units) {
        return;
    }
    let i = t / params.units;
    let u = t % params.units;
    let row = ids[i];
    let at = i * params.k + u * 32u;
    if (row >= params.total) {
        atomicOr(&error_flag[0], 1u);
        for (var j = 0u; j < 32u; j = j + 1u) {
            out[at + j] = 0.0;
        }
        return;
    }
    if (row - params.base >= params.n) {
        return; // another window's row
    }
    load_unit(row - params.base, u);
    for (var j = 0u; j < 32u; j = j + 1u) {
        out[at + j] = unit[j];
    }
}
