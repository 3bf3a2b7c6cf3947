// The uniform of the indexing kernels (index.wgsl, index_select16.wgsl): contiguous tensors seen
// as [outer, a, inner] around the indexed axis. `Params` in index.rs mirrors it.

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
