//! Recycled output buffers: what the CPU's ops write their results into.
//!
//! Why: a decoding step runs the same ops on the same shapes token after token, and every op
//! returns a new tensor, whose data and shared cell (`Arc<CpuBuffer>`) were two heap
//! allocations each, ~250 a token for a 4-layer model. When the last tensor holding a buffer is
//! dropped, [`release`] keeps the vector and the cell here instead of freeing them, and the next
//! op of the same size takes them back ([`take`], [`zeroed`], [`buffer`]): each step finds the
//! last one's buffers. It is what PyTorch's caching allocator and tinygrad's LRU allocator
//! do for device memory, here for host memory.
//!
//! Vectors are matched by element type and exact capacity (the sizes of a decoding step repeat
//! exactly; anything else allocates as before), and only sizes an op has asked for are kept (a
//! vector a caller handed in, a token list or a loss, is freed as before). What is kept is
//! bounded: vectors up to [`MAX_VECTOR_BYTES`] each and [`MAX_BYTES`] in all (the oldest go
//! first), and at most [`MAX_CELLS`] cells. Past [`STEADY_BYTES`], what has not been taken
//! back within [`LIFETIME`] later returns is freed, so a prefill's large activations, which
//! the next layer reuses, are not held for the rest of a generation.
//!
//! A kept vector remembers how many of its elements were written ([`overwritten`] hands those
//! back as they are): an op that writes every element of its output then skips the zero fill,
//! which for a prefill's activations of several MB each was a pass over memory per op (5% of a
//! 1.7B-shaped bf16 prefill in `memset`).

use std::any::TypeId;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{BufferRef, CpuBuffer, HostData};

/// The largest vector kept: 64 MiB. A decoding step's largest is its logits, 0.6 MB for a
/// 151,936-token vocabulary, 1 MB for 262,144; a 512-token prefill's is the FFN's gate and up
/// as one product, 25 MB at Qwen3-1.7B's 6,144 intermediate features, 59 MB at 14,336 (8B).
pub const MAX_VECTOR_BYTES: usize = 64 << 20;
/// All vectors kept together: 128 MiB while a prefill runs (one layer's FFN activations at the
/// 1.7B shape are 38 MB). Freed, they would mostly stay in the allocator's heap anyway: glibc
/// serves blocks of this size from its heap once one has been freed (its mmap threshold rises
/// to 32 MiB).
pub const MAX_BYTES: usize = 128 << 20;
/// What the pool keeps for good: 16 MiB (a decoding step of the 1.7B-sized models needs a few
/// MB). Above it, vectors older than [`LIFETIME`] are freed.
pub const STEADY_BYTES: usize = 16 << 20;
/// Returns to the pool (a decoding step of a 28-layer model makes several hundred) after which a
/// vector not taken back is freed while the pool holds more than [`STEADY_BYTES`].
pub const LIFETIME: u64 = 4096;
/// Every this many returns, the pool looks for vectors past their [`LIFETIME`].
const AGE_CHECK: u64 = 256;
/// Shared cells kept, each a few dozen bytes.
pub const MAX_CELLS: usize = 4096;
/// Sizes remembered as asked for (16 bytes each).
const MAX_WANTED: usize = 1 << 16;

/// A kept vector, as the raw parts of a `Vec<T>` for the `T` of its key.
struct Free {
    ptr: *mut u8,
    bytes: usize,
    /// Elements written: the vector's length when it was given back.
    init: usize,
    /// When it was kept, for the oldest-first eviction.
    stamp: u64,
}

/// The pool: vectors by (element type, capacity), each list oldest first, and cells.
struct Pool {
    /// Lists are kept when they empty (their room is reused at the next step); eviction drops
    /// the empty ones.
    vectors: HashMap<(TypeId, usize), Vec<Free>>,
    /// The (element type, capacity) pairs ops have asked for: only those are kept.
    wanted: HashSet<(TypeId, usize)>,
    bytes: usize,
    /// The next vector's stamp.
    stamp: u64,
    cells: Vec<BufferRef>,
}

// SAFETY: the raw pointers are owned allocations nobody else refers to (the vectors given up
// to the pool); they move between threads as a `Vec` would.
unsafe impl Send for Pool {}

impl Pool {
    fn new() -> Pool {
        Pool { vectors: HashMap::new(), wanted: HashSet::new(), bytes: 0, stamp: 0, cells: Vec::new() }
    }
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn pool() -> MutexGuard<'static, Option<Pool>> {
    POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An empty vector with room for `n` elements: a kept one of exactly that capacity if there is
/// one, else a new allocation.
pub fn take<T: 'static>(n: usize) -> Vec<T> {
    match kept(n) {
        Some(mut v) => {
            v.clear();
            v
        }
        None => Vec::with_capacity(n),
    }
}

/// `n` default values (zeros for numbers), as `vec![T::default(); n]`: a kept vector filled, or
/// a new one from the allocator (which hands out large ones as zeroed pages, with no fill).
pub fn zeroed<T: Copy + Default + 'static>(n: usize) -> Vec<T> {
    filled(n, false)
}

/// `n` values for an op that writes every one of them before anything reads them: a kept vector
/// with what it held (zeros past what was written), or a new zeroed one. Unlike [`zeroed`], no
/// pass over the kept memory.
pub fn overwritten<T: Copy + Default + 'static>(n: usize) -> Vec<T> {
    filled(n, true)
}

/// `n` values from a kept vector, keeping what it held when `keep_written` (zeros past it), or
/// zeros; else a new zeroed vector.
fn filled<T: Copy + Default + 'static>(n: usize, keep_written: bool) -> Vec<T> {
    match kept(n) {
        Some(mut v) => {
            if !keep_written {
                v.clear();
            }
            v.resize(n, T::default());
            v
        }
        None => vec![T::default(); n],
    }
}

/// A kept vector of `T` with capacity `n`, if there is one, holding the values it was given
/// back with.
fn kept<T: 'static>(n: usize) -> Option<Vec<T>> {
    let bytes = n * std::mem::size_of::<T>();
    if bytes == 0 || bytes > MAX_VECTOR_BYTES {
        return None;
    }
    let key = (TypeId::of::<T>(), n);
    let mut guard = pool();
    let p = guard.get_or_insert_with(Pool::new);
    let Some(free) = p.vectors.get_mut(&key).and_then(Vec::pop) else {
        // Sizes come and go with the shapes a program runs; the record starts over past a bound.
        if p.wanted.len() >= MAX_WANTED {
            p.wanted.clear();
        }
        p.wanted.insert(key);
        return None;
    };
    p.bytes -= free.bytes;
    // SAFETY: kept by `give::<T>` from a Vec<T> of capacity n (the key) and length `init`, not
    // used since: its first `init` elements are the values it held, and T is one of
    // `HostData`'s number types (`held_by_tensors`), for which any stored value is valid.
    Some(unsafe { Vec::from_raw_parts(free.ptr.cast::<T>(), free.init, n) })
}

/// The elements of `iter` (exactly `n` of them, or fewer) collected into a [`take`]n vector.
pub fn collect<T: 'static>(n: usize, iter: impl Iterator<Item = T>) -> Vec<T> {
    let mut v = take(n);
    v.extend(iter);
    v
}

/// [`give`] for the vector inside `data`: a released tensor's, or an op's temporary copy.
pub fn recycle(data: HostData) {
    crate::with_host_data!(data, v => give(v));
}

/// Keeps `v`'s allocation for a later [`take`] of the same type and capacity, or frees it when
/// it is too large, of a size no op asked for, or of a type no tensor holds. Kernels give their
/// temporaries back here, which would otherwise leave the pool one vector short at every step.
pub fn give<T: 'static>(v: Vec<T>) {
    let cap = v.capacity();
    let bytes = cap * std::mem::size_of::<T>();
    if bytes == 0 || bytes > MAX_VECTOR_BYTES || !held_by_tensors::<T>() {
        return;
    }
    let key = (TypeId::of::<T>(), cap);
    let mut guard = pool();
    let p = guard.get_or_insert_with(Pool::new);
    if !p.wanted.contains(&key) {
        return; // `v` is freed as it goes out of scope
    }
    // The elements are plain data (numbers) with nothing to drop; only the allocation and the
    // values written are kept.
    let mut v = std::mem::ManuallyDrop::new(v);
    let (ptr, init) = (v.as_mut_ptr().cast::<u8>(), v.len());
    let stamp = p.stamp;
    p.stamp += 1;
    p.vectors.entry(key).or_default().push(Free { ptr, bytes, init, stamp });
    p.bytes += bytes;
    evict_to(p, MAX_BYTES);
    // Above the steady size, now and then: free what has not been taken back for a lifetime.
    if p.bytes > STEADY_BYTES && p.stamp.is_multiple_of(AGE_CHECK) {
        let before = p.stamp.saturating_sub(LIFETIME);
        let mut freed = 0;
        for (&key, list) in p.vectors.iter_mut() {
            let old = list.iter().take_while(|f| f.stamp < before).count();
            for free in list.drain(..old) {
                freed += free.bytes;
                free_kept(key, free);
            }
        }
        p.bytes -= freed;
    }
}

/// Frees kept vectors, oldest first, until at most [`STEADY_BYTES`] are kept: for when a
/// prompt's prefill is done, so that its activations go back to the allocator (and from there
/// to the kernel, `llm`'s `release_freed_memory`) instead of waiting out their [`LIFETIME`].
pub fn shrink() {
    if let Some(p) = pool().as_mut() {
        evict_to(p, STEADY_BYTES);
    }
}

/// Frees the oldest vectors, the first of some list (each list is in the order its vectors
/// were kept; `kept` takes the newest), until at most `bound` bytes are kept. A search over the
/// lists, but only past the bound, which a decoding step's few MB do not reach.
fn evict_to(p: &mut Pool, bound: usize) {
    if p.bytes > bound {
        p.vectors.retain(|_, list| !list.is_empty());
    }
    while p.bytes > bound {
        let oldest = p.vectors.iter().filter_map(|(key, list)| list.first().map(|f| (f.stamp, *key))).min();
        let Some((_, key)) = oldest else { break };
        let free = p.vectors.get_mut(&key).expect("a key just found").remove(0);
        p.bytes -= free.bytes;
        free_kept(key, free);
    }
}

/// Whether `T` is one of `HostData`'s element types, the only ones kept.
fn held_by_tensors<T: 'static>() -> bool {
    let t = TypeId::of::<T>();
    [
        TypeId::of::<f32>(),
        TypeId::of::<f64>(),
        TypeId::of::<half::bf16>(),
        TypeId::of::<half::f16>(),
        TypeId::of::<u32>(),
        TypeId::of::<i64>(),
    ]
    .contains(&t)
}

/// Frees a kept vector of the element type its key names.
fn free_kept((type_id, cap): (TypeId, usize), free: Free) {
    macro_rules! free_as {
        ($($t:ty),*) => {
            $(if type_id == TypeId::of::<$t>() {
                // SAFETY: kept by `give::<$t>` with this capacity.
                drop(unsafe { Vec::from_raw_parts(free.ptr.cast::<$t>(), 0, cap) });
                return;
            })*
        };
    }
    free_as!(f32, f64, half::bf16, half::f16, u32, i64);
    unreachable!("only HostData's element types are kept");
}

/// A CPU buffer holding `data`: a kept cell if there is one, else a new one.
pub fn buffer(data: HostData) -> BufferRef {
    let cell = pool().as_mut().and_then(|p| p.cells.pop());
    match cell {
        Some(cell) => {
            let cpu = cell.as_any().downcast_ref::<CpuBuffer>().expect("the pool keeps CPU buffers only");
            *cpu.write() = data;
            cell
        }
        None => Arc::new(CpuBuffer::new(data)),
    }
}

/// Called as a tensor drops its handle on `buffer`: when that handle is the last one and the
/// buffer is the CPU's, its vector and its cell are kept for later ops instead of freed.
pub fn release(buffer: &BufferRef) {
    if Arc::strong_count(buffer) != 1 || Arc::weak_count(buffer) != 0 {
        return;
    }
    let Some(cpu) = buffer.as_any().downcast_ref::<CpuBuffer>() else { return };
    // The last handle: nobody else can read or clone it while this one is being dropped.
    recycle(std::mem::replace(&mut *cpu.write(), HostData::F32(Vec::new())));
    let mut guard = pool();
    if let Some(p) = guard.as_mut()
        && p.cells.len() < MAX_CELLS
    {
        p.cells.push(Arc::clone(buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held by the tests that fill the pool past its bounds, so that one's evictions do not
    /// take another's vectors between its steps.
    static BOUNDS: Mutex<()> = Mutex::new(());

    fn bounds() -> MutexGuard<'static, ()> {
        BOUNDS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many f32 vectors of capacity `n` the pool keeps.
    fn kept_f32(n: usize) -> usize {
        pool().as_ref().and_then(|p| p.vectors.get(&(TypeId::of::<f32>(), n)).map(Vec::len)).unwrap_or(0)
    }

    /// Asks for `count` f32 vectors of `n` values (so the size is wanted) and gives them back.
    fn give_f32s(n: usize, count: usize) {
        let vectors: Vec<Vec<f32>> = (0..count).map(|_| zeroed(n)).collect();
        vectors.into_iter().for_each(give);
    }

    #[test]
    fn a_released_vector_comes_back_for_the_same_type_and_capacity_only() {
        let v: Vec<f32> = zeroed(1234); // asked for, so the size is wanted
        let ptr = v.as_ptr();
        give(v);
        let other: Vec<u32> = take(1234);
        assert_ne!(other.as_ptr() as *const f32, ptr, "another type must not get it");
        let smaller: Vec<f32> = take(1233);
        assert_ne!(smaller.as_ptr(), ptr, "another capacity must not get it");
        let again: Vec<f32> = zeroed(1234);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn kept_bytes_stay_under_the_bound() {
        let _bounds = bounds();
        for i in 0..100usize {
            give(zeroed::<u32>((1 << 20) - 7 * i));
        }
        let bytes = pool().as_ref().map_or(0, |p| p.bytes);
        assert!(bytes <= MAX_BYTES, "{bytes} bytes kept");
    }

    #[test]
    fn the_oldest_vector_goes_first_past_the_bound() {
        let _bounds = bounds();
        // Five vectors of just under 32 MiB, 160 MiB together: past the 128 MiB bound, so at
        // least one of them is freed (whatever other tests keep meanwhile), and the first one
        // kept goes before the others.
        let sizes: Vec<usize> = (0..5).map(|i| (8 << 20) - 101 - i).collect();
        let vectors: Vec<Vec<f32>> = sizes.iter().map(|&n| zeroed(n)).collect();
        vectors.into_iter().for_each(give);
        assert_eq!(kept_f32(sizes[0]), 0, "the oldest must be freed first");
    }

    #[test]
    fn an_overwritten_vector_comes_back_as_it_was_left_and_a_zeroed_one_filled() {
        let mut v: Vec<f32> = overwritten(777);
        assert!(v.iter().all(|&x| x == 0.0), "a new one is zeroed");
        v.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32 + 0.5);
        let ptr = v.as_ptr();
        give(v);
        let again: Vec<f32> = overwritten(777);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.iter().enumerate().all(|(i, &x)| x == i as f32 + 0.5), "no fill");
        give(again);
        let zeros: Vec<f32> = zeroed(777);
        assert_eq!(zeros.as_ptr(), ptr);
        assert!(zeros.iter().all(|&x| x == 0.0));
        give(zeros);
        // Given back with fewer elements written than its room: the rest comes back zeroed.
        let mut part: Vec<f32> = take(777);
        assert_eq!(part.as_ptr(), ptr);
        part.extend([9.0; 10]);
        give(part);
        let tail: Vec<f32> = overwritten(777);
        assert_eq!(tail.len(), 777);
        assert!(tail[..10].iter().all(|&x| x == 9.0) && tail[10..].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn past_the_steady_size_a_vector_not_taken_back_for_a_lifetime_is_freed() {
        let _bounds = bounds();
        // Three vectors of 8 MiB: 24 MiB, above the 16 MiB steady size (whatever else is kept).
        let n = (2 << 20) - 13;
        give_f32s(n, 3);
        assert_eq!(kept_f32(n), 3);
        // A lifetime of other returns (a small size, taken back each time as a decoding step's
        // buffers are).
        for _ in 0..LIFETIME + 2 * AGE_CHECK {
            give(zeroed::<u32>(31));
        }
        assert_eq!(kept_f32(n), 0, "left past their lifetime");
    }

    #[test]
    fn shrinking_leaves_at_most_the_steady_size() {
        let _bounds = bounds();
        // Three vectors of 12 MiB, 36 MiB: after a shrink to 16 MiB at most one is left.
        let n = (3 << 20) - 17;
        give_f32s(n, 3);
        shrink();
        let kept = kept_f32(n);
        assert!(kept <= 1, "{kept} of 12 MiB kept");
    }

    #[test]
    fn a_size_no_op_asked_for_is_freed_not_kept() {
        let v = vec![1.5f64; 4321];
        give(v);
        let kept = pool().as_ref().and_then(|p| p.vectors.get(&(TypeId::of::<f64>(), 4321)).map(Vec::len));
        assert_eq!(kept.unwrap_or(0), 0);
    }
}
