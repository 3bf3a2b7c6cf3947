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
//! The advice is given before the buffer is first written, so its pages are made huge as they
//! are faulted in. Where the kernel says no (huge pages off, other OSes) nothing changes.

/// Below this a buffer stays on small pages: a huge page is 2 MiB.
const MIN_BYTES: usize = 2 << 20;

/// Asks for `len` bytes from `ptr`, not yet written, to be backed by huge pages.
pub fn advise(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::{c_int, c_void};
        unsafe extern "C" {
            fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int;
        }
        const MADV_HUGEPAGE: c_int = 14;
        const PAGE: usize = 4096;
        if len < MIN_BYTES {
            return;
        }
        // madvise wants a page-aligned start; the page holding the buffer's first byte is this
        // process's memory either way.
        let start = ptr as usize & !(PAGE - 1);
        // SAFETY: the advice only changes how the kernel backs these pages of this process's
        // memory; it reads and writes none of it. A refusal is ignored: the pages stay small.
        unsafe { madvise(start as *mut c_void, len + (ptr as usize - start), MADV_HUGEPAGE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}
