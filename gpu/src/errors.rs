//! Turning wgpu's errors into `Result`s. Work is recorded and submitted in batches, so a
//! validation or out-of-memory error surfaces at the next submission, caught by an error scope,
//! and is reported by the op that submits. Errors outside any scope and a lost device are kept in
//! the device's [`DeviceErrors`] and reported by the next call; a lost device stays lost, so every
//! later call fails at once with the same advice instead of handing work to a dead device.

use std::sync::Mutex;

use tensor::{Error, Result};

use crate::context::Context;

/// What wgpu reported outside any call: kept per device, so two devices in one process (a test
/// that loses one on purpose, say) do not see each other's failures.
#[derive(Default)]
pub struct DeviceErrors {
    uncaptured: Mutex<Option<String>>,
    lost: Mutex<Option<String>>,
}

impl DeviceErrors {
    /// An error raised outside any error scope; the first one is kept until reported.
    pub fn record_uncaptured(&self, message: String) {
        let mut slot = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(message);
    }

    /// wgpu's device-lost callback: a driver reset, a GPU removed, a timeout, or `destroy`.
    pub fn record_lost(&self, message: String) {
        let mut slot = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(message);
    }

    /// The error of `op` on a lost device, if this one is lost.
    pub fn check_lost(&self, op: &str) -> Result<()> {
        match self.lost.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(lost) => Err(Error::backend(
                op,
                format!("the GPU device was lost ({lost}); restart the program, or run with --device cpu"),
            )),
            None => Ok(()),
        }
    }

    /// An error recorded since the last check, as the error of `op`.
    pub fn take(&self, op: &str) -> Result<()> {
        self.check_lost(op)?;
        if let Some(msg) = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(Error::backend(op, format!("GPU error: {msg}")));
        }
        Ok(())
    }
}

/// Runs `f` inside validation and out-of-memory error scopes, turning what they catch into an
/// error of `op`. A device already lost is reported before `f` runs.
pub fn scoped<T>(ctx: &Context, op: &str, f: impl FnOnce() -> T) -> Result<T> {
    ctx.errors.check_lost(op)?;
    let device = &ctx.device;
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let value = f();
    let validation = pollster::block_on(validation.pop());
    let oom = pollster::block_on(oom.pop());
    // A loss during `f` explains whatever the scopes caught, so it is reported first.
    ctx.errors.check_lost(op)?;
    if let Some(e) = oom {
        return Err(Error::backend(op, format!("the GPU is out of memory: {e}")));
    }
    if let Some(e) = validation {
        return Err(Error::backend(op, format!("GPU validation error: {e}")));
    }
    ctx.errors.take(op)?;
    Ok(value)
}
