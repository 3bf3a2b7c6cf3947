//! The batch-1 matrix-vector product (`matvec.wgsl`) against the CPU: rows per workgroup that do
//! not divide N, K with and without a tail past its last multiple of 8, rows that start
//! 16-byte aligned (vec4 loads) or not (scalar loads), f32/bf16/f16 weights, batched operands,
//! both reductions (subgroups and the workgroup-memory tree), and f16 weights read as f16
//! (SHADER_F16) or as packed words, each fallback forced in turn. In a file of its own: forcing
//! a fallback is process-wide.
//!
//! Tolerance: 1e-5 relative plus 1e-5 * sqrt(K) absolute (f32 sums in another order; the
//! half-precision weights are exact in f32, so they need no more).

mod common;

use common::{cpu, gpu, on_each_matvec_path, same_on_both};
use tensor::testing::randn;
use tensor::{DType, Result};

fn products(g: &tensor::Device) -> Result<()> {
    for (i, &(n, k)) in [(1, 1), (5, 7), (3, 8), (33, 64), (130, 33), (9, 1031), (4, 1000)].iter().enumerate() {
        let x = randn([1, k], 100 + i as u64, &cpu())?;
        let w = randn([n, k], 200 + i as u64, &cpu())?;
        let tol = 1e-5 * (k as f64).sqrt();
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let w = w.to_dtype(dtype)?;
            let what = format!("x [1, {k}] @ W^T [{n}, {k}] {dtype}");
            same_on_both(g, &[x.clone(), w.clone()], tol, 1e-5, &what, |t| t[0].matmul(&t[1].t()?))?;
            // The weight at an offset of 8 elements (rows stay aligned when K is a multiple of
            // 8) and of 1 (never aligned): a narrowed view of a larger table.
            for skip in [1, 8] {
                let padded = randn([n * k + skip], 300 + i as u64, &cpu())?.to_dtype(dtype)?;
                let what = format!("{what} at offset {skip}");
                same_on_both(g, &[x.clone(), padded], tol, 1e-5, &what, |t| {
                    t[0].matmul(&t[1].narrow(0usize, skip, n * k)?.reshape([n, k])?.t()?)
                })?;
            }
        }
        // Batched: [2, 1, K] @ [2, K, N], each batch's weight stored [N, K].
        let xb = randn([2, 1, k], 400 + i as u64, &cpu())?;
        let wb = randn([2, n, k], 500 + i as u64, &cpu())?;
        same_on_both(g, &[xb, wb], tol, 1e-5, &format!("batched [2, 1, {k}] @ [2, {k}, {n}]"), |t| {
            t[0].matmul(&t[1].transpose(1, 2)?)
        })?;
        // x as a strided view (a column of a matrix): scalar loads of x.
        let xs = randn([k, 2], 600 + i as u64, &cpu())?;
        same_on_both(g, &[xs, w.clone()], tol, 1e-5, &format!("strided x, K {k}, N {n}"), |t| {
            t[0].narrow(1usize, 1, 1)?.t()?.matmul(&t[1].t()?)
        })?;
    }
    Ok(())
}

#[test]
fn matvec_on_odd_shapes_with_each_load_width_and_reduction() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    on_each_matvec_path("matvec", || products(&g))
}
