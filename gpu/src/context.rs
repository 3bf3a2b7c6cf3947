//! Finding an adapter and opening a device. The high-performance adapter comes first;
//! `LLM_GPU_BACKEND` (vulkan, metal, dx12, gl) restricts the backend and `LLM_GPU_ADAPTER` picks
//! an adapter by a case-insensitive part of its name. The device is opened with the adapter's
//! own limits (large storage buffers, many workgroups), not wgpu's conservative defaults, and with
//! the optional features the kernels can use (`features`). An
//! adapter that cannot run the kernels (see `requirements`) is passed over for the next one.

use std::sync::Arc;

use tensor::{Error, Result};

use crate::errors::DeviceErrors;
use crate::features::{self, Optional};
use crate::requirements::{self, Candidate};

pub struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// The optional features the device was opened with (see `features`).
    pub features: Optional,
    /// What wgpu reported outside any call on this device: uncaptured errors, a loss.
    pub(crate) errors: Arc<DeviceErrors>,
}

fn no_adapter(reason: &str) -> Error {
    Error::device(
        "gpu",
        format!(
            "no GPU adapter found ({reason}): install a Vulkan driver (on Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1, or your GPU vendor's driver), or check LLM_GPU_BACKEND / LLM_GPU_ADAPTER"
        ),
    )
}

fn backends_from_env() -> Result<wgpu::Backends> {
    match std::env::var("LLM_GPU_BACKEND") {
        Err(_) => Ok(wgpu::Backends::all()),
        Ok(v) => match v.to_ascii_lowercase().as_str() {
            "vulkan" => Ok(wgpu::Backends::VULKAN),
            "metal" => Ok(wgpu::Backends::METAL),
            "dx12" => Ok(wgpu::Backends::DX12),
            "gl" | "opengl" => Ok(wgpu::Backends::GL),
            other => {
                Err(Error::device("gpu", format!("LLM_GPU_BACKEND={other:?} is not one of vulkan, metal, dx12, gl")))
            }
        },
    }
}

/// `LLM_GPU_MAX_BINDING_MIB=<n>`: the adapter's storage binding limit lowered to `n` MiB (never
/// raised), so the tests can split tensors of a few MiB across bindings as a real adapter splits
/// an embedding of gigabytes (`split`). The device is opened with the lowered limit, so wgpu's
/// own validation holds the kernels to it too.
fn with_binding_limit_from_env(mut limits: wgpu::Limits) -> Result<wgpu::Limits> {
    let Ok(value) = std::env::var("LLM_GPU_MAX_BINDING_MIB") else {
        return Ok(limits);
    };
    let mib = value.trim().parse::<u64>().ok().filter(|&m| m > 0).ok_or_else(|| {
        Error::device("gpu", format!("LLM_GPU_MAX_BINDING_MIB={value:?} is not a positive number of MiB"))
    })?;
    limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(mib << 20);
    Ok(limits)
}

/// Whether an adapter is a real GPU rather than a CPU implementation (lavapipe, WARP).
fn rank(info: &wgpu::AdapterInfo) -> u8 {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

impl Context {
    pub fn new() -> Result<Context> {
        let backends = backends_from_env()?;
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        descriptor.backends = backends;
        let instance = wgpu::Instance::new(descriptor);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
        if let Ok(wanted) = std::env::var("LLM_GPU_ADAPTER") {
            let wanted = wanted.to_ascii_lowercase();
            adapters.retain(|a| a.get_info().name.to_ascii_lowercase().contains(&wanted));
            if adapters.is_empty() {
                return Err(Error::device("gpu", format!("no adapter's name contains LLM_GPU_ADAPTER={wanted:?}")));
            }
        }
        // Compute needs no surface; GL adapters are last resorts.
        adapters.sort_by_key(|a| (rank(&a.get_info()), a.get_info().backend == wgpu::Backend::Gl));
        if adapters.is_empty() {
            return Err(no_adapter(&format!("backends {backends:?}")));
        }
        let candidates: Vec<Candidate> = adapters
            .iter()
            .map(|a| Candidate {
                label: format!("{} ({:?})", a.get_info().name, a.get_info().backend),
                downlevel: a.get_downlevel_capabilities(),
                limits: a.limits(),
            })
            .collect();
        let chosen = requirements::choose(&candidates).map_err(|e| Error::device("gpu", e))?;
        let adapter = adapters.swap_remove(chosen);
        let info = adapter.get_info();
        let limits = with_binding_limit_from_env(adapter.limits())?;
        let (required_features, optional) = features::to_request(adapter.features())?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("llmforge"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::device("gpu", format!("the adapter {} would not open a device: {e}", info.name)))?;
        // Errors nobody captured, and a loss, are kept for the next call to report, never a panic.
        let errors = Arc::new(DeviceErrors::default());
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| sink.record_uncaptured(e.to_string())));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, message| sink.record_lost(format!("{reason:?}: {message}")));
        Ok(Context { device, queue, info, limits, features: optional, errors })
    }

    /// "gpu: <adapter> (<backend>[, cpu adapter])".
    pub fn describe(&self) -> String {
        let kind = if self.info.device_type == wgpu::DeviceType::Cpu { ", cpu adapter" } else { "" };
        format!("gpu: {} ({:?}{kind})", self.info.name, self.info.backend)
    }

    pub fn is_cpu_adapter(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }
}
