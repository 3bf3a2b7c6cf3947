// matmul_glu's two matrices for matvec.wgsl: the gate weights bound as b, the up weights as c
// (same strides, c's own offset), so each workgroup reads OUTS = 2 gate rows and the 2 up rows of
// the same outputs, and writes the gated unit of each pair of sums. The generated piece before it
// gives `load_c(i)` / `load_c8(i)`, c's readers, and `glu(gate, up)`, the glu kernel's own
// expression (glu.rs), so the fused and unfused paths gate alike.

const MATS: u32 = 2u;

@group(0) @binding(4) var<storage, read> c: array<W>;

fn load_w(m: u32, i: u32) -> f32 {
    if (m == 0u) {
        return load_b(i);
    }
    return load_c(i);
}

fn load_w8(m: u32, i: u32) -> Chunk {
    if (m == 0u) {
        return load_b8(i);
    }
    return load_c8(i);
}

fn combine(sums: array<f32, MATS>) -> f32 {
    return glu(sums[0], sums[1]);
}
