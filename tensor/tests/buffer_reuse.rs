//! The CPU's buffer pool hands kept buffers back with stale values (NaN under
//! `debug_assertions`, as tests build): every kernel that takes one must write every element.
//! Each op here runs twice on outputs large enough to be kept (>= 64K elements); the second run
//! gets the first's buffer back, poisoned, and must give the same bits, with no NaN. The matrix
//! products go through each path they have: one row (matrix-vector), a few rows (skinny), many
//! rows (GEMM), with f32, bf16 and f16 weights, and a transposed weight.

use tensor::ops::UnaryOp;
use tensor::testing::randn;
use tensor::{DType, Device, GluActivation, Result, Tensor};

fn twice(what: &str, f: impl Fn() -> Result<Tensor>) -> Result<()> {
    let first = f()?.to_vec::<f32>()?;
    assert!(first.len() >= 64 * 1024, "{what}: {} elements are not kept by the pool", first.len());
    for _ in 0..2 {
        let again = f()?.to_vec::<f32>()?;
        assert!(again.iter().all(|x| !x.is_nan()), "{what}: a stale element survived");
        assert_eq!(
            again.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            first.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{what}"
        );
    }
    Ok(())
}

#[test]
fn kernels_taking_kept_buffers_write_every_element() -> Result<()> {
    let cpu = Device::cpu();
    for (m, n, k) in [(1, 70_000, 24), (3, 30_000, 40), (300, 300, 48)] {
        let x = randn([m, k], 1, &cpu)?;
        let w = randn([n, k], 2, &cpu)?;
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let wt = w.to_dtype(dtype)?;
            twice(&format!("matmul [{m}, {k}] x [{n}, {k}]^T {dtype}"), || x.matmul(&wt.t()?))?;
        }
        // The weight stored [k, n] (its rows contiguous along n).
        let wk = randn([k, n], 3, &cpu)?;
        twice(&format!("matmul [{m}, {k}] x [{k}, {n}]"), || x.matmul(&wk))?;
    }
    let a = randn([300, 700], 4, &cpu)?;
    let b = randn([300, 700], 5, &cpu)?;
    for op in [UnaryOp::Exp, UnaryOp::Silu, UnaryOp::Sigmoid] {
        twice(&format!("{op:?}"), || a.unary(op))?;
    }
    for act in [GluActivation::Silu, GluActivation::GeluTanh] {
        twice(&format!("glu {act:?}"), || a.glu(&b, act))?;
    }
    Ok(())
}
