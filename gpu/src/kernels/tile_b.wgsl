// The pieces the tiled products (matmul.wgsl, expert_gemm.wgsl) share: the weights' side of a
// K slice (KT = 16 by BN = 64, read four elements at a time along its contiguous dim) and the
// stores into the workgroup tiles. The kernel declares `a_tile`, `b_tile`, `params.k`,
// `params.n`, the readers `load_b` / `load_b4` and the flags B_N_CONTIGUOUS and B_VEC.

// Four elements of B from (k, c) along its contiguous dim (n when B_N_CONTIGUOUS, else k), with
// `row` and `col` the strides of k and n from `base`. Elements past N or K read as 0.
fn fetch_b_strided(base: u32, k: u32, c: u32, row: u32, col: u32) -> vec4<f32> {
    let i = base + k * row + c * col;
    var v = vec4<f32>(0.0);
    if (B_N_CONTIGUOUS) {
        if (k >= params.k) {
            return v;
        }
        if (B_VEC && c + 3u < params.n) {
            return load_b4(i);
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (c + j < params.n) {
                v[j] = load_b(i + j * col);
            }
        }
    } else {
        if (c >= params.n) {
            return v;
        }
        if (B_VEC && k + 3u < params.k) {
            return load_b4(i);
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (k + j < params.k) {
                v[j] = load_b(i + j * row);
            }
        }
    }
    return v;
}

fn set_a(at: u32, v: f32) {
    a_tile[at >> 2u][at & 3u] = v;
}

fn set_b(at: u32, v: f32) {
    b_tile[at >> 2u][at & 3u] = v;
}

// (k, column) of the first element of B's quad q of a slice (256 quads), numbered so that
// neighbouring threads read neighbouring addresses.
fn b_quad(q: u32) -> vec2<u32> {
    if (B_N_CONTIGUOUS) {
        return vec2<u32>(q / 16u, (q % 16u) * 4u);
    }
    return vec2<u32>((q % 4u) * 4u, q / 4u);
}
