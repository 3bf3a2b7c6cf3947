//! Top-k over long rows (`topk_sort.wgsl`: tiles sorted in workgroup memory, cut to their best k,
//! then the candidates again) against the CPU, exactly: the same values bit for bit and the same
//! ids, in the CPU's order (`f32::total_cmp`: +NaN first, -NaN last, +0 before -0; lower ids
//! first on ties). A sampler's rows are a vocabulary long (151,936 for Qwen3);
//! the shapes here also cut tiles short, make one, two and several passes, and k from 1 to the
//! kernel's largest.

mod common;

use common::{cpu, gpu};
use tensor::testing::randn;
use tensor::{DType, Result, Tensor};

/// The counters are the process's: the tests here take turns, so the dispatch count of one is
/// not another's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Top-k on both devices, compared exactly.
fn same_topk(g: &tensor::Device, x: &Tensor, k: usize, axis: i32, what: &str) -> Result<()> {
    let (cv, ci) = x.topk(k, axis)?;
    let (gv, gi) = x.to(g)?.topk(k, axis)?;
    let bits = |t: &Tensor| -> Result<Vec<u32>> {
        Ok(t.to(&cpu())?.to_dtype(DType::F32)?.to_vec::<f32>()?.iter().map(|v| v.to_bits()).collect())
    };
    assert_eq!(gi.to(&cpu())?.to_vec::<u32>()?, ci.to_vec::<u32>()?, "{what}: ids");
    assert_eq!(bits(&gv)?, bits(&cv)?, "{what}: values");
    Ok(())
}

#[test]
fn long_rows_match_the_cpu() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let _turn = turn();
    // (rows, n, k): one tile cut short, two passes, a vocabulary's row (three passes at k = 40,
    // five at k = 256), several rows, k that is and is not a power of two.
    let cases = [
        (1, 1025, 1),
        (1, 1025, 256),
        (2, 2048, 3),
        (1, 5000, 40),
        (3, 3001, 17),
        (1, 151_936, 40),
        (1, 151_936, 256),
        (4, 70_000, 100),
    ];
    for (i, (rows, n, k)) in cases.into_iter().enumerate() {
        let x = randn([rows, n], i as u64, &cpu())?.mul_scalar(4.0)?;
        same_topk(&g, &x, k, -1, &format!("[{rows}, {n}] k {k}"))?;
    }
    Ok(())
}

#[test]
fn ties_nans_infinities_and_signed_zeros_rank_as_on_the_cpu() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let _turn = turn();
    // Values on a coarse grid: long runs of ties across tiles and passes.
    let grid: Vec<f32> = randn([2, 9000], 3, &cpu())?.to_vec::<f32>()?.iter().map(|v| (v * 2.0).round()).collect();
    let coarse = Tensor::from_vec(grid, [2, 9000], &cpu())?;
    same_topk(&g, &coarse, 256, -1, "ties")?;
    // NaN (of both signs), infinities and zeros of both signs, spread over several tiles.
    let mut row: Vec<f32> = randn([5000], 4, &cpu())?.to_vec()?;
    for (at, v) in [
        (7, f32::NAN),
        (4000, -f32::NAN),
        (1500, f32::INFINITY),
        (2600, f32::INFINITY),
        (10, f32::NEG_INFINITY),
        (3000, -0.0),
        (12, 0.0),
        (4999, -0.0),
    ] {
        row[at] = v;
    }
    // Every other value pushed below zero's so the zeros are within a k of 40.
    let row: Vec<f32> = row
        .iter()
        .enumerate()
        .map(|(i, &v)| if i % 100 == 0 || !v.is_finite() || v == 0.0 { v } else { -v.abs() - 1.0 })
        .collect();
    let special = Tensor::from_vec(row, [1, 5000], &cpu())?;
    same_topk(&g, &special, 40, -1, "special values")?;
    // A row masked whole: the first k ids.
    let masked = Tensor::full(f64::NEG_INFINITY, [1, 2000], DType::F32, &cpu())?;
    same_topk(&g, &masked, 5, -1, "all -inf")?;
    Ok(())
}

#[test]
fn views_half_rows_and_larger_k_take_their_paths_and_agree() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let _turn = turn();
    let x = randn([3000, 3], 5, &cpu())?;
    same_topk(&g, &x, 30, 0, "along a strided axis")?;
    same_topk(&g, &x.to_dtype(DType::BF16)?.transpose(0, 1)?, 30, -1, "bf16")?;
    // k up to the sorting kernel's largest, over several passes, and a short row with a large k.
    same_topk(&g, &x.transpose(0, 1)?, 512, -1, "k 512")?;
    same_topk(&g, &x.narrow(0, 0, 600)?.transpose(0, 1)?, 300, -1, "k 300 of 600")?;
    // A router's rows: the one-thread-per-row kernel.
    same_topk(&g, &randn([64, 128], 7, &cpu())?, 8, -1, "router")?;
    Ok(())
}

#[test]
fn a_vocabulary_row_takes_three_dispatches_and_one_read() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let _turn = turn();
    let logits = randn([1, 151_936], 6, &cpu())?.to(&g)?;
    // Warm up (the kernel's compilation, the pool's buffers, the readback's buffer).
    for _ in 0..2 {
        logits.topk(40, -1)?.0.to_vec::<f32>()?;
    }
    let before = gpu::counters();
    let (values, ids) = logits.topk(40, -1)?;
    let top = values.to_vec::<f32>()?;
    let during = gpu::counters().delta(&before);
    // 149 tiles of 64 candidates, then 10, then one: three passes, no copy, one wait (the read).
    assert_eq!((during.dispatches, during.readbacks, during.buffer_allocations), (3, 1, 0), "{during:?}");
    assert!(top.windows(2).all(|w| w[0] >= w[1]), "{top:?}");
    drop(ids);
    Ok(())
}

/// The router's kernel (one thread per row) ranks as the CPU does too: the IEEE total order.
#[test]
fn short_rows_rank_nans_and_signed_zeros_as_on_the_cpu() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let _turn = turn();
    let row = vec![0.5f32, -f32::NAN, -0.0, f32::NAN, 0.0, f32::NEG_INFINITY, 2.0, -0.0, f32::INFINITY, 0.0];
    let x = Tensor::from_vec(row, [1, 10], &cpu())?;
    same_topk(&g, &x, 10, -1, "short row")?;
    Ok(())
}

/// No rows: nothing to sort, an empty answer of the right shape.
#[test]
fn no_rows_give_an_empty_answer() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let _turn = turn();
    let empty = Tensor::zeros([0, 5000], DType::F32, &g)?;
    let (values, ids) = empty.topk(40, -1)?;
    assert_eq!((values.dims(), ids.dims()), (&[0usize, 40][..], &[0usize, 40][..]));
    Ok(())
}
