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

/// The size of buffer for a tensor of `bytes` bytes: its bucket, unless rounding up would push
/// it past a limit it is within (`limits`, smallest first: the storage binding limit, where
/// kernels bind buffers whole, then the largest buffer); then its exact size, in whole 16-byte
/// vectors where that fits, and such a buffer is not pooled.
fn buffer_size(bytes: u64, limits: [u64; 2]) -> u64 {
    let size = bucket(bytes);
    for limit in limits {
        if bytes <= limit && size > limit {
            let exact = bytes.max(4).div_ceil(16) * 16;
            return if exact <= limit { exact } else { bytes.max(4).div_ceil(4) * 4 };
        }
    }
    size
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

    /// The size of buffer to create for `bytes`.
    fn size_for(&self, bytes: u64) -> u64 {
        buffer_size(bytes, [self.max_binding_size, self.max_buffer_size])
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
        // Kept in a fixed order (largest first, so `pop` hands out the smallest), not in the order
        // they came back: a loop that frees its buffers in a different order from one step to the
        // next still gets the same buffers at the same points, and so the same bind groups
        // (`bind_groups.rs`).
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let list = free.entry(size).or_default();
        let at = list.partition_point(|b| **b > *buffer);
        list.insert(at, buffer);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_round_up_to_a_bucket_only_within_the_limits() {
        const MIB: u64 = 1 << 20;
        // A binding limit that is no bucket boundary (a synthetic one, or 4 GiB - 1).
        let limits = [100 * MIB, (2 << 30) - 1];
        assert_eq!(buffer_size(90 * MIB + 1, limits), 96 * MIB);
        // Under the binding limit, but its bucket (104 MiB) is not.
        assert_eq!(buffer_size(99 * MIB, limits), 99 * MIB);
        assert_eq!(buffer_size(99 * MIB + 1, limits), 99 * MIB + 16);
        assert_eq!(buffer_size(100 * MIB - 2, limits), 100 * MIB);
        // Over the binding limit (split across bindings): its bucket if a buffer can be that big.
        assert_eq!(buffer_size(200 * MIB, limits), bucket(200 * MIB));
        // lavapipe's largest buffer is 2 GiB - 1: a 2.1 GB table (bucket 2 GiB) fits exactly.
        assert_eq!(buffer_size(2_100_000_000, limits), 2_100_000_000);
        // Past every limit the bucket is returned, for the caller to refuse.
        assert!(buffer_size(3 << 30, limits) > limits[1]);
    }
}
