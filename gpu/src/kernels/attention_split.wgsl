// Flash-decoding, pass 1 of 2 (split-K attention: Dao et al., "Flash-Decoding for long-context
// inference", 2023). At decode a layer has only B * Hq query rows (Tq = 1), too few workgroups to
// fill a GPU if each walks the whole cache alone. Here the keys are cut into `splits` ranges of
// `split_len` and each workgroup takes one (batch, KV head, rows chunk, split): it serves the
// query rows of that KV head's group (GQA: Hq / Hkv heads times Tq rows, up to 8 at once), so
// each key and value row is read once per group rather than once per query head. It keeps,
// per row, the online softmax's running max m, sum l and unnormalised weighted value sum
// (Milakov & Gimelshein 2018) over its range, and writes them out; attention_combine.wgsl merges
// the splits. Masks, soft-capping and strided k/v views are as in attention.wgsl; the sinks are
// added by the combine pass. A paged cache's pools are read through its block table, as in
// attention.wgsl.
//
// Keys come in blocks of 64 (one per thread for the scores). A block's keys are staged through
// workgroup memory 8 dims at a time, loaded so that 8 adjacent threads read 32 contiguous bytes
// of one key row (coalesced), then each thread dots its key with every row's q. Values are read
// with adjacent threads on adjacent dims (coalesced), once per key for all the rows.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
// k (binding 2) and v (binding 3), and their loads `load_k` / `load_v`, are generated: f32, or
// the halves of a KV cache kept in f16 or bf16, widened as they are loaded.
// Per (batch, KV head, split, row): (m, l) pairs, then the Dv weighted sums from acc_base.
@group(0) @binding(4) var<storage, read_write> parts: array<f32>;

const THREADS: u32 = 64u;
const MAX_ROWS: u32 = 8u;
const MAX_ACC: u32 = 32u; // rows_wg * dv_t <= 32 registers of weighted sums per thread
const TILE_DIMS: u32 = 8u;
const TILE_STRIDE: u32 = 9u; // padded: thread j reads tile[j * 9 + c], no bank conflicts

var<workgroup> tile: array<f32, 576>;      // 64 keys x 8 dims (padded to 9)
var<workgroup> probs: array<f32, 512>;     // [row][key] of the block
var<workgroup> reduction: array<f32, 512>; // [row][key]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let lid = lid3.x;
    let wg = group_index(wid, groups);
    if (wg >= params.b * params.hkv * params.chunks * params.splits) {
        return; // uniform: the whole workgroup
    }
    let split = wg % params.splits;
    let chunk = (wg / params.splits) % params.chunks;
    let kvh = (wg / (params.splits * params.chunks)) % params.hkv;
    let bi = wg / (params.splits * params.chunks * params.hkv);
    let r0 = chunk * params.rows_wg;
    let nrows = min(params.rows_wg, params.rows_total - r0);
    let neg_inf = bitcast<f32>(0xff800000u);

    // Each row's q offset and visible keys; the workgroup walks their union within its split.
    var q_base: array<u32, 8>;
    var row_lo: array<u32, 8>;
    var row_hi: array<u32, 8>;
    var lo = 0xffffffffu;
    var hi = 0u;
    var m: array<f32, 8>;
    var l: array<f32, 8>;
    for (var r = 0u; r < nrows; r = r + 1u) {
        let rg = r0 + r;
        let i = rg % params.tq;
        let h = kvh * params.group + rg / params.tq;
        q_base[r] = ((bi * params.hq + h) * params.tq + i) * params.d;
        let range = visible_range(i);
        row_lo[r] = range.x;
        row_hi[r] = range.y;
        if (range.y > range.x) {
            lo = min(lo, range.x);
            hi = max(hi, range.y);
        }
        m[r] = neg_inf;
        l[r] = 0.0;
    }
    let s_lo = max(lo, split * params.split_len);
    let s_hi = min(hi, (split + 1u) * params.split_len);
    var acc: array<f32, 32>;
    for (var t = 0u; t < MAX_ACC; t = t + 1u) {
        acc[t] = 0.0;
    }

    for (var j0 = s_lo; j0 < s_hi; j0 = j0 + THREADS) {
        let j = j0 + lid;
        var dot: array<f32, 8>;
        for (var r = 0u; r < MAX_ROWS; r = r + 1u) {
            dot[r] = 0.0;
        }
        for (var c0 = 0u; c0 < params.d; c0 = c0 + TILE_DIMS) {
            for (var t = 0u; t < TILE_DIMS; t = t + 1u) {
                let e = lid + t * THREADS;
                let key = e / TILE_DIMS;
                let col = e % TILE_DIMS;
                var x = 0.0;
                if (j0 + key < s_hi && c0 + col < params.d) {
                    x = load_k(k_row_start(bi, kvh, j0 + key) + c0 + col);
                }
                tile[key * TILE_STRIDE + col] = x;
            }
            workgroupBarrier();
            let cols = min(TILE_DIMS, params.d - c0);
            for (var c = 0u; c < cols; c = c + 1u) {
                let kc = tile[lid * TILE_STRIDE + c];
                for (var r = 0u; r < nrows; r = r + 1u) {
                    dot[r] = dot[r] + q[q_base[r] + c0 + c] * kc;
                }
            }
            workgroupBarrier();
        }
        var s: array<f32, 8>;
        for (var r = 0u; r < nrows; r = r + 1u) {
            var x = neg_inf;
            if (j >= row_lo[r] && j < row_hi[r] && j < s_hi) {
                x = dot[r] * params.scale;
                if (params.softcap > 0.0) {
                    x = params.softcap * safe_tanh(x / params.softcap);
                }
            }
            s[r] = x;
            reduction[r * THREADS + lid] = x;
        }
        workgroupBarrier();
        for (var st = 32u; st > 0u; st = st >> 1u) {
            if (lid < st) {
                for (var r = 0u; r < nrows; r = r + 1u) {
                    let a = r * THREADS + lid;
                    reduction[a] = max(reduction[a], reduction[a + st]);
                }
            }
            workgroupBarrier();
        }
        var new_m: array<f32, 8>;
        for (var r = 0u; r < nrows; r = r + 1u) {
            new_m[r] = max(m[r], reduction[r * THREADS]);
        }
        // Every thread has read the maxima before the buffer holds the sums.
        workgroupBarrier();
        for (var r = 0u; r < nrows; r = r + 1u) {
            // A masked key (-inf) weighs 0, also while the row has seen no key (max -inf).
            let p = select(0.0, exp(s[r] - new_m[r]), s[r] > neg_inf);
            probs[r * THREADS + lid] = p;
            reduction[r * THREADS + lid] = p;
        }
        workgroupBarrier();
        for (var st = 32u; st > 0u; st = st >> 1u) {
            if (lid < st) {
                for (var r = 0u; r < nrows; r = r + 1u) {
                    let a = r * THREADS + lid;
                    reduction[a] = reduction[a] + reduction[a + st];
                }
            }
            workgroupBarrier();
        }
        var correction: array<f32, 8>;
        for (var r = 0u; r < nrows; r = r + 1u) {
            // exp(m - new_m), 1 when the max did not move (also -inf to -inf, which is NaN).
            correction[r] = select(exp(m[r] - new_m[r]), 1.0, m[r] == new_m[r]);
            l[r] = l[r] * correction[r] + reduction[r * THREADS];
            m[r] = new_m[r];
        }
        let count = min(THREADS, s_hi - j0);
        for (var t = 0u; t < params.dv_t; t = t + 1u) {
            let dim = lid + t * THREADS;
            if (dim < params.dv) {
                for (var r = 0u; r < nrows; r = r + 1u) {
                    acc[r * params.dv_t + t] = acc[r * params.dv_t + t] * correction[r];
                }
                for (var jj = 0u; jj < count; jj = jj + 1u) {
                    let x = load_v(v_row_start(bi, kvh, j0 + jj) + dim);
                    for (var r = 0u; r < nrows; r = r + 1u) {
                        acc[r * params.dv_t + t] = acc[r * params.dv_t + t] + probs[r * THREADS + jj] * x;
                    }
                }
            }
        }
        // probs and reduction are rewritten by the next block.
        workgroupBarrier();
    }

    // Every split writes its parts, an empty one too (m = -inf, l = 0): the combine reads all.
    for (var r = 0u; r < nrows; r = r + 1u) {
        let p = ((bi * params.hkv + kvh) * params.splits + split) * params.rows_total + r0 + r;
        if (lid == 0u) {
            parts[2u * p] = m[r];
            parts[2u * p + 1u] = l[r];
        }
        for (var t = 0u; t < params.dv_t; t = t + 1u) {
            let dim = lid + t * THREADS;
            if (dim < params.dv) {
                parts[params.acc_base + p * params.dv + dim] = acc[r * params.dv_t + t];
            }
        }
    }
}
