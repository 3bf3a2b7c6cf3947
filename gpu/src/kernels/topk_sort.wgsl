// Top-k over long rows (a sampler's k likeliest of a vocabulary's logits), by sorting tiles.
// Each workgroup takes a tile of 1024 entries of one row, sorts it in workgroup memory (a bitonic
// network: 55 compare-exchange steps, each pair of entries handled by one thread), and keeps its
// first `kp` (k rounded up to a power of two). A pass turns a row of n entries into
// ceil(n / 1024) blocks of kp candidates; the launcher repeats it on the candidates until one
// tile is left, whose first k are the answer. The whole row never leaves the device, and no pass
// depends on the data, so a shape always runs the same dispatches.
//
// Entries are (key, id) pairs: the key maps an f32's bits to a u32 whose unsigned order is the
// IEEE total order (-NaN < -inf < .. < -0 < +0 < .. < +inf < +NaN), losslessly, so the final
// pass gives back the values bit for bit. Ranking: larger keys first, then lower ids: the CPU's
// order (`f32::total_cmp`, which the sampler ranks by too). Padding past the row's end has id
// NONE and ranks after everything.

struct Params {
    rows: u32,
    // Entries per row in this pass's input.
    n: u32,
    // The op's k, and the candidates a tile keeps (k rounded up to a power of two).
    k: u32,
    kp: u32,
    // 1: the input is the row itself (f32 bits); 0: (key, id) pairs of a previous pass.
    first: u32,
    // 1: this pass has one tile per row and writes the answer.
    last: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> pairs: array<u32>;
@group(0) @binding(3) var<storage, read_write> values: array<u32>;
@group(0) @binding(4) var<storage, read_write> indices: array<u32>;

const TILE: u32 = 1024u;
const NONE: u32 = 0xffffffffu;

var<workgroup> keys: array<u32, 1024>;
var<workgroup> ids: array<u32, 1024>;

// An f32's bits as a key in float order: negatives flipped whole, non-negatives above them.
fn key_of(bits: u32) -> u32 {
    return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

fn bits_of(key: u32) -> u32 {
    return select(~key, key & 0x7fffffffu, (key & 0x80000000u) != 0u);
}

// Whether entry a ranks before entry b.
fn before(a: u32, b: u32) -> bool {
    if (ids[b] == NONE) {
        return ids[a] != NONE;
    }
    if (ids[a] == NONE) {
        return false;
    }
    return keys[a] > keys[b] || (keys[a] == keys[b] && ids[a] < ids[b]);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = wid.x;
    let row = wid.y;
    for (var t = 0u; t < 4u; t = t + 1u) {
        let slot = lid.x + t * 256u;
        let e = tile * TILE + slot;
        var key = 0u;
        var id = NONE;
        if (e < params.n) {
            let at = row * params.n + e;
            if (params.first == 1u) {
                key = key_of(input[at]);
                id = e;
            } else {
                key = input[2u * at];
                id = input[2u * at + 1u];
            }
        }
        keys[slot] = key;
        ids[slot] = id;
    }
    // Bitonic sort, best first: at each size, runs of `size` alternate in direction, so each
    // pair of neighbouring runs is a bitonic sequence that the strides below merge.
    for (var size = 2u; size <= TILE; size = size * 2u) {
        for (var stride = size / 2u; stride > 0u; stride = stride / 2u) {
            workgroupBarrier();
            for (var t = 0u; t < 2u; t = t + 1u) {
                let p = lid.x + t * 256u;
                let i = 2u * stride * (p / stride) + p % stride;
                let j = i + stride;
                let best_first = (i & size) == 0u;
                if (select(before(i, j), before(j, i), best_first)) {
                    let k = keys[i];
                    keys[i] = keys[j];
                    keys[j] = k;
                    let d = ids[i];
                    ids[i] = ids[j];
                    ids[j] = d;
                }
            }
        }
    }
    workgroupBarrier();
    if (params.last == 1u) {
        for (var j = lid.x; j < params.k; j = j + 256u) {
            values[row * params.k + j] = bits_of(keys[j]);
            indices[row * params.k + j] = ids[j];
        }
    } else {
        let tiles = (params.n + TILE - 1u) / TILE;
        let base = (row * tiles + tile) * params.kp;
        for (var j = lid.x; j < params.kp; j = j + 256u) {
            pairs[2u * (base + j)] = keys[j];
            pairs[2u * (base + j) + 1u] = ids[j];
        }
    }
}
