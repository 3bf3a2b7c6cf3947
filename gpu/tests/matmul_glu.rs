//! `matmul_glu`'s fused kernel (`matvec.wgsl` over the gate and up weights, `matvec_glu.wgsl`)
//! against the CPU's three ops (two matmuls, then `glu`): outputs per workgroup that do not divide
//! I, K with and without a tail past its last multiple of 8, weight rows that start 16-byte
//! aligned (vec4 loads) or not (scalar loads), gate and up at different offsets of one table,
//! weights stored transposed (a thread per output), f32/bf16/f16 weights, both activations, both
//! reductions and both ways of reading f16, each fallback forced in turn; the one row the
//! matrix-vector path takes in one dispatch, and more rows falling back to the three ops. One
//! test in a file of its own: forcing a fallback is process-wide, and it counts dispatches.
//!
//! Tolerance: 1e-5 relative plus 1e-6 * sqrt(K) absolute. x is scaled by 1/sqrt(K) so that each
//! dot product is about N(0, 1), the range where SiLU and GELU bend; the two sides add each
//! product's K terms in another order (f32 rounding of ~1e-7 * sqrt(K) each), and then apply the
//! same gated-unit expression. bf16/f16 weights are widened exactly on both sides, so they need
//! no more.

mod common;

use common::{counted, cpu, gpu, on_each_matvec_path, same_on_both};
use tensor::testing::randn;
use tensor::{DType, GluActivation, Result};

const ACTS: [GluActivation; 2] = [GluActivation::Silu, GluActivation::GeluTanh];

/// One row against every shape, weight dtype, layout and activation.
fn one_row(g: &tensor::Device) -> Result<()> {
    for (i, &(n, k)) in [(1, 1), (5, 7), (3, 8), (33, 64), (131, 33), (9, 1031), (7, 1000)].iter().enumerate() {
        let seed = 10 * i as u64;
        // [1, K] and [1, 1, K]: the row as a Linear sees it, with or without a batch dim.
        let shape = if i % 2 == 0 { vec![1, k] } else { vec![1, 1, k] };
        let x = randn(shape, seed, &cpu())?.mul_scalar(1.0 / (k as f64).sqrt())?;
        let (gate, up) = (randn([n, k], seed + 1, &cpu())?, randn([n, k], seed + 2, &cpu())?);
        let tol = 1e-6 * (k as f64).sqrt();
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let (gate, up) = (gate.to_dtype(dtype)?, up.to_dtype(dtype)?);
            for act in ACTS {
                let what = format!("x {:?}, gate and up [{n}, {k}] {dtype} {act:?}", x.shape());
                same_on_both(g, &[x.clone(), gate.clone(), up.clone()], tol, 1e-5, &what, |t| {
                    t[0].matmul_glu(&t[1], &t[2], act)
                })?;
            }
            // Gate and up as rows of one larger table, at offsets of 8 elements (rows stay aligned
            // when K is a multiple of 8) and of 1 (never aligned).
            for skip in [1, 8] {
                let table = randn([2 * n * k + skip], seed + 3, &cpu())?.to_dtype(dtype)?;
                let what = format!("gate and up [{n}, {k}] {dtype} at offsets {skip} and {}", skip + n * k);
                same_on_both(g, &[x.clone(), table], tol, 1e-5, &what, |t| {
                    let rows = |at: usize| t[1].narrow(0usize, at, n * k)?.reshape([n, k]);
                    t[0].matmul_glu(&rows(skip)?, &rows(skip + n * k)?, GluActivation::Silu)
                })?;
            }
        }
        // Weights stored [K, I] (a transposed view): one thread per output walks K.
        let stored = [gate.t()?.contiguous()?, up.t()?.contiguous()?];
        same_on_both(g, &[x.clone(), stored[0].clone(), stored[1].clone()], tol, 1e-5, "transposed", |t| {
            t[0].matmul_glu(&t[1].t()?, &t[2].t()?, GluActivation::GeluTanh)
        })?;
    }
    Ok(())
}

/// One row is one dispatch; more rows than the matrix-vector path takes are the three ops' three,
/// still right.
fn dispatches(g: &tensor::Device) -> Result<()> {
    let (n, k) = (37, 72);
    let (gate, up) =
        (randn([n, k], 90, &cpu())?.to_dtype(DType::BF16)?, randn([n, k], 91, &cpu())?.to_dtype(DType::BF16)?);
    let (gate_g, up_g) = (gate.to(g)?, up.to(g)?);
    for (shape, expected) in [(vec![1, 1, k], 1), (vec![2, k], 3), (vec![3, 1, k], 3)] {
        let x = randn(shape.clone(), 92, &cpu())?.mul_scalar(1.0 / (k as f64).sqrt())?;
        let x_g = x.to(g)?;
        x_g.to(&cpu())?; // the upload done before counting
        let (on_gpu, count) = counted(|| x_g.matmul_glu(&gate_g, &up_g, GluActivation::Silu))?;
        assert_eq!(count, expected, "x {shape:?}: dispatches");
        let on_cpu = x.matmul_glu(&gate, &up, GluActivation::Silu)?;
        tensor::testing::assert_close(&on_gpu, &on_cpu, 1e-6 * (k as f64).sqrt(), 1e-5)
            .map_err(|e| tensor::Error::shape("matmul_glu", format!("x {shape:?}: {e}")))?;
    }
    Ok(())
}

#[test]
fn fused_gate_and_up_match_the_three_ops_on_every_path() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    on_each_matvec_path("matvec_glu", || one_row(&g))?;
    dispatches(&g)?;
    let keys = gpu::backend()?.pipelines.names();
    let ran = |kernel: &str| keys.iter().any(|k| k.starts_with(kernel));
    assert!(ran("matvec_glu/silu/") && ran("matvec_glu/gelu_tanh/"), "both activations ran: {keys:?}");
    assert!(ran("matvec_glu/gelu_tanh/f32/false/scalar/tree"), "transposed weights ran: {keys:?}");
    Ok(())
}
