// The indexing ops on contiguous tensors seen as [outer, a, inner] around the indexed axis, with
// u32 ids. An id out of range reads as 0 (or is skipped) and sets the error flag, which the host
// reports when it next reads results back. The generated piece picks the entry: SELECT, ADD,
// GATHER or SCATTER.

struct Params {
    outer: u32,
    a: u32,
    inner: u32,
    n_ids: u32,
    // gather / scatter_add: the index tensor's layout and the source's (or destination's).
    index: Layout,
    data: Layout,
    axis: u32,
    // index_select: the rows base .. base + rows of the source are bound, row `base` starting
    // at element `offset` and each `stride` elements after the previous one. Ids of other rows
    // are left to the dispatches of other windows (a table over the binding limit is gathered
    // one window at a time); ids past `a` are out of range.
    base: u32,
    rows: u32,
    offset: u32,
    stride: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read_write> error_flag: array<atomic<u32>>;

// index_select: dst[o, i, j] = src[o, ids[i], j].
fn select_one(t: u32) {
    let total = params.outer * params.n_ids * params.inner;
    if (t >= total) {
        return;
    }
    let j = t % params.inner;
    let i = (t / params.inner) % params.n_ids;
    let o = t / (params.inner * params.n_ids);
    let id = ids[i];
    if (id >= params.a) {
        atomicOr(&error_flag[0], 1u);
        dst[t] = 0.0;
        return;
    }
    if (id < params.base || id - params.base >= params.rows) {
        return;
    }
    dst[t] = src[params.offset + (o * params.rows + id - params.base) * params.stride + j];
}

// index_add: dst (already a copy of the destination) gets src[o, i, j] added at [o, ids[i], j].
// One thread per (o, j) column walks the ids in order, so repeated ids accumulate without races.
fn add_column(t: u32) {
    if (t >= params.outer * params.inner) {
        return;
    }
    let j = t % params.inner;
    let o = t / params.inner;
    for (var i = 0u; i < params.n_ids; i = i + 1u) {
        let id = ids[i];
        if (id >= params.a) {
            atomicOr(&error_flag[0], 1u);
            continue;
        }
        let at = (o * params.a + id) * params.inner + j;
        dst[at] = dst[at] + src[(o * params.n_ids + i) * params.inner + j];
    }
}

// gather: dst at index position p = src at p's coordinates with the axis coordinate replaced by
// index[p].
fn gather_one(p: u32) {
    var total = 1u;
    for (var d = 0u; d < params.index.rank; d = d + 1u) {
        total = total * layout_dim(params.index, d);
    }
    if (p >= total) {
        return;
    }
    var rest = p;
    var at = params.data.offset;
    var d = params.index.rank;
    loop {
        if (d == 0u) {
            break;
        }
        d = d - 1u;
        let n = layout_dim(params.index, d);
        var c = rest % n;
        rest = rest / n;
        if (d == params.axis) {
            c = ids[p];
            if (c >= layout_dim(params.data, d)) {
                atomicOr(&error_flag[0], 1u);
                dst[p] = 0.0;
                return;
            }
        }
        at = at + c * layout_stride(params.data, d);
    }
    dst[p] = src[at];
}

// scatter_add: dst (a copy of the destination) element q gets the sum of src[p] over index
// positions p that point at it. One thread per destination element scans the index positions
// that share its coordinates off the axis, in order (deterministic, no atomics on floats).
fn scatter_one(q: u32) {
    var total = 1u;
    for (var d = 0u; d < params.data.rank; d = d + 1u) {
        total = total * layout_dim(params.data, d);
    }
    if (q >= total) {
        return;
    }
    // Coordinates of q in the destination; q's position in the index tensor with axis coord 0.
    var rest = q;
    var base = 0u;
    var stride = 1u;
    var target_coord = 0u;
    var inside = true;
    var d = params.data.rank;
    loop {
        if (d == 0u) {
            break;
        }
        d = d - 1u;
        let n = layout_dim(params.data, d);
        let c = rest % n;
        rest = rest / n;
        if (d == params.axis) {
            target_coord = c;
        } else {
            if (c >= layout_dim(params.index, d)) {
                inside = false;
            }
            base = base + c * stride;
        }
        stride = stride * layout_dim(params.index, d);
    }
    if (!inside) {
        return;
    }
    var axis_stride = 1u;
    for (var e = params.axis + 1u; e < params.index.rank; e = e + 1u) {
        axis_stride = axis_stride * layout_dim(params.index, e);
    }
    var acc = dst[q];
    for (var jj = 0u; jj < layout_dim(params.index, params.axis); jj = jj + 1u) {
        let p = base + jj * axis_stride;
        let id = ids[p];
        if (id >= layout_dim(params.data, params.axis)) {
            atomicOr(&error_flag[0], 1u);
            continue;
        }
        if (id == target_coord) {
            acc = acc + src[p];
        }
    }
    dst[q] = acc;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = thread_index(wid, lid, groups);
    if (MODE == 0u) {
        select_one(t);
    } else if (MODE == 1u) {
        add_column(t);
    } else if (MODE == 2u) {
        gather_one(t);
    } else {
        scatter_one(t);
    }
}
