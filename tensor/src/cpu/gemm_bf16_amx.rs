//! The bf16 GEMM of [`gemm_bf16`](super::gemm_bf16) on AMX tiles: the same math
//! (`C = bf16(A) @ B`, activations rounded to bf16 to nearest even, products of bf16 pairs summed
//! in f32) on Intel's Advanced Matrix Extensions, where the CPU has AMX-TILE and AMX-BF16
//! (Sapphire Rapids and later Xeons).
//!
//! Why: `vdpbf16ps` does 32 multiply-adds per instruction; one `tdpbf16ps` (Intel SDM,
//! "TDPBF16PS: Dot Product of BF16 Tiles Accumulated into Packed Single Precision Tile") does
//! 16 x 16 x 32 = 8,192, multiplying a 16 x 32 bf16 tile of A by a 32 x 16 tile of B (stored as
//! 16 rows of 16 bf16 *pairs*) into a 16 x 16 f32 tile of C, with the same per-pair rule
//! (`c += a.lo * b.lo + a.hi * b.hi`, products exact, sums rounded to nearest even, denormals
//! flushed). A prefill of bf16 weights is nearly all such products.
//!
//! The tiles: eight registers `tmm0`-`tmm7` of up to 16 rows x 64 bytes, shaped by a 64-byte
//! configuration (`ldtilecfg`). This kernel uses all eight at their full size: `tmm0`-`tmm3` hold
//! a 32 x 32 block of C, `tmm4`/`tmm5` two 16-row tiles of A, `tmm6`/`tmm7` two 16-column tiles
//! of B; each step of 16 pairs (32 values of K) loads four tiles and does four products.
//!
//! Layout:
//! - A is rounded and packed once per product into whole tiles, `[16-row tile][16-pair tile]
//!   [16 rows][16 pairs]`, rows past M and pairs past K/2 zero, so every tile is one contiguous
//!   KiB (a stride of 64 bytes) and a block of 32 rows never reads past the buffer.
//! - Every packed buffer starts on a cache line ([`Lines`](super::aligned::Lines)), so each
//!   tile row is one whole line: rows 16 bytes off a line made a loop of tile loads and
//!   products 2.6x slower, and this GEMM 1.27-1.34x slower on the Qwen3-1.7B prefill's
//!   products (Emerald Rapids Xeon, alternating the two product by product).
//! - B is packed one panel of 32 columns by a chunk of 512 pairs at a time by
//!   `gemm_bf16`'s own packing (`[pair][32 columns]`, the pair layout `tdpbf16ps` takes for B as
//!   it is), and a tile is read from it with a stride of 128 bytes: columns 0-15 at the panel's
//!   start, 16-31 64 bytes in. A weight packed into that layout at load
//!   ([`Bf16Panels`](super::bf16_panels::Bf16Panels), [`Weights::Panels`]) is read in place.
//! - K is the outer loop of a task: one chunk of A's pairs for all the task's rows stays in L2
//!   while the task's panels pass over it, four at a time (packed together, then multiplied
//!   block of rows by block, so each block's A tiles serve four panels); blocks of C wait in a
//!   buffer between chunks.
//! - While a group is multiplied, the weight lines of the next group are prefetched into L2,
//!   so packing them does not wait on memory.
//! - While a step computes, the next step's A tiles are prefetched into L1: measured, the tile
//!   loads rather than the products were what the kernel waited on.
//!
//! Linux hands AMX's 8 KiB of tile state to a process only on request
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, the kernel's
//! Documentation/arch/x86/xstate.rst); [`available`] asks once and is false if the kernel says
//! no, as it is on every other OS (not implemented there). Each task loads the configuration on
//! its thread and releases the tiles when done (`tilerelease`), so idle threads carry no tile state.

/// Whether this CPU and OS run the AMX kernel: CPUID says AMX-TILE and AMX-BF16, the AVX-512
/// kernels' BF16 support is there too (the packing uses it), and Linux granted the tile state.
pub fn available() -> bool {
    use std::sync::OnceLock;
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            super::gemm_bf16::available() && x86::cpu_has_amx_bf16() && x86::request_tile_state()
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        {
            false
        }
    })
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(super) use x86::gemm;

pub(super) use super::gemm_bf16::Weights;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod x86 {
    use std::arch::asm;
    use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};

    use half::bf16;
    use rayon::prelude::*;

    use super::super::aligned::Lines;
    use super::super::bf16_panels::Bf16Panels;
    use super::super::gemm_bf16::{Dst, KC, NR, View, pack_b, pack_row, split, tasks};
    use super::Weights;

    /// Rows of a tile, and pairs (u32 lanes) per tile row: 16 x 64 bytes.
    const T: usize = 16;
    /// Rows of C per block: two tiles of A.
    const MB: usize = 2 * T;
    /// Pairs of K per chunk: a 64 KiB chunk of a B panel, and of A's rows 2 KiB a row. Measured
    /// on an Emerald Rapids Xeon (2 threads, alternating in one process): 128 and 256 pairs no
    /// faster than 512 at K = 1024, the whole of K (no chunks) 0.6x of 512 at K = 3072, where
    /// the packed activations (3 MiB at 512 rows) outgrow L2 unless taken a chunk at a time.
    /// Rechecked at the Qwen3-1.7B prefill's seven products (512 rows, alternating product by
    /// product, six rounds): 128 and 256 pairs 0.89-0.95x of 512, 1,024 and 3,072 0.93-0.99x.
    const KCB: usize = 512;
    /// Panels packed together and multiplied block by block: each block's chunk of A (64 KiB)
    /// then meets four panels while it is in L1 and L2, not one, which quarters A's traffic
    /// from L2. On the 1.7B prefill's products as above: 1.05-1.07x over one panel at a time
    /// in every round, two panels 1.03-1.05x, eight 1.03x.
    const GROUP: usize = 4;
    /// Tiles of C a task keeps between chunks of K: 256 KiB, a group of panels at 512 rows.
    const C_TILES: usize = 256;
    /// Below this many multiply-adds the product runs on one thread.
    const PARALLEL_MIN: usize = 64 * 64 * 64;

    /// CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE (Intel SDM vol. 2, CPUID).
    pub(super) fn cpu_has_amx_bf16() -> bool {
        // CPUID leaf 7 exists on every x86-64 CPU with AVX-512, which the caller checked.
        let leaf = std::arch::x86_64::__cpuid_count(7, 0);
        leaf.edx >> 22 & 1 == 1 && leaf.edx >> 24 & 1 == 1
    }

    /// Asks Linux for the AMX tile state: `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`,
    /// process-wide. False where the kernel refuses or predates it (before 5.16).
    pub(super) fn request_tile_state() -> bool {
        unsafe extern "C" {
            fn syscall(number: std::ffi::c_long, ...) -> std::ffi::c_long;
        }
        const SYS_ARCH_PRCTL: std::ffi::c_long = 158;
        const ARCH_REQ_XCOMP_PERM: std::ffi::c_long = 0x1023;
        const XFEATURE_XTILEDATA: std::ffi::c_long = 18;
        // SAFETY: arch_prctl with these arguments only changes which state the kernel lets this
        // process use; it reads and writes no memory of ours.
        unsafe { syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
    }

    /// The 64-byte tile configuration of `ldtilecfg` (palette 1): every tile 16 rows x 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        bytes_per_row: [u16; 16],
        rows: [u8; 16],
    }

    const CONFIG: TileConfig = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
        rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
    };

    /// The tiles configured on this thread for as long as it lives; released on drop.
    struct Tiles;

    impl Tiles {
        /// # Safety
        /// The CPU has AMX-TILE and the OS granted the tile state ([`super::available`]).
        unsafe fn configure() -> Tiles {
            // SAFETY: CONFIG is a valid palette-1 configuration, 64-byte aligned.
            unsafe { asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) };
            Tiles
        }
    }

    impl Drop for Tiles {
        fn drop(&mut self) {
            // SAFETY: tiles were configured on this thread (`configure`), so AMX is usable.
            unsafe { asm!("tilerelease", options(nostack, nomem)) };
        }
    }

    /// `dst[i * ldd + j] = sum_k bf16(a[i, k]) * b[k, j]`, as `gemm_bf16::gemm`.
    ///
    /// # Safety
    /// [`super::available`] is true; the view `a` fits `m x k`, `b` is a view that fits `k x n`
    /// or panels of a [n, k] weight, and dst holds `(m - 1) * ldd + n` values (the caller
    /// checked); m, n, k > 0.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
    pub unsafe fn gemm(
        m: usize,
        n: usize,
        k: usize,
        a: View<f32>,
        b: Weights,
        dst: &mut [f32],
        ldd: usize,
        parallel: bool,
    ) {
        // This thread's kept buffer for the packed activations, taken for the product and put
        // back after it; a product nested on this thread (run while this one waits in rayon)
        // finds it empty and grows its own.
        let mut kept = PACKED.take();
        let threads = rayon::current_num_threads();
        let parallel = parallel && threads > 1 && m * n * k >= PARALLEL_MIN;
        let kp = k.div_ceil(2);
        let kq = kp.div_ceil(T);
        let blocks = m.div_ceil(MB);
        kept.grow(2 * blocks * kq * T * T);
        let packed = &mut kept.words_mut()[..2 * blocks * kq * T * T];
        // A, rounded and packed as whole tiles: [row tile][pair tile][16 rows][16 pairs]; rows
        // past M and pairs past K/2 zero (the buffer may hold an earlier product's tiles).
        let pack_tile_row = |ti: usize, out: &mut [u32]| {
            let mut row = vec![0u32; kq * T];
            for r in 0..T {
                if ti * T + r < m {
                    // SAFETY: AVX512_BF16 is enabled in this function and a fits (checked by
                    // caller).
                    unsafe { pack_row(a, ti * T + r, k, &mut row[..kp]) };
                } else {
                    row.fill(0);
                }
                for (q, lanes) in row.chunks_exact(T).enumerate() {
                    out[(q * T + r) * T..][..T].copy_from_slice(lanes);
                }
            }
        };
        if parallel {
            packed.par_chunks_mut(kq * T * T).enumerate().for_each(|(ti, out)| pack_tile_row(ti, out));
        } else {
            packed.chunks_mut(kq * T * T).enumerate().for_each(|(ti, out)| pack_tile_row(ti, out));
        }

        // Tasks as in gemm_bf16; with more than one chunk of K, a task keeps its blocks of C
        // between chunks: at most C_TILES tiles of them.
        let panels = n.div_ceil(NR);
        let (panel_chunk, block_chunk) = split(panels, blocks, parallel, threads);
        let panel_chunk =
            if kq * T > KCB { panel_chunk.min((C_TILES / (4 * block_chunk)).max(1)) } else { panel_chunk };
        let tasks = tasks(panels, blocks, panel_chunk, block_chunk);
        let out = Dst(dst.as_mut_ptr());
        let packed = &packed[..];
        let task = |(bbuf, cbuf): (&mut [u32], &mut [f32]), &(p0, b0): &(usize, usize)| {
            // SAFETY: available() (the caller's contract) says AMX may run on this thread.
            let _tiles = unsafe { Tiles::configure() };
            let mut scratch = Scratch([0f32; 4 * T * T]);
            let (p1, b1) = ((p0 + panel_chunk).min(panels), (b0 + block_chunk).min(blocks));
            // Each panel's chunk of pairs in bbuf.
            let chunk = KCB * NR;
            // K outermost: a chunk of A's pairs (all the task's rows) stays in L2 while every
            // group of the task's panels passes over it.
            for q0 in (0..kq * T).step_by(KCB) {
                let q1 = (q0 + KCB).min(kq * T);
                let (first, last) = (q0 == 0, q1 == kq * T);
                for g0 in (p0..p1).step_by(GROUP) {
                    let g1 = (g0 + GROUP).min(p1);
                    // The weight lines the task packs next, fetched into L2 while this group
                    // is multiplied: the next group of this chunk, else the first one of the
                    // next chunk, else (a task of whole M) the next task's, which is most often
                    // this thread's next. Without it the packing waited on memory: `pack_b`
                    // took 5.9% of a 1.7B-shaped bf16 prefill's profile, with it 3.2%.
                    let next = if g1 < p1 {
                        Some((g1, (p1 - g1).min(GROUP), q0))
                    } else if !last {
                        Some((p0, (p1 - p0).min(GROUP), q1))
                    } else if p1 < panels && b0 == 0 && b1 == blocks {
                        Some((p1, GROUP.min(panels - p1), 0))
                    } else {
                        None
                    };
                    let ahead = next.and_then(|(np, count, nq)| match b {
                        Weights::View(b) => (b.rs == 1).then(|| Ahead::new(b, n, k, np, count, nq)),
                        Weights::Panels(w) => Some(Ahead::panels(w, panels, np, count, nq)),
                    });
                    // The group's chunks: pairs q0..q1 (whole tiles), past K/2 zero, as A's are
                    // (0 * garbage could be NaN). Panels packed at load are read where they are.
                    if let Weights::View(b) = b {
                        for panel in g0..g1 {
                            let j0 = panel * NR;
                            let cols = NR.min(n - j0);
                            let buf = &mut bbuf[(panel - g0) * chunk..(panel - g0 + 1) * chunk];
                            for p in (q0..q1.min(kp)).step_by(KC) {
                                pack_b(b, k, j0, cols, p, KC.min(q1.min(kp) - p), &mut buf[(p - q0) * NR..]);
                            }
                            if q1 > kp {
                                buf[(kp.max(q0) - q0) * NR..(q1 - q0) * NR].fill(0);
                            }
                        }
                    }
                    let calls = (b1 - b0) * (g1 - g0);
                    for bi in b0..b1 {
                        let rows = MB.min(m - bi * MB);
                        for panel in g0..g1 {
                            let j0 = panel * NR;
                            let cols = NR.min(n - j0);
                            let c = if last && first {
                                cbuf.as_mut_ptr()
                            } else {
                                cbuf[((panel - p0) * block_chunk + bi - b0) * 4 * T * T..].as_mut_ptr()
                            };
                            // SAFETY: the two row tiles of block bi hold kq tiles each in
                            // packed, of which this chunk reads (q0..q1) / 16; bbuf holds the
                            // group's chunks of q1 - q0 pairs x NR lanes each; cbuf holds 4
                            // tiles per block and panel of the task when K has several chunks
                            // (it is not read otherwise); the block's cells (bi * MB + r, j0 +
                            // c), r < rows, c < cols, lie in dst and belong to this task alone.
                            unsafe {
                                let a = packed.as_ptr().add((2 * bi * kq + q0 / T) * T * T);
                                let call = (bi - b0) * (g1 - g0) + panel - g0;
                                let share = ahead.map(|h| h.share(call, calls));
                                let bp = match b {
                                    Weights::View(_) => bbuf.as_ptr().add((panel - g0) * chunk),
                                    Weights::Panels(w) => w.panel(panel).as_ptr().add(q0 * NR),
                                };
                                products(kq, (q1 - q0) / T, a, bp, c, first, share);
                                if last {
                                    store(out.at(bi * MB * ldd + j0), ldd, rows, cols, &mut scratch);
                                } else {
                                    save(c);
                                }
                            }
                        }
                    }
                }
            }
        };
        let c_tiles = if kq * T > KCB { panel_chunk * block_chunk * 4 } else { 0 };
        let run = |t: &(usize, usize)| {
            BUFFERS.with_borrow_mut(|(bbuf, cbuf)| {
                // Grown to this product's sizes; what they held is overwritten before it is read.
                if matches!(b, Weights::View(_)) {
                    bbuf.grow(GROUP * KCB * NR);
                }
                cbuf.grow(c_tiles * T * T);
                task((bbuf.words_mut(), cbuf.floats_mut()), t)
            })
        };
        if parallel {
            tasks.par_iter().with_max_len(1).for_each(run);
        } else {
            tasks.iter().for_each(run);
        }
        PACKED.set(kept);
    }

    thread_local! {
        /// The activations packed as tiles, kept from product to product on the thread that
        /// calls [`gemm`]: a new 2-6 MiB buffer per product (the 1.7B prefill's shapes) was
        /// page faults and zeroing each time. Whatever it holds is overwritten before it is
        /// read (rows past M and pairs past K/2 are written as zeros).
        static PACKED: std::cell::RefCell<Lines> = const { std::cell::RefCell::new(Lines::new()) };

        /// Each thread's chunk of packed B panels and the blocks of C it keeps between chunks of
        /// K, kept from product to product (new zeroed ones per product cost 0.6% of a prefill).
        /// A task runs to its end without calling into rayon, so no other task of this thread
        /// finds them borrowed.
        static BUFFERS: std::cell::RefCell<(Lines, Lines)> = const { std::cell::RefCell::new((Lines::new(), Lines::new())) };
    }

    /// `tmm0..tmm3` (+)= a 32 x 32 block of C over `steps` steps of 16 pairs: A's two row tiles
    /// start at `a` and `a + kq` tiles, B's chunk (`[pair][32]`) at `b`. The block starts from
    /// zero when `first`, else from the four tiles saved at `c` ([`save`]).
    ///
    /// # Safety
    /// Tiles are configured ([`Tiles::configure`]); `a` holds kq + steps tiles, `b` steps x 16 x
    /// 32 lanes, `c` four tiles unless `first`.
    #[inline(always)]
    unsafe fn products(
        kq: usize,
        steps: usize,
        a: *const u32,
        b: *const u32,
        c: *const f32,
        first: bool,
        ahead: Option<(Ahead, usize, usize)>,
    ) {
        unsafe {
            if first {
                asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
            } else {
                asm!(
                    "tileloadd tmm0, [{c} + {row}*1]",
                    "tileloadd tmm1, [{c} + {row}*1 + 1024]",
                    "tileloadd tmm2, [{c} + {row}*1 + 2048]",
                    "tileloadd tmm3, [{c} + {row}*1 + 3072]",
                    c = in(reg) c,
                    row = in(reg) T * 4,
                    options(nostack, readonly),
                );
            }
            for q in 0..steps {
                // The next step's A tiles into L1 while this step computes: 1.15-1.25x on the
                // prefill shape while tile rows straddled cache lines; since the buffers are
                // aligned, 0.95-1.05x (within this machine's noise), kept as no loss.
                // A prefetch never faults, so the last step's reach past `a` is harmless.
                for line in 0..T {
                    let next = |tile: usize| a.wrapping_add((tile + 1) * T * T + line * T) as *const i8;
                    _mm_prefetch::<_MM_HINT_T0>(next(q));
                    _mm_prefetch::<_MM_HINT_T0>(next(kq + q));
                }
                if let Some((h, from, to)) = ahead {
                    let per = (to - from).div_ceil(steps);
                    for i in (from + q * per..from + (q + 1) * per).take_while(|&i| i < to) {
                        _mm_prefetch::<_MM_HINT_T1>(h.line(i));
                    }
                }
                asm!(
                    "tileloadd tmm4, [{a0} + {row}*1]",
                    "tileloadd tmm6, [{b} + {panel_row}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tileloadd tmm7, [{b} + {panel_row}*1 + 64]",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tileloadd tmm5, [{a1} + {row}*1]",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a0 = in(reg) a.add(q * T * T),
                    a1 = in(reg) a.add((kq + q) * T * T),
                    b = in(reg) b.add(q * T * NR),
                    row = in(reg) T * 4,
                    panel_row = in(reg) NR * 4,
                    options(nostack, readonly),
                );
            }
        }
    }

    /// The weight lines a [`pack_b`] of B's columns `j0..j0 + cols`, values `k0..k1` reads,
    /// where B's columns are contiguous (a Linear's [N, K] rows): `cols` runs of `lines` 64-byte
    /// lines, `stride` bytes apart, from `base`.
    #[derive(Clone, Copy)]
    struct Ahead {
        base: *const u8,
        stride: usize,
        lines: usize,
        cols: usize,
    }

    impl Ahead {
        /// `count` panels' chunks of [`KCB`] pairs from pair `q0`, from panel `panel` of a k x n
        /// view.
        fn new(b: View<bf16>, n: usize, k: usize, panel: usize, count: usize, q0: usize) -> Ahead {
            let j0 = panel * NR;
            let (k0, k1) = (2 * q0, (2 * (q0 + KCB)).min(k));
            // Only an address: a prefetch reads nothing and never faults.
            let base = b.data.as_ptr().wrapping_add(j0 * b.cs + k0) as *const u8;
            Ahead {
                base,
                stride: 2 * b.cs,
                lines: (2 * k1.saturating_sub(k0)).div_ceil(64),
                cols: (count * NR).min(n - j0),
            }
        }

        /// `count` panels' chunks of [`KCB`] pairs from pair `q0`, from panel `panel` of
        /// weights packed at load (`panels` in all): runs of contiguous lines, one a panel.
        fn panels(w: &Bf16Panels, panels: usize, panel: usize, count: usize, q0: usize) -> Ahead {
            let chunk = KCB.min(w.pairs() - q0);
            Ahead {
                base: w.panel(panel)[q0 * NR..].as_ptr() as *const u8,
                stride: w.panel_stride(),
                lines: chunk * NR * 4 / 64,
                cols: count.min(panels - panel),
            }
        }

        /// The `i`-th of `of` equal shares of the lines: (the lines, first, end).
        fn share(self, i: usize, of: usize) -> (Ahead, usize, usize) {
            let total = self.lines * self.cols;
            (self, i * total / of, (i + 1) * total / of)
        }

        /// Line `i`, column by column.
        fn line(&self, i: usize) -> *const i8 {
            self.base.wrapping_add(i / self.lines * self.stride + i % self.lines * 64) as *const i8
        }
    }

    /// Four tiles of C on a cache line, for blocks stored in part.
    #[repr(C, align(64))]
    struct Scratch([f32; 4 * T * T]);

    /// Saves `tmm0..tmm3` to four contiguous tiles at `c`, for the next chunk of K.
    ///
    /// # Safety
    /// Tiles are configured; `c` has room for four tiles.
    #[inline(always)]
    unsafe fn save(c: *mut f32) {
        unsafe {
            asm!(
                "tilestored [{c} + {row}*1], tmm0",
                "tilestored [{c} + {row}*1 + 1024], tmm1",
                "tilestored [{c} + {row}*1 + 2048], tmm2",
                "tilestored [{c} + {row}*1 + 3072], tmm3",
                c = in(reg) c,
                row = in(reg) T * 4,
                options(nostack),
            );
        }
    }

    /// Writes the block in `tmm0..tmm3` to C at `c` (row stride `ldc`), `rows` x `cols` of it:
    /// straight from the tiles when the whole 32 x 32 block is wanted, else through `scratch`.
    ///
    /// # Safety
    /// Tiles hold a block ([`products`]); the cells `c + r * ldc + j`, r < rows, j < cols, are
    /// writable.
    #[inline(always)]
    unsafe fn store(c: *mut f32, ldc: usize, rows: usize, cols: usize, scratch: &mut Scratch) {
        unsafe {
            if rows == MB && cols == NR {
                asm!(
                    "tilestored [{c00} + {s}*1], tmm0",
                    "tilestored [{c01} + {s}*1], tmm1",
                    "tilestored [{c10} + {s}*1], tmm2",
                    "tilestored [{c11} + {s}*1], tmm3",
                    c00 = in(reg) c,
                    c01 = in(reg) c.add(T),
                    c10 = in(reg) c.add(T * ldc),
                    c11 = in(reg) c.add(T * ldc + T),
                    s = in(reg) ldc * 4,
                    options(nostack),
                );
                return;
            }
            let s = scratch.0.as_mut_ptr();
            asm!(
                "tilestored [{s0} + {row}*1], tmm0",
                "tilestored [{s1} + {row}*1], tmm1",
                "tilestored [{s2} + {row}*1], tmm2",
                "tilestored [{s3} + {row}*1], tmm3",
                s0 = in(reg) s,
                s1 = in(reg) s.add(T * T),
                s2 = in(reg) s.add(2 * T * T),
                s3 = in(reg) s.add(3 * T * T),
                row = in(reg) T * 4,
                options(nostack),
            );
            for r in 0..rows {
                for j in 0..cols {
                    let tile = (r / T) * 2 + j / T;
                    *c.add(r * ldc + j) = scratch.0[tile * T * T + (r % T) * T + j % T];
                }
            }
        }
    }
}
