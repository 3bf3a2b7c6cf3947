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
//! first), so a prefill's large activations are not held for the rest of a generation, and at
//! most [`MAX_CELLS`] cells.

use std::any::TypeId;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{BufferRef, CpuBuffer, HostData};

/// The largest vector kept: 4 MiB. A decoding step's largest is its logits, 0.6 MB for a
/// 151,936-token vocabulary, 1 MB for 262,144.
pub const MAX_VECTOR_BYTES: usize = 4 << 20;
/// All vectors kept together: 16 MiB, what the resident memory may grow by for the pool (a
/// decoding step of the 1.7B-sized models needs a few MB of it).
pub const MAX_BYTES: usize = 16 << 20;
/// Shared cells kept, each a few dozen bytes.
pub const MAX_CELLS: usize = 4096;
/// Sizes remembered as asked for (16 bytes each).
const MAX_WANTED: usize = 1 << 16;

/// A kept vector, as the raw parts of a `Vec<T>` for the `T` of its key.
struct Free {
    ptr: *mut u8,
    bytes: usize,
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
    kept(n).unwrap_or_else(|| Vec::with_capacity(n))
}

/// `n` default values (zeros for numbers), as `vec![T::default(); n]`: a kept vector filled, or
/// a new one from the allocator (which hands out large ones as zeroed pages, with no fill).
pub fn zeroed<T: Copy + Default + 'static>(n: usize) -> Vec<T> {
    match kept(n) {
        Some(mut v) => {
            v.resize(n, T::default());
            v
        }
        None => vec![T::default(); n],
    }
}

/// A kept empty vector of `T` with capacity `n`, if there is one.
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
    // SAFETY: kept by `give::<T>` from a Vec<T> of capacity n (the key), not used since.
    Some(unsafe { Vec::from_raw_parts(free.ptr.cast::<T>(), 0, n) })
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
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: the elements are plain data (numbers) with nothing to drop; only the allocation
    // is kept.
    unsafe { v.set_len(0) };
    let stamp = p.stamp;
    p.stamp += 1;
    p.vectors.entry(key).or_default().push(Free { ptr: v.as_mut_ptr().cast::<u8>(), bytes, stamp });
    p.bytes += bytes;
    // Over the bound: free the oldest vectors, the first of some list (each list is in the
    // order its vectors were kept; `kept` takes the newest). A search over the lists, but only
    // past the bound, which a decoding step's few MB do not reach.
    if p.bytes > MAX_BYTES {
        p.vectors.retain(|_, list| !list.is_empty());
    }
    while p.bytes > MAX_BYTES {
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
        for i in 0..100usize {
            give(zeroed::<u32>((1 << 20) - 7 * i));
        }
        let bytes = pool().as_ref().map_or(0, |p| p.bytes);
        assert!(bytes <= MAX_BYTES, "{bytes} bytes kept");
    }

    #[test]
    fn the_oldest_vector_goes_first_past_the_bound() {
        // Five vectors of just under 4 MiB, 20 MiB together: past the 16 MiB bound, so at least
        // one of them is freed (whatever other tests keep meanwhile), and the first one kept goes
        // before the others.
        let sizes: Vec<usize> = (0..5).map(|i| (1 << 20) - 101 - i).collect();
        let vectors: Vec<Vec<f32>> = sizes.iter().map(|&n| zeroed(n)).collect();
        vectors.into_iter().for_each(give);
        let kept = |n: usize| pool().as_ref().and_then(|p| p.vectors.get(&(TypeId::of::<f32>(), n)).map(Vec::len));
        assert_eq!(kept(sizes[0]).unwrap_or(0), 0, "the oldest must be freed first");
    }

    #[test]
    fn a_size_no_op_asked_for_is_freed_not_kept() {
        let v = vec![1.5f64; 4321];
        give(v);
        let kept = pool().as_ref().and_then(|p| p.vectors.get(&(TypeId::of::<f64>(), 4321)).map(Vec::len));
        assert_eq!(kept.unwrap_or(0), 0);
    }
}
