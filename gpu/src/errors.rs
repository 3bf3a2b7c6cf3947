//! Turning wgpu's errors into `Result`s. Work is recorded and submitted in batches, so a
//! validation or out-of-memory error surfaces at the next submission, caught by an error scope,
//! and is reported by the op that submits. Errors outside any scope and a lost device are kept
//! here and reported by the next call.

use std::sync::Mutex;

use tensor::{Error, Result};

static UNCAPTURED: Mutex<Option<String>> = Mutex::new(None);
static LOST: Mutex<Option<String>> = Mutex::new(None);

pub fn record_uncaptured(message: String) {
    let mut slot = UNCAPTURED.lock().unwrap_or_else(|p| p.into_inner());
    slot.get_or_insert(message);
}

pub fn record_lost(message: String) {
    let mut slot = LOST.lock().unwrap_or_else(|p| p.into_inner());
    slot.get_or_insert(message);
}

/// An error recorded since the last check, as the error of `op`.
pub fn take(op: &str) -> Result<()> {
    if let Some(lost) = LOST.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        return Err(Error::backend(
            op,
            format!("the GPU device was lost ({lost}); restart the program, or run with --device cpu"),
        ));
    }
    if let Some(msg) = UNCAPTURED.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(Error::backend(op, format!("GPU error: {msg}")));
    }
    Ok(())
}

/// Runs `f` inside validation and out-of-memory error scopes, turning what they catch into an
/// error of `op`.
pub fn scoped<T>(device: &wgpu::Device, op: &str, f: impl FnOnce() -> T) -> Result<T> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let value = f();
    let validation = pollster::block_on(validation.pop());
    let oom = pollster::block_on(oom.pop());
    if let Some(e) = oom {
        return Err(Error::backend(op, format!("the GPU is out of memory: {e}")));
    }
    if let Some(e) = validation {
        return Err(Error::backend(op, format!("GPU validation error: {e}")));
    }
    take(op)?;
    Ok(value)
}
