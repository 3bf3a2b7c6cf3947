// The uniform every attention kernel reads, and the mask they share (`visible_range`): the
// shapes, the k and v views (offset and strides of a KV cache's live rows), the mask and soft-capping, whether sinks come, and then how the
// decode path (attention_split.wgsl, attention_combine.wgsl) cuts query rows and keys, which
// the prefill kernel (attention.wgsl) leaves unread. `Params` in attention.rs mirrors it.

struct Params {
    b: u32,
    hq: u32,
    tq: u32,
    d: u32,
    hkv: u32,
    tk: u32,
    dv: u32,
    group: u32,
    k_offset: u32,
    k_batch: u32,
    k_head: u32,
    k_row: u32,
    v_offset: u32,
    v_batch: u32,
    v_head: u32,
    v_row: u32,
    scale: f32,
    softcap: f32, // 0: none
    causal: u32,
    q_start: u32,
    k_start: u32,
    window: u32, // 0: none
    chunk: u32,  // 0: none
    has_sinks: u32,
    rows_total: u32, // group * tq: the query rows one KV head serves
    rows_wg: u32,    // of which one workgroup takes at most this many (<= MAX_ROWS)
    chunks: u32,     // ceil(rows_total / rows_wg)
    splits: u32,
    split_len: u32, // keys per split, a multiple of 64
    acc_base: u32,  // where the weighted sums start in `parts`, after every (m, l) pair
    dv_t: u32,      // ceil(dv / 64): value dims per thread
    page: u32,      // a paged cache's positions per block (0: k and v are plain views)
}

fn saturating_sub(a: u32, b: u32) -> u32 {
    return select(0u, a - b, a > b);
}

// The visible keys of query row i, as in tensor::AttentionMask::visible_range.
fn visible_range(i: u32) -> vec2<u32> {
    let qp = params.q_start + i;
    var lo = 0u;
    var hi = 0xffffffffu;
    if (params.causal == 1u) {
        hi = min(hi, qp + 1u);
    }
    if (params.window > 0u) {
        lo = max(lo, saturating_sub(qp + 1u, params.window));
    }
    if (params.chunk > 0u) {
        lo = max(lo, qp / params.chunk * params.chunk);
        hi = min(hi, (qp / params.chunk + 1u) * params.chunk);
    }
    let l = min(saturating_sub(lo, params.k_start), params.tk);
    let h = min(saturating_sub(hi, params.k_start), params.tk);
    return vec2<u32>(l, max(h, l));
}
