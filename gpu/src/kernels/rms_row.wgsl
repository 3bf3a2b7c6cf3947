// The pieces of RMSNorm that rms_norm.wgsl, rms_norm_rope.wgsl and add_rms_norm.wgsl share,
// over row `base` of the kernel's `x` (d = params.d elements) with its `w` and `params.mode`;
// one 256-thread workgroup per row.

var<workgroup> partial: array<f32, 256>;

// The sum over the workgroup of each thread's `v`, by a tree in workgroup memory. Called by
// every thread of the workgroup (it has barriers).
fn row_sum(v: f32, lid: u32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            partial[lid] = partial[lid] + partial[lid + s];
        }
        workgroupBarrier();
    }
    return partial[0];
}

// 1 / sqrt(mean(v^2) + eps) over the row, from each thread's sum of squares of its part.
fn inv_rms_of(squares: f32, lid: u32) -> f32 {
    return inverseSqrt(row_sum(squares, lid) / f32(params.d) + params.eps);
}

// 1 / sqrt(mean(x^2) + eps) of the row: each thread sums a strided part, then `inv_rms_of`.
fn inv_rms(base: u32, lid: u32) -> f32 {
    var sum = 0.0;
    for (var j = lid; j < params.d; j = j + 256u) {
        let v = x[base + j];
        sum = sum + v * v;
    }
    return inv_rms_of(sum, lid);
}

// The scale of element j: w[j], 1 + w[j] (Gemma), or 1 (weightless).
fn scale(j: u32) -> f32 {
    if (params.mode == 1u) {
        return w[j];
    } else if (params.mode == 2u) {
        return 1.0 + w[j];
    }
    return 1.0;
}
