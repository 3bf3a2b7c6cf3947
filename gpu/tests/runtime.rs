//! The runtime's promises: many ops in one submission, each pipeline compiled once, buffers
//! recycled, and errors (over-large tensors, a foreign device) returned rather than panicking.

mod common;

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use common::{cpu, gpu};
use tensor::testing::randn;
use tensor::{DType, Tensor};

/// The counters are per process: these tests take turns so none sees another's work.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn many_ops_are_submitted_together_and_only_readback_waits() -> tensor::Result<()> {
    let _turn = serial();
    let Some(g) = gpu() else { return Ok(()) };
    let backend = gpu::backend()?;
    let x = randn([64, 64], 1, &cpu())?.to(&g)?;
    g.synchronize()?;
    let before = backend.stats.submissions.load(Ordering::Relaxed);
    let mut y = x.clone();
    for _ in 0..50 {
        y = y.tanh()?.add(&x)?.mul_scalar(0.5)?;
    }
    let after_record = backend.stats.submissions.load(Ordering::Relaxed);
    assert_eq!(after_record, before, "150 recorded ops submitted nothing yet");
    y.to(&cpu())?;
    let after_read = backend.stats.submissions.load(Ordering::Relaxed);
    assert!(after_read - before <= 2, "one batch plus the readback copy, got {}", after_read - before);
    Ok(())
}

#[test]
fn each_pipeline_is_compiled_once() -> tensor::Result<()> {
    let _turn = serial();
    let Some(g) = gpu() else { return Ok(()) };
    let backend = gpu::backend()?;
    let x = randn([5, 5], 2, &cpu())?.to(&g)?;
    x.exp()?.to(&cpu())?;
    let compiled = backend.pipelines.compiled.load(Ordering::Relaxed);
    for _ in 0..10 {
        x.exp()?.to(&cpu())?;
        randn([9, 3], 3, &cpu())?.to(&g)?.exp()?.to(&cpu())?;
    }
    assert_eq!(backend.pipelines.compiled.load(Ordering::Relaxed), compiled, "new shapes reuse the pipeline");
    Ok(())
}

#[test]
fn freed_buffers_are_reused() -> tensor::Result<()> {
    let _turn = serial();
    let Some(g) = gpu() else { return Ok(()) };
    let backend = gpu::backend()?;
    let x = randn([123, 45], 4, &cpu())?.to(&g)?;
    let (_, reused_before) = backend.pool_counts();
    for _ in 0..20 {
        let y = x.exp()?; // allocated, then dropped at the end of the iteration
        drop(y);
    }
    g.synchronize()?;
    let (_, reused_after) = backend.pool_counts();
    assert!(reused_after >= reused_before + 19, "{reused_before} -> {reused_after}");
    Ok(())
}

#[test]
fn too_large_tensors_and_foreign_operands_are_errors() -> tensor::Result<()> {
    let _turn = serial();
    let Some(g) = gpu() else { return Ok(()) };
    let limit = gpu::backend()?.context().limits.max_storage_buffer_binding_size as usize;
    let err = Tensor::zeros([limit / 4 + 1024], DType::F32, &g).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("limit") && err.contains(&limit.to_string()), "{err}");
    let on_cpu = Tensor::ones([3], DType::F32, &cpu())?;
    let on_gpu = Tensor::ones([3], DType::F32, &g)?;
    let err = on_gpu.add(&on_cpu).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("different devices"), "{err}");
    Ok(())
}

#[test]
fn an_upload_into_a_recycled_buffer_waits_for_the_work_queued_before_it() -> tensor::Result<()> {
    // x's buffer goes back to the pool while exp(x) is only recorded; the next upload of the
    // same size takes that buffer. Staged (small) or written after a submission (large, over
    // 1 MiB), the upload must land after exp has read x.
    let _turn = serial();
    let Some(g) = gpu() else { return Ok(()) };
    for n in [1000usize, 300_001] {
        let host = randn([n], 5, &cpu())?;
        let x = host.to(&g)?;
        let y = x.exp()?;
        drop(x);
        let other = Tensor::full(3.0, [n], DType::F32, &cpu())?.to(&g)?;
        let want = host.exp()?;
        tensor::testing::assert_close(&y.to(&cpu())?, &want, 1e-6, 1e-6)?;
        assert_eq!(other.to(&cpu())?.to_vec::<f32>()?, vec![3.0; n], "{n} elements");
    }
    Ok(())
}

#[test]
fn a_steady_loop_reads_back_once_and_creates_no_buffer() -> tensor::Result<()> {
    // Uploads, kernels that set the id error flag (index_select), and the readback: the flag
    // travels with the result, so each iteration waits once and, once warm, allocates nothing.
    let _turn = serial();
    let Some(g) = gpu() else { return Ok(()) };
    let table = randn([50, 16], 6, &cpu())?.to(&g)?;
    let step = |i: u32| -> tensor::Result<Vec<f32>> {
        let ids = Tensor::from_vec(vec![i % 50, (i * 7) % 50], [2], &cpu())?.to(&g)?;
        table.index_select(&ids, 0usize)?.tanh()?.sum_all()?.to_vec::<f32>()
    };
    step(0)?;
    step(1)?;
    let before = gpu::counters();
    for i in 2..12 {
        step(i)?;
    }
    let d = gpu::counters().delta(&before);
    assert_eq!(d.readbacks, 10, "{d:?}");
    assert_eq!(d.submits, 10, "{d:?}");
    assert_eq!(d.buffer_allocations, 0, "{d:?}");
    assert_eq!(d.pipeline_compilations, 0, "{d:?}");
    assert_eq!(d.bytes_uploaded, 10 * 8, "{d:?}");
    Ok(())
}
