//! Choosing the device a command runs on. `--device cpu` and `--device gpu` are taken
//! literally (a missing GPU is an error, never a silent fallback); without the flag the best
//! device found is used and named. A software adapter (Mesa's lavapipe, which runs the WGSL
//! kernels on the CPU) is a GPU only when asked for by name: left to choose, the CPU backend is
//! faster than a GPU emulated on the same cores.

use tensor::Device;

use crate::{Error, Result};

/// The device a `--device` value asks for, and a line saying which was taken.
pub fn pick(requested: Option<&str>) -> Result<(Device, String)> {
    match requested.map(|s| s.to_ascii_lowercase()) {
        Some(name) if name == "cpu" => Ok((Device::cpu(), "device: cpu".to_string())),
        Some(name) if name == "gpu" => {
            let device = gpu_device()?;
            let line = format!("device: {}", device.name());
            Ok((device, line))
        }
        Some(other) => Err(Error::input(format!("--device must be cpu or gpu, got {other:?}"))),
        None => match gpu_device() {
            Ok(device) if software_adapter() => Ok((
                Device::cpu(),
                format!("device: cpu (the only GPU adapter, {}, runs on the CPU; --device gpu uses it)", device.name()),
            )),
            Ok(device) => {
                let line = format!("device: {} (best found)", device.name());
                Ok((device, line))
            }
            Err(e) => Ok((Device::cpu(), format!("device: cpu (no GPU: {e})"))),
        },
    }
}

fn gpu_device() -> Result<Device> {
    gpu::device().map_err(|e| Error::input(format!("--device gpu: {e}")))
}

fn software_adapter() -> bool {
    gpu::backend().map(|b| b.context().is_cpu_adapter()).unwrap_or(false)
}

/// Runs `f` on a worker thread of the CPU kernels' pool and waits for it.
///
/// Why: a parallel kernel called from a thread outside the pool queues its pieces and puts the
/// caller to sleep until the workers are done, then wakes it: two thread hand-offs per product,
/// and a decoded token runs some 200 products (a Qwen3-0.6B-shaped model decoded ~6% faster
/// on 2 threads run this way, docs/BENCHMARKS.md). Called from a worker, the caller computes a
/// share itself while the others take the rest.
pub fn on_cpu_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}
