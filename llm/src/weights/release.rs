//! Handing a memory-mapped file's pages back once their bytes have been copied out.
//!
//! A mapped page that has been read counts towards the process's resident memory for as long as
//! the map lives, so loading a checkpoint used to peak at twice its size: every tensor's pages
//! next to the tensor made from them. Copied or decoded tensors release their range at once.

use memmap2::Mmap;

/// Tells the kernel that `len` bytes of `mmap` from `start` will not be read again soon, so its
/// pages stop counting towards resident memory. Advice only: a later read faults them back in
/// from the file, and failure changes nothing.
pub(crate) fn release(mmap: &Mmap, start: usize, len: usize) {
    #[cfg(unix)]
    {
        // SAFETY: the map is a read-only private mapping of a file; dropping its clean pages
        // only makes a later read fault them in from the file again, so no byte read through
        // the map (or any slice of it still alive) changes.
        let advised = unsafe { mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len) };
        let _ = advised;
    }
    #[cfg(not(unix))]
    let _ = (mmap, start, len);
}
