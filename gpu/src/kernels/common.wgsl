// Shared by every kernel: the strided layout of a tensor view, as a uniform, and the index
// helpers. A layout holds up to 8 dims (the host merges adjacent dims first, so real views
// rarely need more than 3 or 4).

struct Layout {
    offset: u32,
    rank: u32,
    pad0: u32,
    pad1: u32,
    dims: array<vec4<u32>, 2>,
    strides: array<vec4<u32>, 2>,
}

fn layout_dim(l: Layout, d: u32) -> u32 {
    return l.dims[d / 4u][d % 4u];
}

fn layout_stride(l: Layout, d: u32) -> u32 {
    return l.strides[d / 4u][d % 4u];
}

// The storage index of the element at row-major position `linear` of the layout's shape: peel
// the position into per-dim coordinates from the innermost dim out, weighting each by its stride.
fn strided_index(l: Layout, linear: u32) -> u32 {
    var rest = linear;
    var index = l.offset;
    var d = l.rank;
    loop {
        if (d == 0u) {
            break;
        }
        d = d - 1u;
        let n = layout_dim(l, d);
        index = index + (rest % n) * layout_stride(l, d);
        rest = rest / n;
    }
    return index;
}

// Launches of many threads use a 2-D grid of 256-thread workgroups (a grid dimension holds at
// most 65535 workgroups); this recovers the flat thread index.
fn thread_index(wid: vec3<u32>, lid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return (wid.y * groups.x + wid.x) * 256u + lid.x;
}

// The flat index of a workgroup in a 2-D grid (kernels with one workgroup per row).
fn group_index(wid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wid.y * groups.x + wid.x;
}

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// By the bits: WGSL lets a compiler assume floats are never NaN, and `x != x` is folded to
// false by some (lavapipe's LLVM does).
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// bf16 is the top half of an f32.
fn bf16_to_f32(bits: u32) -> f32 {
    return bitcast<f32>(bits << 16u);
}

// Round to nearest even, as the CPU's conversion does; NaN stays NaN.
fn f32_to_bf16(x: f32) -> u32 {
    if (is_nan(x)) {
        return 0x7fc0u;
    }
    let bits = bitcast<u32>(x);
    return (bits + 0x7fffu + ((bits >> 16u) & 1u)) >> 16u;
}

fn f16_to_f32(bits: u32) -> f32 {
    return unpack2x16float(bits).x;
}

fn f32_to_f16(x: f32) -> u32 {
    return pack2x16float(vec2<f32>(x, 0.0)) & 0xffffu;
}
