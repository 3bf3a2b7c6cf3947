//! Batched submission. Ops record their dispatches here instead of submitting them; the batch is
//! encoded into one command encoder (one compute pass per run of dispatches) and submitted when
//! it grows large, when a result is read back, or on `synchronize`. Reading back is the only
//! point that waits.
//!
//! Each dispatch's parameters (sizes, strides, constants) are appended to one byte arena written
//! into a single uniform buffer at submission; each dispatch binds its own 256-byte-aligned
//! slice, so dispatches of one batch never overwrite each other's parameters. Small uploads are
//! staged the same way, in a second arena copied to their tensors in order with the dispatches.
//! Both arenas' buffers are kept from one submission to the next (written with
//! `queue.write_buffer`) and reused once the submission that read them has finished, so a steady
//! loop creates no buffer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tensor::Result;

use crate::bind_groups::BindGroups;
use crate::context::Context;
use crate::counters;
use crate::pipelines::Kernel;
use crate::profile::Profile;

/// Submit once this many dispatches are waiting. Large enough that a decode step of a model of
/// ~60 layers goes in one submission with its readback; a real GPU starts work sooner with
/// smaller batches, but each submission has a fixed cost of its own.
const MAX_BATCH: usize = 2048;

/// Submit once this many bytes of uploads are waiting in the staging arena.
const MAX_STAGED: usize = 8 << 20;

/// A storage buffer as one dispatch binds it: whole, or the byte range `(offset, size)` of it,
/// a window of a tensor larger than one binding may hold (see `split`).
#[derive(Clone, Debug)]
pub struct Binding {
    pub buffer: Arc<wgpu::Buffer>,
    pub range: Option<(u64, u64)>,
}

impl Binding {
    pub fn whole(buffer: &Arc<wgpu::Buffer>) -> Binding {
        Binding { buffer: buffer.clone(), range: None }
    }

    /// The bytes the kernel sees.
    pub fn size(&self) -> u64 {
        self.range.map_or(self.buffer.size(), |(_, size)| size)
    }

    pub(crate) fn resource(&self) -> wgpu::BindingResource<'_> {
        match self.range {
            None => self.buffer.as_entire_binding(),
            Some((offset, size)) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.buffer,
                offset,
                size: wgpu::BufferSize::new(size),
            }),
        }
    }
}

enum Command {
    Dispatch {
        kernel: Arc<Kernel>,
        params: (u64, u64),
        buffers: Vec<Binding>,
        groups: [u32; 3],
    },
    Copy {
        src: Arc<wgpu::Buffer>,
        src_offset: u64,
        dst: Arc<wgpu::Buffer>,
        dst_offset: u64,
        size: u64,
    },
    /// `size` bytes at `offset` of the staging arena into the start of `dst`.
    Upload {
        offset: u64,
        dst: Arc<wgpu::Buffer>,
        size: u64,
    },
}

/// Buffers kept between submissions and grown (to a power of two) when a batch needs more, so a
/// steady loop creates none. A buffer is handed out again only once the submission that read it
/// has finished (wgpu reports that through `on_submitted_work_done`, delivered when the device is
/// polled, as every readback does), so a batch submitted while another is still running gets a
/// buffer of its own rather than overwriting one in use.
struct Arena {
    free: Arc<Mutex<Vec<wgpu::Buffer>>>,
    usage: wgpu::BufferUsages,
    label: &'static str,
}

impl Arena {
    fn new(label: &'static str, usage: wgpu::BufferUsages) -> Arena {
        Arena { free: Arc::default(), usage, label }
    }

    /// A buffer holding `bytes` at its start (written in queue order, before the next
    /// submission runs).
    fn fill(&self, ctx: &Context, bytes: &[u8]) -> wgpu::Buffer {
        let needed = (bytes.len() as u64).max(256);
        let recycled = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            free.iter().position(|b| b.size() >= needed).map(|i| free.swap_remove(i))
        };
        let buffer = recycled.unwrap_or_else(|| {
            counters::add(&counters::BUFFER_ALLOCATIONS, 1);
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(self.label),
                size: needed.next_power_of_two().max(64 << 10),
                usage: self.usage | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        if !bytes.is_empty() {
            ctx.queue.write_buffer(&buffer, 0, bytes);
        }
        buffer
    }

    /// Returns `buffer` to the arena once the work submitted so far has finished.
    fn release_after_submission(&self, ctx: &Context, buffer: wgpu::Buffer) {
        let free = self.free.clone();
        ctx.queue.on_submitted_work_done(move || {
            let mut free = free.lock().unwrap_or_else(|p| p.into_inner());
            // A few kept are enough; more would only pin memory.
            if free.len() < 4 {
                free.push(buffer);
            }
        });
    }
}

pub struct Batch {
    commands: Vec<Command>,
    params: Vec<u8>,
    staged: Vec<u8>,
    uniforms: Arena,
    staging: Arena,
    bind_groups: BindGroups,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch {
            commands: Vec::new(),
            params: Vec::new(),
            staged: Vec::new(),
            uniforms: Arena::new("parameters", wgpu::BufferUsages::UNIFORM),
            staging: Arena::new("uploads", wgpu::BufferUsages::COPY_SRC),
            bind_groups: BindGroups::default(),
        }
    }
}

/// Counters of what was recorded and submitted (for tests and tuning), and the per-kernel
/// profile (`profile`).
#[derive(Default)]
pub struct Stats {
    pub dispatches: AtomicU64,
    pub submissions: AtomicU64,
    pub profile: Profile,
}

/// Timestamps of one profiled submission: two per dispatch, resolved into `resolved` and copied
/// into the mappable `readback`.
struct Timestamps {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    readback: wgpu::Buffer,
}

impl Timestamps {
    fn new(ctx: &Context, dispatches: u32) -> Timestamps {
        let count = 2 * dispatches;
        let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let buffer = |usage| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile"),
                size: 8 * count as u64,
                usage,
                mapped_at_creation: false,
            })
        };
        let resolved = buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
        let readback = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        Timestamps { queries, resolved, readback }
    }

    /// Waits for the submission and adds each dispatch's time to its kernel's total.
    fn collect(&self, ctx: &Context, names: &[String], profile: &Profile, op: &str) -> Result<()> {
        let slice = self.readback.slice(..);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = sender.send(r);
        });
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| tensor::Error::backend(op, format!("waiting for the GPU's timestamps failed: {e}")))?;
        match receiver.recv() {
            Ok(Ok(())) => {}
            _ => return Err(tensor::Error::backend(op, "the GPU's timestamps could not be read back")),
        }
        let period = ctx.queue.get_timestamp_period() as f64;
        {
            let data = slice
                .get_mapped_range()
                .map_err(|e| tensor::Error::backend(op, format!("mapping the timestamps failed: {e}")))?;
            let ticks: &[u64] = bytemuck::cast_slice(&data);
            for (d, name) in names.iter().enumerate() {
                let (start, end) = (ticks[2 * d], ticks[2 * d + 1]);
                profile.record(name, end.saturating_sub(start) as f64 * period * 1e-9);
            }
        }
        self.readback.unmap();
        Ok(())
    }
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
        buffers: Vec<Binding>,
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

    /// Records a copy (uploads and readbacks stay in order with the dispatches).
    pub fn copy(&mut self, src: Arc<wgpu::Buffer>, dst: Arc<wgpu::Buffer>, size: u64) {
        self.copy_at(src, 0, dst, 0, size);
    }

    /// Records a copy of `size` bytes from `src_offset` of `src` to `dst_offset` of `dst`.
    pub fn copy_at(
        &mut self,
        src: Arc<wgpu::Buffer>,
        src_offset: u64,
        dst: Arc<wgpu::Buffer>,
        dst_offset: u64,
        size: u64,
    ) {
        self.commands.push(Command::Copy { src, src_offset, dst, dst_offset, size });
    }

    /// Records an upload of `bytes` (a multiple of 4 long) into the start of `dst`, staged in
    /// the batch's arena and copied in order with the dispatches.
    pub fn upload(&mut self, bytes: &[u8], dst: Arc<wgpu::Buffer>) {
        let offset = self.staged.len() as u64;
        self.staged.extend_from_slice(bytes);
        self.commands.push(Command::Upload { offset, dst, size: bytes.len() as u64 });
    }

    pub fn should_flush(&self) -> bool {
        self.commands.len() >= MAX_BATCH || self.staged.len() >= MAX_STAGED
    }

    /// Encodes and submits everything recorded, leaving the batch empty.
    pub fn submit(&mut self, ctx: &Context, stats: &Stats, op: &str) -> Result<()> {
        if self.commands.is_empty() {
            return Ok(());
        }
        let commands = std::mem::take(&mut self.commands);
        let mut params = std::mem::take(&mut self.params);
        params.resize(params.len().max(16), 0);
        let staged = std::mem::take(&mut self.staged);
        let dispatches = commands.iter().filter(|c| matches!(c, Command::Dispatch { .. })).count() as u64;
        let device = &ctx.device;
        let (uniform_arena, staging_arena) = (&self.uniforms, &self.staging);
        let bind_groups = &mut self.bind_groups;
        let timestamps = (stats.profile.is_on() && ctx.features.timestamps && dispatches > 0)
            .then(|| Timestamps::new(ctx, dispatches as u32));
        let mut names = Vec::new();
        crate::errors::scoped(ctx, op, || {
            let uniforms = uniform_arena.fill(ctx, &params);
            let staging = if staged.is_empty() { None } else { Some(staging_arena.fill(ctx, &staged)) };
            let uniforms = &uniforms;
            let staging_ref = staging.as_ref();
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("batch") });
            let mut i = 0;
            while i < commands.len() {
                match &commands[i] {
                    Command::Copy { src, src_offset, dst, dst_offset, size } => {
                        encoder.copy_buffer_to_buffer(src, *src_offset, dst, *dst_offset, *size);
                        i += 1;
                    }
                    Command::Upload { offset, dst, size } => {
                        let staging = staging_ref.expect("uploads were staged");
                        encoder.copy_buffer_to_buffer(staging, *offset, dst, 0, *size);
                        i += 1;
                    }
                    Command::Dispatch { .. } => {
                        // Profiled, each dispatch is a pass of its own, timed at both ends.
                        let timestamp_writes = timestamps.as_ref().map(|t| wgpu::ComputePassTimestampWrites {
                            query_set: &t.queries,
                            beginning_of_pass_write_index: Some(2 * names.len() as u32),
                            end_of_pass_write_index: Some(2 * names.len() as u32 + 1),
                        });
                        let mut pass =
                            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes });
                        while let Some(Command::Dispatch { kernel, params: (offset, size), buffers, groups }) =
                            commands.get(i)
                        {
                            // The parameters at a dynamic offset: the same bind group serves
                            // this dispatch in every step (`bind_groups.rs`).
                            let bind_group = bind_groups.get(device, &kernel.layout, uniforms, *size, buffers);
                            pass.set_pipeline(&kernel.pipeline);
                            pass.set_bind_group(0, &bind_group, &[*offset as u32]);
                            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                            i += 1;
                            if timestamps.is_some() {
                                names.push(kernel.name.clone());
                                break;
                            }
                        }
                    }
                }
            }
            if let Some(t) = &timestamps {
                let count = 2 * names.len() as u32;
                encoder.resolve_query_set(&t.queries, 0..count, &t.resolved, 0);
                encoder.copy_buffer_to_buffer(&t.resolved, 0, &t.readback, 0, 8 * count as u64);
            }
            ctx.queue.submit(Some(encoder.finish()));
            bind_groups.end_submission();
            uniform_arena.release_after_submission(ctx, uniforms.clone());
            if let Some(staging) = staging {
                staging_arena.release_after_submission(ctx, staging);
            }
        })?;
        if let Some(t) = &timestamps {
            t.collect(ctx, &names, &stats.profile, op)?;
        }
        stats.dispatches.fetch_add(dispatches, Ordering::Relaxed);
        stats.submissions.fetch_add(1, Ordering::Relaxed);
        counters::add(&counters::SUBMITS, 1);
        counters::add(&counters::DISPATCHES, dispatches);
        Ok(())
    }
}
