//! Large f32 buffers kept when their tensor is dropped, handed to the next op that asks for
//! the same length. A forward pass allocates the same shapes layer after layer (a prefill of 512
//! tokens: a dozen buffers of 2 to 12 MB per layer). Freed, glibc gives such blocks back to the
//! system, and the next allocation gets fresh pages that the kernel zeroes on first touch: a
//! tenth of a bf16 prefill went to `clear_page` under `perf`. Reused, they cost nothing.
//!
//! A buffer from [`take_f32`] holds stale values (initialised f32s, so this is safe Rust), for
//! kernels that write every element; under `debug_assertions` they are NaN, so a kernel that
//! relied on zeros fails its tests. Small buffers are left to the allocator (its heap reuses
//! them without system calls), and the pool holds at most [`MAX_BYTES`]: what it keeps counts
//! in the process's resident memory.

use std::collections::HashMap;
use std::sync::Mutex;

/// Buffers below this many elements (256 KB) are not kept.
const MIN_LEN: usize = 64 * 1024;
/// The most the pool keeps in all.
pub const MAX_BYTES: usize = 128 << 20;
/// The most buffers of one length it keeps.
const MAX_PER_LEN: usize = 8;

struct Pool {
    by_len: HashMap<usize, Vec<Vec<f32>>>,
    bytes: usize,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    let mut guard = POOL.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(|| Pool { by_len: HashMap::new(), bytes: 0 }))
}

/// A buffer of `n` f32s whose values are unspecified (a kept buffer's old values, or zeros):
/// for a kernel that writes every element.
pub fn take_f32(n: usize) -> Vec<f32> {
    if n >= MIN_LEN
        && let Some(mut v) = with_pool(|p| {
            let v = p.by_len.get_mut(&n)?.pop()?;
            p.bytes -= n * 4;
            Some(v)
        })
    {
        if cfg!(debug_assertions) {
            v.fill(f32::NAN);
        }
        return v;
    }
    vec![0.0; n]
}

/// Keeps `v` for a later [`take_f32`] of its length, if it is large, exactly sized and the pool
/// has room; else frees it.
pub fn give_f32(v: Vec<f32>) {
    let n = v.len();
    if n < MIN_LEN || v.capacity() != n {
        return;
    }
    with_pool(|p| {
        let list = p.by_len.entry(n).or_default();
        if list.len() < MAX_PER_LEN && p.bytes + n * 4 <= MAX_BYTES {
            list.push(v);
            p.bytes += n * 4;
        }
    });
}

/// Bytes the pool holds now.
pub fn kept_bytes() -> usize {
    with_pool(|p| p.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_buffer_given_back_is_taken_again() {
        let n = MIN_LEN + 12_345;
        let v = vec![1.0f32; n];
        let ptr = v.as_ptr();
        give_f32(v);
        let again = take_f32(n);
        assert_eq!((again.len(), again.as_ptr()), (n, ptr));
        if cfg!(debug_assertions) {
            assert!(again.iter().all(|x| x.is_nan()), "stale values are poisoned in debug builds");
        }
    }
}
