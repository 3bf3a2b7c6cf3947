//! Transparent huge pages for the large host buffers a checkpoint is loaded into.
//!
//! Why: Linux backs memory with 4 KiB pages unless a region asks for 2 MiB ones
//! (`madvise(MADV_HUGEPAGE)`, Documentation/admin-guide/mm/transhuge.rst), and the common
//! setting (`/sys/kernel/mm/transparent_hugepage/enabled` = `madvise`) gives them to no one who
//! does not ask. A decoding step reads every weight once, a prefill's GEMM packs every weight
//! once: one TLB entry per 4 KiB of a few GB. Measured on an Emerald Rapids Xeon (2 threads,
//! one process alternating a 1 GiB bf16 weight on each kind of page): the decode
//! matrix-vector product 24.6/25.1/23.9 -> 25.3/26.8/24.7 GB/s, the prefill's GEMM 1394/1507/
//! 1199 -> 1468/1550/1215 GFLOP/s.
//!
//! Two ways in:
//! - [`advise`], for a buffer from the allocator (a checkpoint's tensors, `HostData`): the advice
//!   is given before the buffer is first written, so its pages are made huge as they are faulted
//!   in, but only those in whole 2 MiB that no earlier buffer touched (see [`Mapping`]).
//! - [`Mapping`], memory of its own on 2 MiB pages from its first byte, for what is packed at
//!   load and streamed by every decoding step (the bf16 panels, `aligned::Lines::zeroed_huge`).
//!
//! Where the kernel says no (huge pages off, other OSes) nothing changes.

/// A huge page: below it a buffer stays on small pages; the alignment and unit of [`Mapping`].
const HUGE: usize = 2 << 20;

/// Asks for `len` bytes from `ptr`, not yet written, to be backed by huge pages.
pub fn advise(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        if len < HUGE {
            return;
        }
        // madvise wants a page-aligned start; the page holding the buffer's first byte is this
        // process's memory either way.
        let start = ptr as usize & !(sys::PAGE - 1);
        // SAFETY: the advice only changes how the kernel backs these pages of this process's
        // memory; it reads and writes none of it. A refusal is ignored: the pages stay small.
        unsafe { sys::madvise(start as *mut _, len + (ptr as usize - start), sys::MADV_HUGEPAGE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

/// Zeroed memory of its own, starting on a 2 MiB boundary and advised onto 2 MiB pages before
/// anything touches it: a fresh anonymous mapping, not the allocator's. Only where the OS and
/// the constants below are known (Linux on x86-64 and aarch64); elsewhere [`Mapping::zeroed`]
/// says no and the caller allocates as usual.
///
/// Why not [`advise`] on an allocation: glibc hands out recycled heap memory for any size below
/// its mmap threshold (32 MiB in `llm`, which holds it there; glibc raises it that far by itself
/// as large buffers are freed), and each loaded weight's bytes are freed once packed. Pages a
/// previous buffer touched stay small whatever the advice, and a buffer that does not start on
/// a 2 MiB boundary keeps small pages at both ends. Qwen3-0.6B in bf16, loaded by `llm
/// generate`: 512 of its 1,317 MB resident were on huge pages (each layer's 29 MB of panels:
/// 6 MB); in mappings, 1,192 of 1,319. What that is worth: a Zen 4 EPYC (2 threads) streaming
/// the 0.6B shape's 1.2 GB of panels with the decoding kernel, huge against small pages in one
/// process, alternating (medians of five passes): 54-59 against 48-54 GB/s when the machine's
/// bandwidth is high, 33-36 against 31-35 when it is low (docs/BENCHMARKS.md).
///
/// The last partial 2 MiB stays on small pages (not advised), so no buffer holds more than its
/// own size rounded to 4 KiB.
pub struct Mapping {
    ptr: std::ptr::NonNull<u8>,
    /// Bytes asked for.
    len: usize,
    /// Bytes mapped from `ptr` (`len` rounded up to whole 4 KiB pages).
    mapped: usize,
}

// SAFETY: the mapping is owned memory, as a Vec's is: whoever holds the Mapping alone reads
// and writes it (through &/&mut), and it is unmapped once, on drop.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

/// The Linux calls both ways in use. The mapping flags' values are those of x86-64 and aarch64
/// (other architectures number some differently), so [`Mapping`] is made on those only.
#[cfg(target_os = "linux")]
mod sys {
    use std::ffi::{c_int, c_long, c_void};
    unsafe extern "C" {
        pub fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, offset: c_long)
        -> *mut c_void;
        pub fn munmap(addr: *mut c_void, len: usize) -> c_int;
        pub fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int;
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub const PROT_READ: c_int = 1;
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub const PROT_WRITE: c_int = 2;
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub const MAP_PRIVATE: c_int = 2;
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub const MAP_ANONYMOUS: c_int = 0x20;
    pub const MADV_HUGEPAGE: c_int = 14;
    pub const PAGE: usize = 4096;
}

impl Mapping {
    /// `len` zero bytes on their own 2 MiB-aligned mapping; `None` below one huge page (small
    /// pages serve it as well), where mappings are not supported, or if the OS refuses.
    pub fn zeroed(len: usize) -> Option<Mapping> {
        #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            use std::ffi::c_void;
            if len < HUGE {
                return None;
            }
            let mapped = len.next_multiple_of(sys::PAGE);
            // Room to slide the start onto a 2 MiB boundary; the slack is unmapped after.
            let reserve = mapped.checked_add(HUGE)?;
            let (prot, flags) = (sys::PROT_READ | sys::PROT_WRITE, sys::MAP_PRIVATE | sys::MAP_ANONYMOUS);
            // SAFETY: a new anonymous mapping chosen by the kernel; nothing else is touched.
            let base = unsafe { sys::mmap(std::ptr::null_mut(), reserve, prot, flags, -1, 0) };
            if base as isize == -1 || base.is_null() {
                return None;
            }
            let base = base as usize;
            let start = base.next_multiple_of(HUGE);
            // SAFETY: both ranges lie in the reservation just made, outside [start, start +
            // mapped), and are whole pages (base, start and mapped are page multiples).
            unsafe {
                if start > base {
                    sys::munmap(base as *mut c_void, start - base);
                }
                let end = start + mapped;
                if base + reserve > end {
                    sys::munmap(end as *mut c_void, base + reserve - end);
                }
                // The full huge pages only. A refusal leaves small pages, which still work.
                let huge = len / HUGE * HUGE;
                sys::madvise(start as *mut c_void, huge, sys::MADV_HUGEPAGE);
            }
            let ptr = std::ptr::NonNull::new(start as *mut u8)?;
            Some(Mapping { ptr, len, mapped })
        }
        #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
        {
            let _ = len;
            None
        }
    }

    /// The bytes, to read.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes from `ptr` are mapped, readable, and initialised (zero at first).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, to write.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
        // SAFETY: the mapping made in `zeroed`, unmapped once; no reference to it outlives self.
        unsafe {
            sys::munmap(self.ptr.as_ptr().cast(), self.mapped)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_is_zeroed_aligned_writable_and_only_for_large_buffers() {
        assert!(Mapping::zeroed(HUGE - 1).is_none());
        let len = 3 * HUGE + 100;
        let mapped = Mapping::zeroed(len);
        let supported = cfg!(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")));
        assert_eq!(mapped.is_some(), supported);
        let Some(mut m) = mapped else { return };
        assert_eq!(m.bytes().len(), len);
        assert_eq!(m.bytes().as_ptr() as usize % HUGE, 0);
        assert!(m.bytes().iter().all(|&b| b == 0));
        m.bytes_mut()[len - 1] = 7;
        m.bytes_mut()[0] = 3;
        assert_eq!((m.bytes()[0], m.bytes()[len - 1]), (3, 7));
    }
}
