//! Bind groups kept from one submission to the next. A decoding step dispatches the same kernels
//! over the same buffers every time (the pool hands the step's buffers back in the same order,
//! the weights and the cache stay where they are), so each of its bind groups can be made once
//! and reused: creating one is a driver call, and a step makes one per dispatch (hundreds per
//! token). The parameters' uniform is bound with a dynamic offset (`pipelines.rs`), so a bind
//! group does not depend on where in the parameter arena its dispatch's parameters sit, only on
//! which arena buffer holds them.
//!
//! A bind group holds its buffers alive. Entries not used in the last [`KEEP_SUBMISSIONS`]
//! submissions are dropped, so a buffer the pool lets go is freed at most that many submissions
//! later, and the entries kept are those of the last few submissions (at most 2048 dispatches
//! each, `recorder::MAX_BATCH`).

use std::collections::HashMap;

use crate::counters;
use crate::recorder::Binding;

/// Submissions an unused bind group outlives. A decoding step is one submission (a model with
/// more dispatches than one batch holds takes two or three), so a step's bind groups are still
/// there at the next step.
const KEEP_SUBMISSIONS: u64 = 4;

/// What a bind group binds: the kernel's layout, the parameter arena's buffer with the size of
/// one dispatch's parameters (the offset is dynamic), and each storage buffer with its range.
#[derive(PartialEq, Eq, Hash)]
struct Key {
    layout: wgpu::BindGroupLayout,
    uniform: wgpu::Buffer,
    uniform_size: u64,
    storage: Vec<(wgpu::Buffer, Option<(u64, u64)>)>,
}

#[derive(Default)]
pub struct BindGroups {
    entries: HashMap<Key, (wgpu::BindGroup, u64)>,
    /// Submissions ended so far.
    submission: u64,
}

impl BindGroups {
    /// The bind group of `layout` over `uniform` (bound `uniform_size` bytes at a dynamic offset)
    /// and `buffers` at bindings 1.., made on first use.
    pub fn get(
        &mut self,
        device: &wgpu::Device,
        layout: &wgpu::BindGroupLayout,
        uniform: &wgpu::Buffer,
        uniform_size: u64,
        buffers: &[Binding],
    ) -> wgpu::BindGroup {
        let key = Key {
            layout: layout.clone(),
            uniform: uniform.clone(),
            uniform_size,
            storage: buffers.iter().map(|b| ((*b.buffer).clone(), b.range)).collect(),
        };
        let submission = self.submission;
        let (group, used) = self.entries.entry(key).or_insert_with(|| {
            counters::add(&counters::BIND_GROUPS, 1);
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: uniform,
                    offset: 0,
                    size: wgpu::BufferSize::new(uniform_size),
                }),
            }];
            for (b, buffer) in buffers.iter().enumerate() {
                entries.push(wgpu::BindGroupEntry { binding: b as u32 + 1, resource: buffer.resource() });
            }
            (
                device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout, entries: &entries }),
                submission,
            )
        });
        *used = submission;
        group.clone()
    }

    /// Ends a submission: drops the bind groups no submission among the last
    /// [`KEEP_SUBMISSIONS`] used.
    pub fn end_submission(&mut self) {
        self.submission += 1;
        let now = self.submission;
        self.entries.retain(|_, (_, used)| *used + KEEP_SUBMISSIONS >= now);
    }
}
