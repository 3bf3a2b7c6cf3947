//! `gpu`: the GPU device, through `wgpu` and WGSL compute kernels, so one code path serves
//! NVIDIA, AMD, Intel and Apple GPUs (Vulkan, Metal, DX12). It implements the tensor crate's
//! `Backend` trait; a tensor moves here with `tensor.to(&gpu::device()?)` and every op then runs
//! as a kernel dispatch.
//!
//! - `context`: adapter choice and device set-up with the adapter's real limits;
//! - `requirements`: what an adapter must offer for the kernels to run;
//! - `features`: the optional features (subgroups, f16, timestamps) used where offered;
//! - `pool`: GPU buffers, recycled between tensors;
//! - `pipelines`: each kernel compiled once;
//! - `recorder`: dispatches batched into one submission; reading back is the only wait;
//! - `counters`: submissions, dispatches, readbacks, allocations, compilations, uploads;
//! - `profile`: GPU time per kernel from timestamp queries, when asked for;
//! - `errors`: wgpu's errors as `Result`s;
//! - `kernels/<family>.{rs,wgsl}`: the kernels and their launchers;
//! - `backend`: the `Backend` implementation tying them together.
//!
//! See `gpu/README.md` for how an op becomes a dispatch, with one kernel walked through.

pub mod backend;
mod bind_groups;
mod block_tables;
pub mod context;
pub mod counters;
mod errors;
pub mod features;
pub mod kernels;
pub mod pipelines;
pub mod pool;
pub mod profile;
pub mod recorder;
pub mod requirements;
mod split;

use std::sync::{Arc, OnceLock};

pub use backend::GpuBackend;
pub use counters::{GpuCounters, PerToken, counters};
use tensor::{Device, Result};

static DEVICE: OnceLock<std::result::Result<(Device, Arc<GpuBackend>), tensor::Error>> = OnceLock::new();

fn shared() -> Result<&'static (Device, Arc<GpuBackend>)> {
    DEVICE
        .get_or_init(|| {
            let backend = Arc::new(GpuBackend::new()?);
            Ok((Device::from_backend(backend.clone()), backend))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The process-wide GPU device, created on first use. The error says what is missing when no
/// adapter can be opened; the CPU keeps working either way.
pub fn device() -> Result<Device> {
    Ok(shared()?.0.clone())
}

/// The backend behind [`device`], for counters and adapter details.
pub fn backend() -> Result<Arc<GpuBackend>> {
    Ok(shared()?.1.clone())
}

/// [`test_device`] with the adapter's storage binding limit lowered to `mib` MiB for the whole
/// process (`LLM_GPU_MAX_BINDING_MIB`, read when the device opens), so that tensors of a few MiB
/// take the paths an 8B model's tables take on a real adapter (`split.rs`). Every test of such
/// a process must get its device here, first thing: the variable is set once, before the device
/// opens, and the limit is checked to have been applied.
pub fn test_device_with_binding_limit(mib: u64) -> Option<Device> {
    static SET: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before any test of this process opens the device or reads the
    // environment (each calls this first; `Once` makes the others wait for it).
    SET.call_once(|| unsafe { std::env::set_var("LLM_GPU_MAX_BINDING_MIB", mib.to_string()) });
    let device = test_device()?;
    let limit = backend().expect("the device opened").binding_limit();
    assert_eq!(limit, mib << 20, "LLM_GPU_MAX_BINDING_MIB was not applied (the device opened first)");
    Some(device)
}

/// The GPU for a test: `Some` when an adapter exists; when none does, prints why and returns
/// `None` so the test is skipped, unless the `CI` environment variable is set, where a missing
/// adapter fails the test (GPU tests can never pass silently in CI).
pub fn test_device() -> Option<Device> {
    match device() {
        Ok(d) => Some(d),
        Err(e) if std::env::var_os("CI").is_some() => panic!("CI is set but the GPU tests cannot run: {e}"),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}
