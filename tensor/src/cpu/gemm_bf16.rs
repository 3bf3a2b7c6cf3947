//! The bf16 dot-product GEMM: `C = bf16(A) @ B` for f32 activations A [M, K] and bf16 weights
//! B [K, N], accumulated in f32, on AVX512_BF16's `vdpbf16ps`.
//!
//! Why: prefill with bf16 weights is a GEMM, and widening the weights to f32 for an f32 GEMM
//! (what `matmul` does otherwise) runs at f32 speed at best. `vdpbf16ps zmm_acc, zmm_a, zmm_b`
//! (Intel SDM, "VDPBF16PS: Dot Product of BF16 Pairs Accumulated Into Packed Single Precision")
//! treats each 32-bit lane of its sources as a *pair* of bf16 values and does, per lane,
//! `acc += a.hi * b.hi; acc += a.lo * b.lo` in f32: 32 multiply-adds per 512-bit instruction,
//! twice an f32 FMA's 16. The products of two bf16 (8-bit significands) are exact in f32; each
//! addition rounds to nearest even, and the instruction treats denormal inputs as zero and
//! flushes denormal results to zero, whatever MXCSR says (DAZ/FTZ/RNE are fixed for it).
//!
//! The activations are therefore rounded to bf16 first (round to nearest even, as PyTorch does
//! when it runs a bf16 model: the activations of a bf16 Linear are bf16), a relative error of at
//! most 2^-8 per activation (half an ulp of bf16's 8-bit significand); the weights are bf16 already.
//!
//! Layout, all in 32-bit "pair" lanes (bf16 `2p` in the low half, `2p + 1` in the high half;
//! an odd K pads the last pair's high half with zero):
//! - A is rounded and packed once per product into blocks of [`MR`] rows, pair-major inside a
//!   block (`[row block][pair][MR]`), so the microkernel broadcasts one lane per row.
//! - B is packed on the fly, one panel of [`NR`] columns by [`KC`] pairs at a time, pair-major
//!   (`[pair][NR]`): a Linear weight is stored [N, K] (column j of B is the contiguous row j of
//!   the weight), so a pair is two adjacent bf16 of a weight row, one u32, and packing is a
//!   32-bit transpose, done 16 x 16 lanes at a time in registers (one element at a time it took
//!   about a sixth of a prefill-shaped product). The panel (32 KiB) stays in L1 while every row
//!   block of A streams past.
//! - The microkernel keeps MR x NR of C in MR x NV zmm accumulators (16; 8 x 48 and 6 x 64 measured
//!   the same on the benchmark machine) and adds them to C at the end of
//!   each K block.
//!
//! Threads take panels of N (or, when N has too few panels, row ranges of M as well). Where the
//! CPU has AMX-BF16, [`gemm`] hands the product to the same math on AMX tiles
//! ([`gemm_bf16_amx`](super::gemm_bf16_amx), under [`isa::amx`](super::isa::amx)).
//! [`reference`] is the same math in plain Rust: the test oracle and the path for CPUs without
//! AVX512_BF16 (the product dispatch in `matmul` prefers widening there, which is faster).

use half::bf16;

/// Rows of A per microkernel call.
pub const MR: usize = 8;
/// Columns of B per microkernel call (two zmm of 16 f32 lanes).
pub const NR: usize = 16 * NV;
/// zmm registers of C per row of the microkernel.
const NV: usize = 2;
/// Pairs of K per packed B panel: 256 pairs = 512 values of K, a 32 KiB panel (within a 48 KiB
/// L1). Against 128 pairs it halves the passes that add a block's sums to C; measured 3.5%
/// faster on the benchmark's prefill shapes (`cargo bench --bench cpu_ops`, alternating runs:
/// 808-872 against 775-854 GFLOP/s), and 512 pairs (a panel past L1) no faster.
pub const KC: usize = 256;

/// Below this many multiply-adds the product runs on one thread.
const PARALLEL_MIN: usize = 64 * 64 * 64;

/// A strided 2-D view: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

impl<T> View<'_, T> {
    /// Whether a `rows x cols` view fits its slice.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// The B operand of the GEMMs (this one and [`gemm_bf16_amx`](super::gemm_bf16_amx)): a
/// strided view of bf16 values, packed into [pair][NR] panels chunk by chunk as the product
/// runs, or a weight packed into the same panels at load ([`Bf16Panels`]), read as it is.
///
/// [`Bf16Panels`]: super::bf16_panels::Bf16Panels
#[derive(Clone, Copy)]
pub(super) enum Weights<'a> {
    View(View<'a, bf16>),
    Panels(&'a super::bf16_panels::Bf16Panels),
}

/// Whether this CPU runs the `vdpbf16ps` kernel.
pub fn available() -> bool {
    super::isa::features().avx512_bf16
}

/// Round to bf16 (nearest even), as a bit pattern. NaN stays NaN.
#[inline]
fn round(x: f32) -> u16 {
    bf16::from_f32(x).to_bits()
}

/// `src` rounded to bf16 (nearest even) into pair lanes, `out[p] = bf16(src[2p]) | bf16(src[2p + 1]) << 16`
/// (an odd length pads the last high half with zero): the packed activations of
/// [`matvec_bf16`](super::matvec_bf16). `out` holds `src.len().div_ceil(2)` lanes.
pub fn pack_pairs(src: &[f32], out: &mut [u32]) {
    assert_eq!(out.len(), src.len().div_ceil(2));
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the CPU has AVX512_BF16 (and with it AVX512F/BW/VL/DQ).
        unsafe { x86::pack_row(View { data: src, rs: 0, cs: 1 }, 0, src.len(), out) };
        return;
    }
    for (p, v) in out.iter_mut().enumerate() {
        let x = |i: usize| src.get(i).map_or(0, |&x| round(x)) as u32;
        *v = x(2 * p) | x(2 * p + 1) << 16;
    }
}

/// `dst[i * ldd + j] = sum_k bf16(a[i, k]) * b[k, j]` for i < m, j < n: the `vdpbf16ps` kernel
/// when the CPU has AVX512_BF16, else [`reference_into`]. `parallel` lets it use rayon's threads.
#[allow(clippy::too_many_arguments)]
pub fn gemm(m: usize, n: usize, k: usize, a: View<f32>, b: View<bf16>, dst: &mut [f32], ldd: usize, parallel: bool) {
    assert!(a.fits(m, k) && b.fits(k, n), "gemm_bf16: an operand view exceeds its buffer");
    assert!(m == 0 || n == 0 || dst.len() >= (m - 1) * ldd + n, "gemm_bf16: dst too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in dst.chunks_mut(ldd).take(m) {
            row[..n].fill(0.0);
        }
        return;
    }
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if super::isa::amx() {
        // SAFETY: `isa::amx` checked `gemm_bf16_amx::available`; views and dst were checked above.
        unsafe { super::gemm_bf16_amx::gemm(m, n, k, a, super::gemm_bf16_amx::Weights::View(b), dst, ldd, parallel) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the CPU has AVX512_BF16 (and AVX-512 F/BW/VL/DQ, which `avx512_bf16` implies
        // in `isa::features`); the views and dst were checked above.
        unsafe { x86::gemm(m, n, k, a, Weights::View(b), dst, ldd, parallel) };
        return;
    }
    let _ = parallel;
    reference_into(m, n, k, a, b, dst, ldd);
}

/// The same math as the kernel in plain Rust: activations rounded to bf16, each pair added as
/// `vdpbf16ps` does (`acc += a.hi * b.hi; acc += a.lo * b.lo`, products exact, sums in f32),
/// pairs in order. (Only the denormal flushing is not modelled, and the kernel adds its K blocks
/// of [`KC`] pairs to C one block at a time, so results agree to rounding, not bit for bit.)
pub fn reference_into(m: usize, n: usize, k: usize, a: View<f32>, b: View<bf16>, dst: &mut [f32], ldd: usize) {
    assert!(a.fits(m, k) && b.fits(k, n), "gemm_bf16: an operand view exceeds its buffer");
    let mut row = vec![0.0f32; k + 1];
    for i in 0..m {
        for (kk, v) in row.iter_mut().take(k).enumerate() {
            *v = bf16::from_bits(round(a.data[i * a.rs + kk * a.cs])).to_f32();
        }
        for j in 0..n {
            let w = |kk: usize| if kk < k { b.data[kk * b.rs + j * b.cs].to_f32() } else { 0.0 };
            let mut acc = 0.0f32;
            for p in 0..k.div_ceil(2) {
                acc += row[2 * p + 1] * w(2 * p + 1);
                acc += row[2 * p] * w(2 * p);
            }
            dst[i * ldd + j] = acc;
        }
    }
}

/// [`reference_into`] into a new row-major [m, n] vector.
pub fn reference(m: usize, n: usize, k: usize, a: View<f32>, b: View<bf16>) -> Vec<f32> {
    let mut out = vec![0.0; m * n];
    reference_into(m, n, k, a, b, &mut out, n.max(1));
    out
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(super) use x86::{gemm as gemm_weights, pack_b, pack_row};

/// dst as a raw pointer, so threads can write their own columns of shared rows (this GEMM's
/// tasks, AMX's, and `matmul`'s column split of the `gemm` crate's products).
#[derive(Clone, Copy)]
pub(super) struct Dst<T = f32>(pub(super) *mut T);
// SAFETY: every task writes a disjoint set of (row, column) cells of dst.
unsafe impl<T> Send for Dst<T> {}
unsafe impl<T> Sync for Dst<T> {}

impl<T> Dst<T> {
    /// The cell `offset` past the start (a method, so closures capture the whole `Dst`).
    ///
    /// # Safety
    /// `offset` lies inside dst.
    pub(super) unsafe fn at(self, offset: usize) -> *mut T {
        unsafe { self.0.add(offset) }
    }
}

/// How a product's work is cut: tasks of `panel_chunk` panels of N by `block_chunk` row blocks
/// of M. Whole M per task unless N has too few panels to keep every thread busy (4 tasks a
/// thread).
#[cfg(target_arch = "x86_64")]
pub(super) fn split(panels: usize, blocks: usize, parallel: bool, threads: usize) -> (usize, usize) {
    if !parallel {
        (panels, blocks)
    } else if panels >= 4 * threads {
        (panels.div_ceil(4 * threads), blocks)
    } else {
        (1, blocks.div_ceil((4 * threads).div_ceil(panels)).max(1))
    }
}

/// The tasks of a [`split`]: the first panel and row block of each.
#[cfg(target_arch = "x86_64")]
pub(super) fn tasks(panels: usize, blocks: usize, panel_chunk: usize, block_chunk: usize) -> Vec<(usize, usize)> {
    (0..panels).step_by(panel_chunk).flat_map(|p0| (0..blocks).step_by(block_chunk).map(move |b0| (p0, b0))).collect()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::bf16;
    use rayon::prelude::*;

    use super::super::aligned::Lines;
    use super::{Dst, KC, MR, NR, NV, PARALLEL_MIN, View, Weights, round, split, tasks};

    /// The pair lane of two bf16 bit patterns: `lo` in bits 0-15, `hi` in 16-31.
    #[inline(always)]
    fn pair(lo: u16, hi: u16) -> u32 {
        lo as u32 | (hi as u32) << 16
    }

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
        let threads = rayon::current_num_threads();
        let parallel = parallel && threads > 1 && m * n * k >= PARALLEL_MIN;
        let kp = k.div_ceil(2);
        let blocks = m.div_ceil(MR);
        // A, rounded and packed: [row block][pair][MR], rows past m zero.
        let mut packed = vec![0u32; blocks * kp * MR];
        let pack_block = |bi: usize, out: &mut [u32]| {
            let mut row = vec![0u32; kp];
            for r in 0..MR.min(m - bi * MR) {
                // SAFETY: AVX512_BF16 is enabled in this function and a fits (checked by caller).
                unsafe { pack_row(a, bi * MR + r, k, &mut row) };
                for (p, &v) in row.iter().enumerate() {
                    out[p * MR + r] = v;
                }
            }
        };
        if parallel {
            packed.par_chunks_mut(kp * MR).enumerate().for_each(|(bi, out)| pack_block(bi, out));
        } else {
            packed.chunks_mut(kp * MR).enumerate().for_each(|(bi, out)| pack_block(bi, out));
        }

        let panels = n.div_ceil(NR);
        let (panel_chunk, block_chunk) = split(panels, blocks, parallel, threads);
        let tasks = tasks(panels, blocks, panel_chunk, block_chunk);
        let out = Dst(dst.as_mut_ptr());
        let packed = &packed[..];
        let task = |bbuf: &mut [u32], &(p0, b0): &(usize, usize)| {
            for panel in p0..(p0 + panel_chunk).min(panels) {
                let j0 = panel * NR;
                let cols = NR.min(n - j0);
                let masks: [u16; NV] = std::array::from_fn(|v| {
                    let left = cols.saturating_sub(16 * v);
                    if left >= 16 { u16::MAX } else { ((1u32 << left) - 1) as u16 }
                });
                for q0 in (0..kp).step_by(KC) {
                    let kc = KC.min(kp - q0);
                    // The chunk's [pair][NR] lanes: packed now, or where they were packed at load.
                    let chunk = match b {
                        Weights::View(b) => {
                            pack_b(b, k, j0, cols, q0, kc, bbuf);
                            &bbuf[..]
                        }
                        Weights::Panels(w) => &w.panel(panel)[q0 * NR..],
                    };
                    for bi in b0..(b0 + block_chunk).min(blocks) {
                        let rows = MR.min(m - bi * MR);
                        // SAFETY: packed holds kp pairs x MR per block, chunk kc x NR; the cells
                        // (bi * MR + r, j0 + c) for r < rows, c < cols lie in dst (checked by
                        // the caller) and belong to this task alone.
                        unsafe {
                            kernel(
                                kc,
                                packed.as_ptr().add((bi * kp + q0) * MR),
                                chunk.as_ptr(),
                                out.at(bi * MR * ldd + j0),
                                ldd,
                                rows,
                                masks,
                                q0 > 0,
                            )
                        };
                    }
                }
            }
        };
        // On a cache line: each pair's 32 columns are two whole-line loads (aligned::Lines).
        let new_buf = || Lines::zeroed(KC * NR);
        if parallel {
            tasks.par_iter().with_max_len(1).for_each_init(new_buf, |buf, t| task(buf.words_mut(), t));
        } else {
            let mut buf = new_buf();
            tasks.iter().for_each(|t| task(buf.words_mut(), t));
        }
    }

    /// Row `i` of A rounded to bf16 pairs, into `out` (kp lanes, the odd tail's high half zero).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
    pub(in crate::cpu) unsafe fn pack_row(a: View<f32>, i: usize, k: usize, out: &mut [u32]) {
        let start = i * a.rs;
        if a.cs != 1 {
            for (p, v) in out.iter_mut().enumerate() {
                let x = |kk: usize| if kk < k { round(a.data[start + kk * a.cs]) } else { 0 };
                *v = pair(x(2 * p), x(2 * p + 1));
            }
            return;
        }
        let src = &a.data[start..start + k];
        let mut kk = 0;
        // vcvtne2ps2bf16 rounds to nearest even (denormals to zero): 32 floats -> 16 pairs.
        // Its first operand fills the high 16 bf16, so (x[16..32], x[0..16]) keeps the order.
        while kk < k {
            let left = k - kk;
            let lo_mask: u16 = if left >= 16 { u16::MAX } else { ((1u32 << left) - 1) as u16 };
            let hi_left = left.saturating_sub(16);
            let hi_mask: u16 = if hi_left >= 16 { u16::MAX } else { ((1u32 << hi_left) - 1) as u16 };
            let pairs = left.min(32).div_ceil(2);
            let pair_mask: u16 = if pairs >= 16 { u16::MAX } else { ((1u32 << pairs) - 1) as u16 };
            // SAFETY: the masked loads read only src[kk..k], the masked store only out[kk/2..].
            unsafe {
                let lo = _mm512_maskz_loadu_ps(lo_mask, src.as_ptr().add(kk));
                let hi = _mm512_maskz_loadu_ps(hi_mask, src.as_ptr().add(kk + 16.min(left)));
                let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_mask_storeu_epi32(out.as_mut_ptr().add(kk / 2) as *mut i32, pair_mask, v);
            }
            kk += 32;
        }
    }

    /// Packs columns j0..j0+cols, pairs q0..q0+kc of B into `buf` as [pair][NR] lanes, columns
    /// past `cols` zero.
    pub(in crate::cpu) fn pack_b(
        b: View<bf16>,
        k: usize,
        j0: usize,
        cols: usize,
        q0: usize,
        kc: usize,
        buf: &mut [u32],
    ) {
        let buf = &mut buf[..kc * NR];
        if cols < NR {
            buf.fill(0);
        }
        let bits = |i: usize| b.data[i].to_bits();
        if b.rs == 1 {
            // Column j is a contiguous run of K: each pair is two adjacent values. Whole groups
            // of 16 columns are transposed in registers, 16 pairs at a time.
            let k0 = 2 * q0;
            let k1 = (2 * (q0 + kc)).min(k);
            let grouped = cols / 16 * 16;
            // SAFETY: AVX-512 is enabled in the caller; the loads stay inside each column's run
            // k0..k1 (masked), the stores inside buf's kc x NR lanes.
            unsafe { pack_b_16_columns(b, j0, grouped, k0, k1, buf) };
            for c in grouped..cols {
                let start = (j0 + c) * b.cs;
                let run = &b.data[start + k0..start + k1];
                let mut pairs = run.chunks_exact(2);
                for (q, p) in pairs.by_ref().enumerate() {
                    buf[q * NR + c] = pair(p[0].to_bits(), p[1].to_bits());
                }
                if let [last] = pairs.remainder() {
                    buf[(k1 - k0) / 2 * NR + c] = pair(last.to_bits(), 0);
                }
            }
        } else {
            for q in 0..kc {
                let kk = 2 * (q0 + q);
                let row = &mut buf[q * NR..q * NR + cols];
                for (c, v) in row.iter_mut().enumerate() {
                    let at = kk * b.rs + (j0 + c) * b.cs;
                    *v = pair(bits(at), if kk + 1 < k { bits(at + b.rs) } else { 0 });
                }
            }
        }
    }

    /// Columns `j0..j0 + cols` (a multiple of 16) of B, contiguous runs of K, values `k0..k1`,
    /// into `buf` as [pair][NR] lanes: per 16 columns and 16 pairs, one masked load of each
    /// column's 32 values (the odd tail's high half zero) and a 16 x 16 transpose of 32-bit lanes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
    unsafe fn pack_b_16_columns(b: View<bf16>, j0: usize, cols: usize, k0: usize, k1: usize, buf: &mut [u32]) {
        let pairs = (k1 - k0).div_ceil(2);
        for c0 in (0..cols).step_by(16) {
            for q in (0..pairs).step_by(16) {
                let values = (k1 - k0 - 2 * q).min(32);
                let mask = if values >= 32 { u32::MAX } else { (1u32 << values) - 1 };
                let mut r: [__m512i; 16] = std::array::from_fn(|i| {
                    let start = (j0 + c0 + i) * b.cs + k0 + 2 * q;
                    // SAFETY: the mask keeps the load to values start..start + values, inside
                    // column j0 + c0 + i's run of K.
                    unsafe { _mm512_maskz_loadu_epi16(mask, b.data.as_ptr().add(start) as *const i16) }
                });
                transpose_16x16(&mut r);
                for (p, v) in r.iter().enumerate().take(16.min(pairs - q)) {
                    let out = &mut buf[(q + p) * NR + c0..][..16];
                    // SAFETY: 16 lanes into a 16-lane slice.
                    unsafe { _mm512_storeu_si512(out.as_mut_ptr() as *mut _, *v) };
                }
            }
        }
    }

    /// `r[i]` lane `p` becomes `r[p]` lane `i`: 32-bit lanes, unpacks of 32 and 64 bits, then two
    /// rounds of 128-bit shuffles.
    #[target_feature(enable = "avx512f")]
    fn transpose_16x16(r: &mut [__m512i; 16]) {
        let mut t = [_mm512_setzero_si512(); 16];
        for i in (0..16).step_by(2) {
            t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
        }
        for i in (0..16).step_by(4) {
            r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
            r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
            r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
            r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
        }
        // Each 128-bit lane now holds one 4 x 4 block, transposed; two rounds of 128-bit
        // shuffles move the blocks to their places.
        for g in [0, 8] {
            for j in 0..4 {
                t[g + j] = _mm512_shuffle_i32x4::<0x88>(r[g + j], r[g + 4 + j]);
                t[g + 4 + j] = _mm512_shuffle_i32x4::<0xDD>(r[g + j], r[g + 4 + j]);
            }
        }
        for j in 0..8 {
            r[j] = _mm512_shuffle_i32x4::<0x88>(t[j], t[8 + j]);
            r[8 + j] = _mm512_shuffle_i32x4::<0xDD>(t[j], t[8 + j]);
        }
    }

    /// `C[r, 0..NR] (+)= sum over kc pairs of A[r] . B` for r < rows, columns masked by `masks`
    /// (one 16-bit mask per zmm of C). Adds to C when `accumulate`, else overwrites it.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
    #[inline]
    unsafe fn kernel(
        kc: usize,
        a: *const u32,
        b: *const u32,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        masks: [u16; NV],
        accumulate: bool,
    ) {
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); NV]; MR];
            for q in 0..kc {
                let bv: [__m512bh; NV] = std::array::from_fn(|v| {
                    std::mem::transmute(_mm512_loadu_si512(b.add(q * NR + 16 * v) as *const _))
                });
                let ap = a.add(q * MR);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(r) as i32));
                    for (acc, &b) in acc.iter_mut().zip(&bv) {
                        *acc = _mm512_dpbf16_ps(*acc, av, b);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate().take(rows) {
                for (v, (&sum, &mask)) in acc.iter().zip(&masks).enumerate() {
                    let p = c.add(r * ldc + 16 * v);
                    let sum = if accumulate { _mm512_add_ps(_mm512_maskz_loadu_ps(mask, p), sum) } else { sum };
                    _mm512_mask_storeu_ps(p, mask, sum);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_pairs_and_rounds_activations() {
        // 1.00390625 = 1 + 2^-8 is a tie between bf16 1.0 and 1.0078125: even rounds down.
        let a = [1.0f32 + 2f32.powi(-8), 2.0, 3.0];
        let b: Vec<bf16> = [1.0f32, 1.0, 1.0].map(bf16::from_f32).to_vec();
        let got = reference(1, 1, 3, View { data: &a, rs: 3, cs: 1 }, View { data: &b, rs: 1, cs: 3 });
        assert_eq!(got, vec![6.0]);
    }
}
