//! GPU memory: `GpuBuffer`, the `tensor::Buffer` of this backend, and the pool that recycles
//! allocations. A tensor's buffer goes back to the pool when the last tensor using it is dropped,
//! and the next allocation of a similar size takes it, so a decode loop stops allocating after
//! its first step. Reuse is safe while earlier work is still queued: the queue runs dispatches in
//! order, so a later writer cannot overtake an earlier reader.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tensor::{Error, Result};

/// Keep at most this many bytes of idle buffers.
const MAX_POOLED_BYTES: u64 = 1 << 30;

pub struct Pool {
    device: wgpu::Device,
    free: Mutex<HashMap<u64, Vec<Arc<wgpu::Buffer>>>>,
    pooled_bytes: AtomicU64,
    /// Allocations served from the pool and freshly created (for tests and tuning).
    pub reused: AtomicU64,
    pub created: AtomicU64,
    max_buffer_size: u64,
    /// The storage binding limit: a tensor within it gets a buffer within it too.
    max_binding_size: u64,
}

/// Sizes are rounded up so a tensor of a slightly different size can reuse a buffer: 256-byte
/// steps below 64 KiB, then 1/16 of the next power of two (at most 6.25% slack).
fn bucket(size: u64) -> u64 {
    let size = size.max(4);
    if size <= 1 << 16 {
        return size.div_ceil(256) * 256;
    }
    let step = size.next_power_of_two() / 16;
    size.div_ceil(step) * step
}

impl Pool {
    pub fn new(device: wgpu::Device, max_buffer_size: u64, max_binding_size: u64) -> Pool {
        Pool {
            device,
            free: Mutex::new(HashMap::new()),
            pooled_bytes: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            created: AtomicU64::new(0),
            max_buffer_size,
            max_binding_size,
        }
    }

    /// The size of buffer to create for `bytes`: its bucket, unless rounding up would push a
    /// tensor that one binding can hold over the binding limit (kernels bind buffers whole); such
    /// a buffer gets its exact size and is not pooled.
    fn size_for(&self, bytes: u64) -> u64 {
        let size = bucket(bytes);
        if size > self.max_binding_size && bytes <= self.max_binding_size {
            let exact = bytes.max(4).div_ceil(16) * 16;
            return if exact <= self.max_binding_size { exact } else { bytes.max(4).div_ceil(4) * 4 };
        }
        size
    }

    /// A storage buffer of at least `bytes` bytes (contents unspecified).
    pub fn allocate(self: &Arc<Pool>, bytes: u64, op: &str) -> Result<GpuBuffer> {
        let size = self.size_for(bytes);
        if size > self.max_buffer_size {
            return Err(Error::backend(
                op,
                format!("a tensor of {bytes} bytes exceeds this GPU's largest buffer ({} bytes)", self.max_buffer_size),
            ));
        }
        let recycled = self.free.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&size).and_then(Vec::pop);
        let buffer = match recycled {
            Some(b) => {
                self.pooled_bytes.fetch_sub(size, Ordering::Relaxed);
                self.reused.fetch_add(1, Ordering::Relaxed);
                b
            }
            None => {
                self.created.fetch_add(1, Ordering::Relaxed);
                crate::counters::add(&crate::counters::BUFFER_ALLOCATIONS, 1);
                Arc::new(self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("tensor"),
                    size,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }))
            }
        };
        Ok(GpuBuffer { buffer, bytes, pool: Arc::downgrade(self) })
    }

    /// Wraps a buffer created elsewhere (an upload) so it joins the pool when freed.
    pub fn adopt(self: &Arc<Pool>, buffer: wgpu::Buffer, bytes: u64) -> GpuBuffer {
        GpuBuffer { buffer: Arc::new(buffer), bytes, pool: Arc::downgrade(self) }
    }

    fn give_back(&self, buffer: Arc<wgpu::Buffer>) {
        let size = buffer.size();
        // Only buffers of a bucket size can be handed out again; drop the rest (and the excess).
        if bucket(size) != size || self.pooled_bytes.load(Ordering::Relaxed) + size > MAX_POOLED_BYTES {
            return;
        }
        self.pooled_bytes.fetch_add(size, Ordering::Relaxed);
        self.free.lock().unwrap_or_else(|p| p.into_inner()).entry(size).or_default().push(buffer);
    }
}

/// One tensor storage on the GPU. Elements are packed little-endian: 16-bit types two per
/// 32-bit word, 64-bit ids as (low, high) word pairs.
pub struct GpuBuffer {
    pub buffer: Arc<wgpu::Buffer>,
    /// Bytes the tensor needs (the buffer may be larger).
    pub bytes: u64,
    pool: Weak<Pool>,
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer({} bytes)", self.bytes)
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give_back(self.buffer.clone());
        }
    }
}

impl tensor::Buffer for GpuBuffer {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn size_in_bytes(&self) -> usize {
        self.bytes as usize
    }
}
