//! Batched submission. Ops record their dispatches here instead of submitting them; the batch is
//! encoded into one command encoder (one compute pass per run of dispatches) and submitted when
//! it grows large, when a result is read back, or on `synchronize`. Reading back is the only
//! point that waits.
//!
//! Each dispatch's parameters (sizes, strides, constants) are appended to one byte arena that
//! becomes a single uniform buffer at submission; each dispatch binds its own 256-byte-aligned
//! slice, so dispatches of one batch never overwrite each other's parameters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tensor::Result;
use wgpu::util::DeviceExt;

use crate::context::Context;
use crate::pipelines::Kernel;

/// Submit once this many dispatches are waiting.
const MAX_BATCH: usize = 512;

enum Command {
    Dispatch { kernel: Arc<Kernel>, params: (u64, u64), buffers: Vec<Arc<wgpu::Buffer>>, groups: [u32; 3] },
    Copy { src: Arc<wgpu::Buffer>, dst: Arc<wgpu::Buffer>, size: u64 },
}

#[derive(Default)]
pub struct Batch {
    commands: Vec<Command>,
    params: Vec<u8>,
}

/// Counters of what was recorded and submitted (for tests and tuning).
#[derive(Default)]
pub struct Stats {
    pub dispatches: AtomicU64,
    pub submissions: AtomicU64,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Records a dispatch of `kernel` over `groups` workgroups with parameters `params` (a
    /// `#[repr(C)]` struct's bytes) and storage buffers bound at 1.. in order.
    pub fn dispatch(
        &mut self,
        kernel: Arc<Kernel>,
        params: &[u8],
        buffers: Vec<Arc<wgpu::Buffer>>,
        groups: [u32; 3],
        alignment: u64,
    ) {
        let offset = (self.params.len() as u64).div_ceil(alignment) * alignment;
        self.params.resize(offset as usize, 0);
        self.params.extend_from_slice(params);
        // Uniform bindings are read in 16-byte units.
        let size = (params.len() as u64).div_ceil(16) * 16;
        self.params.resize((offset + size) as usize, 0);
        self.commands.push(Command::Dispatch { kernel, params: (offset, size), buffers, groups });
    }

    /// Records a whole-buffer copy (uploads and readbacks stay in order with the dispatches).
    pub fn copy(&mut self, src: Arc<wgpu::Buffer>, dst: Arc<wgpu::Buffer>, size: u64) {
        self.commands.push(Command::Copy { src, dst, size });
    }

    pub fn should_flush(&self) -> bool {
        self.commands.len() >= MAX_BATCH
    }

    /// Encodes and submits everything recorded, leaving the batch empty.
    pub fn submit(&mut self, ctx: &Context, stats: &Stats, op: &str) -> Result<()> {
        if self.commands.is_empty() {
            return Ok(());
        }
        let commands = std::mem::take(&mut self.commands);
        let mut params = std::mem::take(&mut self.params);
        params.resize(params.len().max(16), 0);
        let dispatches = commands.iter().filter(|c| matches!(c, Command::Dispatch { .. })).count() as u64;
        let (device, queue) = (&ctx.device, &ctx.queue);
        crate::errors::scoped(ctx, op, || {
            let uniforms = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("parameters"),
                contents: &params,
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("batch") });
            let mut i = 0;
            while i < commands.len() {
                match &commands[i] {
                    Command::Copy { src, dst, size } => {
                        encoder.copy_buffer_to_buffer(src, 0, dst, 0, *size);
                        i += 1;
                    }
                    Command::Dispatch { .. } => {
                        let mut pass = encoder
                            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
                        while let Some(Command::Dispatch { kernel, params: (offset, size), buffers, groups }) =
                            commands.get(i)
                        {
                            let mut entries = vec![wgpu::BindGroupEntry {
                                binding: 0,
                                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                    buffer: &uniforms,
                                    offset: *offset,
                                    size: wgpu::BufferSize::new(*size),
                                }),
                            }];
                            for (b, buffer) in buffers.iter().enumerate() {
                                entries.push(wgpu::BindGroupEntry {
                                    binding: b as u32 + 1,
                                    resource: buffer.as_entire_binding(),
                                });
                            }
                            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                                label: None,
                                layout: &kernel.layout,
                                entries: &entries,
                            });
                            pass.set_pipeline(&kernel.pipeline);
                            pass.set_bind_group(0, &bind_group, &[]);
                            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                            i += 1;
                        }
                    }
                }
            }
            queue.submit(Some(encoder.finish()));
        })?;
        stats.dispatches.fetch_add(dispatches, Ordering::Relaxed);
        stats.submissions.fetch_add(1, Ordering::Relaxed);
        crate::counters::add(&crate::counters::SUBMITS, 1);
        crate::counters::add(&crate::counters::DISPATCHES, dispatches);
        crate::counters::add(&crate::counters::BIND_GROUPS, dispatches);
        crate::counters::add(&crate::counters::BUFFER_ALLOCATIONS, 1);
        Ok(())
    }
}
