//! What the GPU runtime did, counted for the whole process: submissions, kernel dispatches,
//! blocking readbacks, new wgpu buffers, pipeline compilations, bytes uploaded and bind groups.
//! They explain where a decode step's time goes on a real GPU, where each submission, readback
//! (a full drain of the queue) and allocation costs far more than on a CPU adapter.
//!
//! Take a [`counters`] snapshot before and after the work, [`GpuCounters::delta`] the two, and
//! [`GpuCounters::per_token`] the difference over the tokens decoded in between; its
//! [`PerToken::fields`] carry the names `llm generate --stats` prints.

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) static SUBMITS: AtomicU64 = AtomicU64::new(0);
pub(crate) static DISPATCHES: AtomicU64 = AtomicU64::new(0);
pub(crate) static READBACKS: AtomicU64 = AtomicU64::new(0);
pub(crate) static BUFFER_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
pub(crate) static PIPELINE_COMPILATIONS: AtomicU64 = AtomicU64::new(0);
pub(crate) static BYTES_UPLOADED: AtomicU64 = AtomicU64::new(0);
pub(crate) static BIND_GROUPS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Totals since the process started (or, after [`GpuCounters::delta`], over an interval).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuCounters {
    /// `queue.submit` calls.
    pub submits: u64,
    /// Compute dispatches submitted.
    pub dispatches: u64,
    /// Reads that waited for the GPU to finish everything queued (each one a full drain).
    pub readbacks: u64,
    /// New wgpu buffers of any kind (tensors, staging, parameters); a buffer handed out again by
    /// the pool is not counted.
    pub buffer_allocations: u64,
    /// Kernels compiled into pipelines (each kernel once per process).
    pub pipeline_compilations: u64,
    /// Bytes written from the host into GPU buffers (tensor uploads; not kernel parameters).
    pub bytes_uploaded: u64,
    /// Bind groups created.
    pub bind_groups: u64,
}

/// A snapshot of the process-wide counters.
pub fn counters() -> GpuCounters {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    GpuCounters {
        submits: get(&SUBMITS),
        dispatches: get(&DISPATCHES),
        readbacks: get(&READBACKS),
        buffer_allocations: get(&BUFFER_ALLOCATIONS),
        pipeline_compilations: get(&PIPELINE_COMPILATIONS),
        bytes_uploaded: get(&BYTES_UPLOADED),
        bind_groups: get(&BIND_GROUPS),
    }
}

/// Counts averaged over decoded tokens; field names are the keys `--stats` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PerToken {
    pub gpu_submits_per_token: f64,
    pub gpu_dispatches_per_token: f64,
    pub gpu_readbacks_per_token: f64,
    pub gpu_buffer_allocations_per_token: f64,
    pub gpu_pipeline_compilations_per_token: f64,
    pub gpu_bytes_uploaded_per_token: f64,
    pub gpu_bind_groups_per_token: f64,
}

impl PerToken {
    /// `(key, value)` pairs in a fixed order, for a JSON object or a table.
    pub fn fields(&self) -> [(&'static str, f64); 7] {
        [
            ("gpu_submits_per_token", self.gpu_submits_per_token),
            ("gpu_dispatches_per_token", self.gpu_dispatches_per_token),
            ("gpu_readbacks_per_token", self.gpu_readbacks_per_token),
            ("gpu_buffer_allocations_per_token", self.gpu_buffer_allocations_per_token),
            ("gpu_pipeline_compilations_per_token", self.gpu_pipeline_compilations_per_token),
            ("gpu_bytes_uploaded_per_token", self.gpu_bytes_uploaded_per_token),
            ("gpu_bind_groups_per_token", self.gpu_bind_groups_per_token),
        ]
    }
}

impl GpuCounters {
    /// What happened between `earlier` and `self` (saturating, so snapshots taken in the wrong
    /// order give zeros rather than wrapping).
    pub fn delta(&self, earlier: &GpuCounters) -> GpuCounters {
        GpuCounters {
            submits: self.submits.saturating_sub(earlier.submits),
            dispatches: self.dispatches.saturating_sub(earlier.dispatches),
            readbacks: self.readbacks.saturating_sub(earlier.readbacks),
            buffer_allocations: self.buffer_allocations.saturating_sub(earlier.buffer_allocations),
            pipeline_compilations: self.pipeline_compilations.saturating_sub(earlier.pipeline_compilations),
            bytes_uploaded: self.bytes_uploaded.saturating_sub(earlier.bytes_uploaded),
            bind_groups: self.bind_groups.saturating_sub(earlier.bind_groups),
        }
    }

    /// These counts divided by `tokens` (zeros for no tokens).
    pub fn per_token(&self, tokens: usize) -> PerToken {
        let per = |v: u64| if tokens == 0 { 0.0 } else { v as f64 / tokens as f64 };
        PerToken {
            gpu_submits_per_token: per(self.submits),
            gpu_dispatches_per_token: per(self.dispatches),
            gpu_readbacks_per_token: per(self.readbacks),
            gpu_buffer_allocations_per_token: per(self.buffer_allocations),
            gpu_pipeline_compilations_per_token: per(self.pipeline_compilations),
            gpu_bytes_uploaded_per_token: per(self.bytes_uploaded),
            gpu_bind_groups_per_token: per(self.bind_groups),
        }
    }
}
