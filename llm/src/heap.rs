//! The C allocator's settings for a process that runs models: keep freed activations for reuse
//! ([`keep_freed_memory`]) and hand freed pages back where they would otherwise pin memory
//! ([`return_freed`]). glibc's knobs; elsewhere these do nothing.

/// Asks the C allocator to keep freed memory for reuse instead of handing it back to the kernel.
///
/// Why: every op writes a fresh output tensor, and a 512-token prefill of a Qwen3-0.6B-shaped
/// model allocates some 700 MB of short-lived activations. glibc's malloc serves large blocks
/// with `mmap` and trims the top of its heaps on free, so those bytes came back as new pages each
/// time: ~186,000 page faults per prefill, each page zeroed by the kernel before use. With the
/// mmap threshold at its maximum (32 MiB: a layer's activations at a few thousand tokens stay
/// below it) and up to 64 MiB of free heap kept before trimming (more than a layer's working set
/// at that prompt length), freed activations are reused in place: ~66,000 faults, most of them
/// the first touch of the working set (docs/BENCHMARKS.md), while what is left after a prefill
/// still goes back, so resident memory while generating stays near the weights plus the cache.
/// One arena for every thread: with an arena per thread, each kept its own freed prefill
/// activations (a q8_0 Qwen3-0.6B-shaped model held 767-825 MiB while generating instead of
/// 646 MiB, with no measurable speed difference on 2 threads).
/// Only glibc has these knobs (`mallopt(3)`); elsewhere this does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        const M_ARENA_MAX: std::ffi::c_int = -8;
        // SAFETY: mallopt only adjusts allocator parameters; it runs before any thread starts.
        unsafe {
            mallopt(M_ARENA_MAX, 1);
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, 64 << 20);
        }
    }
}

/// Hands the pages of freed memory back to the kernel, wherever in the heap they lie (glibc's
/// `malloc_trim(3)`).
///
/// Why: [`keep_freed_memory`] gives memory back only from the top of the heap, so a block that
/// outlives the ones freed below it pins them:
/// - after a prefill (`cli::global::release_freed_memory`), a block allocated during it that
///   outlives it (a sampler's buffer, a decoding step's output): a q4_0 Qwen3-0.6B-shaped model
///   held 362 MiB while generating in some runs and 449-453 MiB in others. Trimming after the
///   prefill makes it the first figure every time; the decoding steps' few hundred KiB of
///   activations then come back as fresh pages once.
/// - while bf16 weights are packed into panels at load (`models::pack::pack_bf16_panels`): the
///   panels are mappings of their own, and each weight's loaded bytes, freed once packed, would
///   stay in the heap until the end (Qwen3-0.6B in bf16: 1,990 MiB at the peak of loading,
///   1,266 with the returns, 1,284-1,288 before the panels had mappings of their own).
///
/// Elsewhere than glibc this does nothing.
pub fn return_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim only returns free pages to the kernel; it is thread-safe.
        unsafe {
            malloc_trim(0);
        }
    }
}
