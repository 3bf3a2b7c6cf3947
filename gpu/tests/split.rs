//! Tensors over the adapter's storage binding limit, split across bindings (`src/split.rs`).
//! This test process lowers the limit to 1 MiB (`LLM_GPU_MAX_BINDING_MIB`, read when the device
//! opens; every test here sets it first), so tables of a few MiB take the split paths that an
//! 8B model's 2 GB embedding takes on a real adapter. Each result is compared with the CPU.
//! Skipped with a note where there is no adapter.

mod common;

use common::{LOW_LIMIT, cpu, gpu_with_low_limit};

use tensor::testing::{assert_close, randn};
use tensor::{DType, Result, Tensor};

/// Ids covering the first, last and every window's rows, repeated and out of order.
fn ids_over(rows: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..rows as u32).step_by(97).collect();
    ids.extend([rows as u32 - 1, 0, 5, rows as u32 / 2, 5, rows as u32 - 2]);
    ids
}

#[test]
fn upload_and_download_round_trip_tensors_several_times_the_limit() -> Result<()> {
    let Some(g) = gpu_with_low_limit() else {
        println!("note: no GPU adapter; splitting was not exercised");
        return Ok(());
    };
    for (dtype, rows, cols) in [(DType::F32, 1000, 777), (DType::BF16, 1501, 1303), (DType::U32, 3, 300_001)] {
        let host = randn([rows, cols], 1, &cpu())?.to_dtype(dtype)?;
        assert!(rows * cols * dtype.size_in_bytes() > 2 * LOW_LIMIT);
        let dev = host.to(&g)?;
        assert_eq!(dev.to(&cpu())?.to_host()?, host.to_host()?, "{dtype} round trip");
        // A run of rows deep inside the buffer is read back in place; rows inside one window
        // are copied (a transposed view) and cast through that window.
        let rows_view = |t: &Tensor| t.narrow(0, rows - 2, 2);
        assert_eq!(rows_view(&dev)?.to(&cpu())?.to_host()?, rows_view(&host)?.to_host()?, "{dtype} rows");
        if dtype != DType::U32 {
            let strided = |t: &Tensor| t.narrow(0, rows / 2, 3)?.t()?.contiguous();
            assert_eq!(strided(&dev)?.to(&cpu())?.to_host()?, strided(&host)?.to_host()?, "{dtype} strided rows");
            let widened = |t: &Tensor| t.narrow(0, rows - 3, 3)?.to_dtype(DType::F32);
            assert_eq!(widened(&dev)?.to(&cpu())?.to_host()?, widened(&host)?.to_host()?, "{dtype} cast rows");
        }
    }
    Ok(())
}

#[test]
fn index_select_gathers_rows_from_every_window() -> Result<()> {
    let Some(g) = gpu_with_low_limit() else { return Ok(()) };
    for (dtype, rows, cols) in [(DType::F32, 1200, 700), (DType::BF16, 2001, 802), (DType::F16, 999, 1500)] {
        let table = randn([rows, cols], 2, &cpu())?.to_dtype(dtype)?;
        let on_gpu = table.to(&g)?;
        for id_dtype in [DType::U32, DType::I64] {
            let ids = Tensor::from_vec(ids_over(rows), [ids_over(rows).len()], &cpu())?.to_dtype(id_dtype)?;
            let want = table.index_select(&ids, 0)?;
            let got = on_gpu.index_select(&ids.to(&g)?, 0)?;
            assert_eq!(got.to(&cpu())?.to_host()?, want.to_host()?, "{dtype} rows by {id_dtype} ids");
        }
        // A view of the table (rows from an offset) is gathered through the same windows.
        let ids = Tensor::from_vec(vec![0u32, 7, 500], [3], &cpu())?;
        let want = table.narrow(0, 3, rows - 3)?.index_select(&ids, 0)?;
        let got = on_gpu.narrow(0, 3, rows - 3)?.index_select(&ids.to(&g)?, 0)?;
        assert_eq!(got.to(&cpu())?.to_host()?, want.to_host()?, "{dtype} rows of a view");
    }
    // An id past the table is the usual error at the next readback, and the device goes on.
    let table = randn([1200, 700], 3, &g)?;
    let bad = Tensor::from_vec(vec![3u32, 1200], [2], &g)?;
    let err = table.index_select(&bad, 0)?.to(&cpu()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("out of range"), "{err}");
    let ok = Tensor::from_vec(vec![1199u32], [1], &g)?;
    assert_close(&table.index_select(&ok, 0)?.to(&cpu())?, &table.to(&cpu())?.narrow(0, 1199, 1)?, 0.0, 0.0)?;
    Ok(())
}

#[test]
fn matmul_with_a_split_weight_matches_the_cpu() -> Result<()> {
    let Some(g) = gpu_with_low_limit() else { return Ok(()) };
    // An LM head: W [N, K] over the limit, x @ W^T, for one row (matrix-vector kernel), a few
    // rows (tiled kernel), a batch sharing the weight, K with and without vector loads.
    for (dtype, n, k) in [(DType::F32, 3001, 128), (DType::BF16, 2500, 260), (DType::F16, 1100, 515)] {
        let w = randn([n, k], 4, &cpu())?.to_dtype(dtype)?;
        assert!(n * k * dtype.size_in_bytes() > LOW_LIMIT);
        let w_gpu = w.to(&g)?;
        for shape in [vec![1, k], vec![37, k], vec![2, 5, k]] {
            let x = randn(shape.clone(), 5, &cpu())?;
            let want = x.matmul(&w.t()?)?;
            let got = x.to(&g)?.matmul(&w_gpu.t()?)?;
            let tol = 1e-5 * (k as f64).sqrt();
            assert_close(&got.to(&cpu())?, &want, tol, tol)
                .map_err(|e| tensor::Error::shape("matmul", format!("{dtype} {shape:?}: {e}")))?;
        }
        // As a gated feed-forward's gate and up weights: the fused kernel binds weights whole, so
        // even one row falls back to the two (split) products and glu.
        let up = randn([n, k], 6, &cpu())?.to_dtype(dtype)?;
        let x = randn([1, 1, k], 7, &cpu())?.mul_scalar(1.0 / (k as f64).sqrt())?;
        let want = x.matmul_glu(&w, &up, tensor::GluActivation::Silu)?;
        let got = x.to(&g)?.matmul_glu(&w_gpu, &up.to(&g)?, tensor::GluActivation::Silu)?;
        assert_close(&got.to(&cpu())?, &want, 1e-5, 1e-5)
            .map_err(|e| tensor::Error::shape("matmul_glu", format!("{dtype} split gate: {e}")))?;
    }
    Ok(())
}

#[test]
fn other_ops_on_a_split_tensor_are_clear_errors() -> Result<()> {
    let Some(g) = gpu_with_low_limit() else { return Ok(()) };
    let big = randn([1000, 700], 6, &g)?;
    let message = |r: Result<Tensor>| r.and_then(|t| t.to(&cpu())).err().map(|e| e.to_string()).unwrap_or_default();
    let limit = LOW_LIMIT.to_string();
    for (what, err) in [
        ("add", message(big.add(&big))),
        ("softmax", message(big.softmax(-1))),
        ("contiguous of the whole transposed table", message(big.t()?.contiguous())),
        ("index_select along dim 1", message(big.index_select(&Tensor::from_vec(vec![1u32], [1], &g)?, 1))),
        ("matmul with the table as activations", message(big.matmul(&randn([700, 3], 7, &g)?))),
        ("matmul with the weight not split by rows", message(randn([2, 1000], 8, &g)?.matmul(&big))),
    ] {
        assert!(err.contains("storage binding limit") && err.contains(&limit), "{what}: {err}");
    }
    // Nothing was left half recorded: the device still computes.
    let small = randn([4, 4], 9, &g)?;
    assert_close(&small.add(&small)?.to(&cpu())?, &small.to(&cpu())?.add(&small.to(&cpu())?)?, 0.0, 0.0)?;
    Ok(())
}
