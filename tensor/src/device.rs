//! `Device`: a cheap handle to a backend. Tensors carry one; ops require their operands to share it.

use std::sync::{Arc, OnceLock};

use crate::Backend;
use crate::cpu::CpuBackend;

#[derive(Clone)]
pub struct Device {
    backend: Arc<dyn Backend>,
}

impl Device {
    /// The CPU: always available, and the reference every other device is checked against.
    pub fn cpu() -> Device {
        static CPU: OnceLock<Device> = OnceLock::new();
        CPU.get_or_init(|| Device { backend: Arc::new(CpuBackend) }).clone()
    }

    /// Wraps a backend (the GPU crate builds its device this way).
    pub fn from_backend(backend: Arc<dyn Backend>) -> Device {
        Device { backend }
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    pub fn is_cpu(&self) -> bool {
        self.backend.is_cpu()
    }

    pub fn name(&self) -> String {
        self.backend.name()
    }

    /// Whether two handles refer to the same backend instance.
    pub fn same_as(&self, other: &Device) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.backend), Arc::as_ptr(&other.backend))
    }

    /// Waits for every queued op of this device.
    pub fn synchronize(&self) -> crate::Result<()> {
        self.backend.synchronize()
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Device) -> bool {
        self.same_as(other)
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Device({})", self.name())
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}
