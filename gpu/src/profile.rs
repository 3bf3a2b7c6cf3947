//! GPU time per kernel from timestamp queries (`TIMESTAMP_QUERY`, where the device has it), so a
//! profile can name the slowest kernels (`llm generate --stats` lists them). Off by default;
//! `LLM_GPU_PROFILE=1` turns it on from the device's creation, `Profile::set` at any time. While on, each dispatch is encoded in a
//! compute pass of its own with a timestamp at its start and end, and each submission waits for
//! its timestamps; the run is then slower, and the counters of submissions, readbacks and
//! allocations do not describe an unprofiled one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The time one kernel (a pipeline, by its key) took over the dispatches profiled.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelTime {
    pub name: String,
    pub dispatches: u64,
    pub seconds: f64,
}

#[derive(Default)]
pub struct Profile {
    on: AtomicBool,
    totals: Mutex<HashMap<String, KernelTime>>,
}

impl Profile {
    /// Starts (or stops) timing dispatches submitted from now on; the device must have
    /// timestamp queries (`Context::features`), or nothing is recorded.
    pub fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, name: &str, seconds: f64) {
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let entry = totals
            .entry(name.to_string())
            .or_insert_with(|| KernelTime { name: name.to_string(), ..Default::default() });
        entry.dispatches += 1;
        entry.seconds += seconds;
    }

    /// The `n` kernels with the most time so far, slowest first.
    pub fn slowest(&self, n: usize) -> Vec<KernelTime> {
        let mut all: Vec<KernelTime> =
            self.totals.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        all.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then_with(|| a.name.cmp(&b.name)));
        all.truncate(n);
        all
    }

    /// Forgets the times recorded so far.
    pub fn reset(&self) {
        self.totals.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
