//! How many heap allocations a decoded token makes on the CPU, counted by a global allocator
//! around this test binary, through the 4-layer qwen3 fixture: none, with f32 or bf16 weights
//! (bf16 also packed into panels, where the CPU has AVX512_BF16) and a KV cache kept as computed or
//! in f16 (what `llm generate` keeps), contiguous or paged
//! (the server's blocks: the block table is shared with the step's attention, not copied, and
//! the paged kernel's queries, scores and outputs use the per-thread scratch).
//!
//! The count went 2,519 -> 569 (shapes and strides inline, `tensor::Dims`) -> 246 (static error
//! text for the "no fused kernel here" answers, inline merged dims and permutations, attention's
//! scratch reused, `Var::untracked`) -> 0: every op's output buffer and its shared cell come from
//! the CPU's pool of recycled buffers (`tensor::cpu::pool`), kernels give their temporaries back
//! to it, attention keeps its scores per thread, and the lists a layer built (fused projections'
//! weights and results, the KV cache's views, an op's inputs, `Var::dims`) are arrays or inline.
//! The count must not grow with the position either (nothing per cached token: the occasional
//! 1 once seen at positions 16 and 32 was the scores scratch growing by doubling, now made
//! 256 KiB at once).
//!
//! Only the threads a decoding step runs on are counted: the test's own and rayon's workers.
//! The test harness's main thread makes its first blocking wait on the test's result at a moment
//! the scheduler picks (a few small allocations, seen at steps 11-12 on a busy 2-core machine),
//! and rayon's workers register with their work-stealing deques' memory reclamation the first
//! time they look for work (~2 KB each, seen as late as step 24 when the pool had just started):
//! neither belongs to a token, so the harness's thread is not counted and the pool is started
//! and every worker has run a job before the first step.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use llm::models::{LoadOptions, load};
use nn::attention::BlockPool;
use tensor::{DType, Device, Tensor};

mod common;
use common::fixture;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread's allocations are counted: set on the test's thread and on rayon's
    /// workers. A const initialiser with no destructor, so reading it never allocates.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// Adds one to the count when the calling thread is one a decoding step runs on.
fn count() {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Measured 0 a token; the bound is slack for rayon's own bookkeeping (its queue of jobs handed
/// in from outside the pool takes a new block every 63 jobs), not room for an op to allocate
/// again (one allocating per layer would add 4, per token 1 at each of the 30 steps checked).
const MAX_PER_TOKEN: usize = 2;

#[test]
fn a_decoded_token_allocates_nothing_once_the_pool_is_warm() -> llm::Result<()> {
    let cpu = Device::cpu();
    // Every rayon worker runs a job (and so has found work through its deques once) and is
    // counted from here on, as this thread is.
    rayon::broadcast(|_| COUNTED.set(true));
    COUNTED.set(true);
    // (weights, weight dtype, cache dtype, paged: the server's cache of blocks, bf16 weights
    // packed into panels as `llm generate` packs them where the CPU has AVX512_BF16).
    let cases = [
        ("f32", Some(DType::F32), None, false, false),
        ("bf16", Some(DType::BF16), None, false, false),
        ("bf16", Some(DType::BF16), Some(DType::F16), false, false),
        ("f32", Some(DType::F32), None, true, false),
        ("bf16", Some(DType::BF16), Some(DType::F16), true, false),
        ("bf16 in panels", Some(DType::BF16), Some(DType::F16), false, true),
    ];
    for (name, weight_dtype, kv_dtype, paged, panels) in cases {
        let mut loaded = load(&fixture("qwen3"), &LoadOptions { device: cpu.clone(), weight_dtype })?;
        if panels {
            llm::models::pack::pack_bf16_panels(&loaded.model)?;
        }
        loaded.model.kv_dtype = kv_dtype;
        // Blocks of 4 positions, so the 40 steps cross ten block boundaries.
        let blocks = BlockPool::new(64 * loaded.model.layers.len(), 4)?;
        let counts = autograd::no_grad(|| -> llm::Result<Vec<usize>> {
            let mut caches = if paged { loaded.model.new_paged_caches(&blocks) } else { loaded.model.new_caches() };
            // As `llm generate` and the server do: room for the whole generation up front.
            caches.iter_mut().for_each(|c| c.reserve(40));
            let mut counts = Vec::new();
            for p in 0..40 {
                let id = Tensor::from_vec(vec![(p * 7 % 50) as u32], [1, 1], &cpu)?;
                let before = ALLOCATIONS.load(Ordering::Relaxed);
                let logits = loaded.model.forward_last(&id, p, Some(&mut caches))?;
                counts.push(ALLOCATIONS.load(Ordering::Relaxed) - before);
                drop(logits);
            }
            Ok(counts)
        })?;
        // The first steps fill the pool and the caches; from the tenth on the count is the steady one.
        let steady = &counts[10..];
        let most = *steady.iter().max().unwrap_or(&0);
        let cache = if paged { "paged cache" } else { "cache" };
        eprintln!("allocations per decoded token, {name} weights, {cache} {kv_dtype:?}: {steady:?}");
        assert!(
            most <= MAX_PER_TOKEN,
            "{name} weights, {cache} {kv_dtype:?}: a decoded token made {most} allocations; the bound is {MAX_PER_TOKEN}"
        );
    }
    Ok(())
}
