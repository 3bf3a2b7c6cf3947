//! A GPU lost mid-run (a driver reset, an unplugged eGPU, a watchdog timeout): every call after
//! the loss fails with one error that says what happened and what to do, none panics, work that
//! was recorded but not yet run is reported rather than returned as garbage, and other devices
//! are untouched. No adapter can be made to fail on demand, so the loss is made the way wgpu
//! reports it: the device is destroyed and its device-lost callback runs.

use std::sync::Arc;

use gpu::GpuBackend;
use tensor::testing::randn;
use tensor::{DType, Device, Tensor};

fn is_loss_advice(result: tensor::Result<impl std::fmt::Debug>, what: &str) {
    let err = result.err().map(|e| e.to_string()).unwrap_or_else(|| panic!("{what}: succeeded on a lost device"));
    assert!(err.contains("GPU device was lost") && err.contains("--device cpu"), "{what}: {err}");
}

#[test]
fn every_call_after_a_loss_fails_with_advice_and_other_devices_go_on() -> tensor::Result<()> {
    // The shared device decides whether this machine has an adapter (and fails under CI if not).
    let Some(shared) = gpu::test_device() else { return Ok(()) };
    let cpu = Device::cpu();
    // A device of its own, so losing it touches nothing else.
    let backend = Arc::new(GpuBackend::new()?);
    let g = Device::from_backend(backend.clone());
    let a = randn([64, 64], 1, &cpu)?;
    let on_gpu = a.to(&g)?;
    let before = on_gpu.matmul(&on_gpu)?.to(&cpu)?;
    tensor::testing::assert_close(&before, &a.matmul(&a)?, 1e-4, 1e-4)?;

    // Recorded, not yet submitted, when the device goes.
    let pending = on_gpu.matmul(&on_gpu)?.softmax(1usize)?;
    backend.simulate_device_loss();

    is_loss_advice(pending.to(&cpu), "reading back work recorded before the loss");
    is_loss_advice(on_gpu.to(&cpu), "reading back a tensor uploaded before the loss");
    is_loss_advice(on_gpu.add(&on_gpu), "a new op");
    is_loss_advice(a.to(&g), "an upload");
    is_loss_advice(Tensor::zeros([8], DType::F32, &g), "an allocation");
    is_loss_advice(g.synchronize(), "synchronize");
    // Still lost on the next call: the error is not consumed by reporting it.
    is_loss_advice(on_gpu.exp(), "a second new op");
    drop((pending, on_gpu));

    // The process-wide device and the CPU are unaffected.
    let again = a.to(&shared)?.matmul(&a.to(&shared)?)?.to(&cpu)?;
    tensor::testing::assert_close(&again, &before, 1e-4, 1e-4)?;
    Ok(())
}
