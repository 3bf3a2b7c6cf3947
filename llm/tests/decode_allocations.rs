//! How many heap allocations a decoded token makes on the CPU, counted by a global allocator
//! around this test binary, through the 4-layer qwen3 fixture.
//!
//! Not zero yet: each op still returns a new output buffer (its data, the `Arc` that shares it).
//! What this pins is what was taken out: shapes and strides are kept inline (`tensor::Dims`),
//! which cut the count from 2,519 to 569 a token; then the "no fused kernel here" errors that
//! the CPU returns to the fused ops before they fall back (two strings each, 56 a token, now
//! `Cow`s of static text), the strided kernels' merged dims (`coalesce`, 48), attention's
//! per-head scratch and a transpose's permutation (32 and 21) took it to 364, results of ops
//! that record nothing kept without a shared cell (`Var::untracked`, 93) to 271, and the
//! inverse permutation a permute keeps for its gradient held inline (25) to 246. The count
//! must not grow with the position (nothing per cached token; a few blocks of slack for the
//! test harness's own threads, which the counter also sees).
//! A change that makes every view allocate again fails here; one that takes more out should
//! lower the bound.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use llm::models::{LoadOptions, load};
use tensor::{Device, Tensor};

mod common;
use common::fixture;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Measured 246 a token (62 a layer with the embedding and head); the bound leaves room for
/// small changes, not for any of the above allocating again (569 before, 2,519 before that).
const MAX_PER_TOKEN: usize = 270;
/// How far the count may wander between positions (see the test).
const SLACK: usize = 8;

#[test]
fn a_decoded_token_allocates_a_bounded_count_that_does_not_grow_with_the_position() -> llm::Result<()> {
    let cpu = Device::cpu();
    let loaded = load(&fixture("qwen3"), &LoadOptions::f32(&cpu))?;
    let counts = autograd::no_grad(|| -> llm::Result<Vec<usize>> {
        let mut caches = loaded.model.new_caches();
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
    // The first steps may fill caches and pools; from the tenth on the count is the steady one.
    let steady = &counts[10..];
    let most = *steady.iter().max().unwrap_or(&0);
    eprintln!("allocations per decoded token: {steady:?}");
    assert!(most <= MAX_PER_TOKEN, "a decoded token made {most} allocations; the bound is {MAX_PER_TOKEN}");
    // The counter sees every thread, and the test harness's own threads allocate now and then
    // (once, 2 blocks at one position in CI), so the count may wander by a few; something kept
    // per cached position would add one or more at every one of the 30 steps.
    let least = *steady.iter().min().unwrap_or(&0);
    assert!(most - least <= SLACK, "the allocations per token change with the position: {steady:?}");
    Ok(())
}
