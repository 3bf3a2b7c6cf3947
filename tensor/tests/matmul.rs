//! Matmul against the plain triple loop (`tensor::cpu::matmul::reference`) across shapes,
//! transposed and broadcast operands, batch broadcasting, both matrix-vector paths, and
//! half-precision weights; the expert matmul against a per-row loop.
//!
//! Tolerance: f32 accumulation error grows like sqrt(K) eps; 1e-5 * sqrt(K) absolute plus 1e-5
//! relative, against an f64 reference.

use tensor::testing::{assert_close, randn};
use tensor::{DType, Device, Layout, Result, Tensor};

fn cpu() -> Device {
    Device::cpu()
}

/// The triple loop on [B, M, K] @ [B, K, N] given as contiguous tensors.
fn reference(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ba, bb) = (a.to_vec::<f64>()?, b.to_vec::<f64>()?);
    let (la, lb) = (Layout::contiguous(a.shape().clone()), Layout::contiguous(b.shape().clone()));
    let out = tensor::cpu::matmul::reference(&ba, &la, &bb, &lb);
    Tensor::from_vec(out, [a.dims()[0], a.dims()[1], b.dims()[2]], &cpu())
}

fn check(a: &Tensor, b: &Tensor, what: &str) -> Result<()> {
    let got = a.matmul(b)?;
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k, n) = (a.dims()[ra - 2], a.dims()[ra - 1], b.dims()[rb - 1]);
    // Broadcast the batches ourselves, then flatten them for the reference.
    let batch = got.dims()[..got.rank() - 2].to_vec();
    let bsz: usize = batch.iter().product();
    let mut sa = batch.clone();
    sa.extend([m, k]);
    let mut sb = batch.clone();
    sb.extend([k, n]);
    let want = reference(
        &a.broadcast_to(sa)?.contiguous()?.reshape([bsz, m, k])?,
        &b.broadcast_to(sb)?.contiguous()?.reshape([bsz, k, n])?,
    )?;
    let tol = 1e-5 * (k as f64).sqrt();
    assert_close(&got.to_dtype(DType::F64)?.reshape([bsz, m, n])?, &want, tol, 1e-5)
        .map_err(|e| tensor::Error::shape(what, e.to_string()))
}

#[test]
fn shapes_including_one_and_odd_sizes() -> Result<()> {
    for (i, (m, k, n)) in
        [(1, 1, 1), (1, 7, 33), (33, 7, 1), (7, 33, 1000), (64, 65, 63), (130, 257, 70), (0, 3, 4), (2, 0, 3)]
            .into_iter()
            .enumerate()
    {
        let a = randn([m, k], i as u64, &cpu())?;
        let b = randn([k, n], 100 + i as u64, &cpu())?;
        check(&a, &b, &format!("{m}x{k} @ {k}x{n}"))?;
    }
    Ok(())
}

#[test]
fn transposed_operands_use_the_same_storage() -> Result<()> {
    let a = randn([40, 30], 1, &cpu())?;
    let b = randn([20, 30], 2, &cpu())?;
    check(&a, &b.t()?, "a @ b^T (the Linear layout)")?;
    check(&a.t()?, &a, "a^T @ a")?;
    // Associativity with a transpose: (A B)^T == B^T A^T.
    let ab_t = a.matmul(&b.t()?)?.t()?;
    assert_close(&ab_t.contiguous()?, &b.matmul(&a.t()?)?, 1e-4, 1e-5)?;
    Ok(())
}

#[test]
fn batch_broadcasting() -> Result<()> {
    check(&randn([2, 3, 5, 4], 1, &cpu())?, &randn([4, 6], 2, &cpu())?, "batched @ shared weight")?;
    check(&randn([2, 1, 5, 4], 3, &cpu())?, &randn([3, 4, 6], 4, &cpu())?, "[2,1] batch @ [3] batch")?;
    check(&randn([5, 4], 5, &cpu())?, &randn([2, 4, 6], 6, &cpu())?, "shared lhs @ batched")?;
    // A broadcast (stride 0) operand.
    let row = randn([1, 4], 7, &cpu())?.broadcast_to([3, 4])?;
    check(&row, &randn([4, 2], 8, &cpu())?, "broadcast rows")?;
    // A broadcast column as the weight: its columns overlap (stride 0), no stored matrix to
    // copy transposed; enough rows for the GEMM.
    let column = randn([4, 1], 9, &cpu())?.broadcast_to([4, 6])?;
    check(&randn([20, 4], 10, &cpu())?, &column, "broadcast columns")?;
    Ok(())
}

#[test]
fn matrix_vector_products_in_both_weight_orders_and_half_weights() -> Result<()> {
    let x = randn([1, 1000], 1, &cpu())?;
    let w = randn([300, 1000], 2, &cpu())?; // [out, in]
    check(&x, &w.t()?, "x @ W^T (dot per output)")?;
    check(&x, &w.t()?.contiguous()?, "x @ W with W [in, out] (scaled rows)")?;
    for dtype in [DType::BF16, DType::F16] {
        let wh = w.to_dtype(dtype)?;
        // The reference multiplies the rounded weights exactly. For bf16 on AVX512_BF16, the
        // matrix-vector kernel and the GEMM (prefill) round the activations to bf16 by design
        // (see cpu::matvec_bf16 and cpu::gemm_bf16): their reference rounds them too.
        let rounded = |x: &Tensor| -> Result<Tensor> {
            if dtype == DType::BF16 && tensor::cpu::isa::bf16_gemm() {
                x.to_dtype(DType::BF16)?.to_dtype(DType::F32)
            } else {
                Ok(x.clone())
            }
        };
        let want = rounded(&x)?.matmul(&wh.to_dtype(DType::F32)?.t()?)?;
        assert_close(&x.matmul(&wh.t()?)?, &want, 1e-4, 1e-5)?;
        let xs = randn([9, 1000], 3, &cpu())?;
        let xr = rounded(&xs)?;
        assert_close(&xs.matmul(&wh.t()?)?, &xr.matmul(&wh.to_dtype(DType::F32)?.t()?)?, 1e-4, 1e-5)?;
    }
    Ok(())
}

/// Products of at most 1,024 columns on several threads are split by columns, one
/// single-threaded GEMM per thread (`cpu::matmul`'s `gemm_into`): odd widths whose parts are
/// rounded to 16 columns (1000 on 2 threads: 512 + 488; on 3: 336 + 336 + 328), both weight
/// layouts, a half weight (widened, then the same split), and 1,025 columns, past the split.
/// Run on 2 and 3 threads, so the parts differ from the machine's own count.
#[test]
fn threaded_products_split_by_columns() -> Result<()> {
    for threads in [2, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
        pool.install(|| -> Result<()> {
            for (i, (m, k, n)) in
                [(70, 300, 300), (33, 129, 1000), (64, 64, 1024), (40, 100, 1025)].into_iter().enumerate()
            {
                let x = randn([m, k], 10 + i as u64, &cpu())?;
                let w = randn([n, k], 20 + i as u64, &cpu())?;
                check(&x, &w.t()?, &format!("{threads} threads: {m}x{k} @ W^T, W [{n}, {k}]"))?;
                check(&x, &w.t()?.contiguous()?, &format!("{threads} threads: {m}x{k} @ W [{k}, {n}]"))?;
                let wh = w.to_dtype(DType::F16)?;
                let want = reference(
                    &x.reshape([1, m, k])?,
                    &wh.to_dtype(DType::F32)?.t()?.contiguous()?.reshape([1, k, n])?,
                )?;
                let got = x.matmul(&wh.t()?)?.to_dtype(DType::F64)?.reshape([1, m, n])?;
                assert_close(&got, &want, 1e-5 * (k as f64).sqrt(), 1e-5)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// An f32 Linear weight (the transposed view of a stored [N, K] matrix) reaches the GEMM as
/// row-major blocks of columns copied transposed, each 2 MiB (`cpu::matmul`'s
/// `gemm_transposed`): at K 4099 and 4096 a block is 128 columns, so these products cross
/// several blocks, with a ragged last one, on both threaded paths (split by columns up to
/// 1,024 columns, each part in its own blocks; the crate's threading past it) and on one
/// thread; also batched weights, and a weight that starts inside its buffer (a narrowed view).
#[test]
fn linear_weights_copied_transposed_in_blocks() -> Result<()> {
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
        pool.install(|| -> Result<()> {
            for (i, (m, k, n)) in [(16, 4099, 300), (17, 4096, 1100), (20, 300, 70)].into_iter().enumerate() {
                let x = randn([m, k], 30 + i as u64, &cpu())?;
                let w = randn([n, k], 40 + i as u64, &cpu())?;
                check(&x, &w.t()?, &format!("{threads} threads: {m}x{k} @ W^T, W [{n}, {k}]"))?;
            }
            let w = randn([3, 205, 4096], 50, &cpu())?;
            let x = randn([3, 24, 4096], 51, &cpu())?;
            check(&x, &w.transpose(1, 2)?, &format!("{threads} threads: batched weights"))?;
            let w = randn([305, 4096], 52, &cpu())?.narrow(0, 5, 300)?;
            check(&randn([18, 4096], 53, &cpu())?, &w.t()?, &format!("{threads} threads: a narrowed weight"))
        })?;
    }
    Ok(())
}

/// Short prompts against a Linear's weight run as passes of the skinny kernel, 8 rows each (a
/// last pass of one row takes the matrix-vector path): 9 to 15 rows with f32 weights, 9 to 64
/// with f16 ones; every remainder of 8, against the triple loop on the same (widened) weights;
/// past those, the GEMM.
#[test]
fn short_prompts_against_a_linear_weight() -> Result<()> {
    let (k, n) = (300, 70);
    let w = randn([n, k], 2, &cpu())?;
    for m in [9, 10, 15, 16, 17, 31, 57, 64, 65] {
        let x = randn([m, k], m as u64, &cpu())?;
        check(&x, &w.t()?, &format!("{m} rows @ W^T"))?;
        let wh = w.to_dtype(DType::F16)?;
        let want = reference(&x.reshape([1, m, k])?, &wh.to_dtype(DType::F32)?.t()?.contiguous()?.reshape([1, k, n])?)?;
        let got = x.matmul(&wh.t()?)?.to_dtype(DType::F64)?.reshape([1, m, n])?;
        assert_close(&got, &want, 1e-5 * (k as f64).sqrt(), 1e-5)?;
    }
    Ok(())
}

#[test]
fn expert_matmul_equals_a_loop_over_rows() -> Result<()> {
    let x = randn([6, 5], 1, &cpu())?;
    let w = randn([3, 4, 5], 2, &cpu())?; // [E, out, in]
    let ids = Tensor::from_vec(vec![2u32, 0, 0, 1, 2, 2], [6], &cpu())?;
    let got = x.expert_matmul(&w.transpose(1, 2)?, &ids)?;
    for (r, &e) in [2usize, 0, 0, 1, 2, 2].iter().enumerate() {
        let want = x.narrow(0, r, 1)?.matmul(&w.select(0, e)?.t()?)?;
        assert_close(&got.narrow(0, r, 1)?, &want, 1e-6, 1e-6)?;
    }
    let bad = Tensor::from_vec(vec![3u32; 6], [6], &cpu())?;
    let err = x.expert_matmul(&w.transpose(1, 2)?, &bad).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("expert_matmul") && err.contains("3"), "{err}");
    Ok(())
}

#[test]
fn bad_shapes_and_dtypes_are_errors() -> Result<()> {
    let a = randn([2, 3], 1, &cpu())?;
    let err = a.matmul(&a).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("matmul") && err.contains("[2, 3]"), "{err}");
    assert!(a.matmul(&randn([3], 2, &cpu())?).is_err(), "rank 1 is refused");
    assert!(a.matmul(&Tensor::zeros([3, 2], DType::U32, &cpu())?).is_err());
    Ok(())
}
