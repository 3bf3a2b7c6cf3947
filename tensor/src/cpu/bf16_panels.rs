//! `Bf16Panels`: a bf16 weight matrix packed once, at load, into the layout the bf16 GEMMs
//! read, instead of once per product.
//!
//! Why: both bf16 GEMMs, the `vdpbf16ps` one ([`gemm_bf16`](super::gemm_bf16)) and the AMX one
//! ([`gemm_bf16_amx`](super::gemm_bf16_amx)), multiply by panels of 32 output features,
//! pair-major (`[pair][32 features]`, each lane two adjacent bf16 of a weight row: the layout
//! `tdpbf16ps` takes for its B tiles, and two zmm of `vdpbf16ps` operands). A Linear's weight is
//! stored [N, K], so every product transposed it into that layout, 32-bit lanes 16 x 16 at a
//! time. Packed at load, the weight is read as it is multiplied. The seven prefill products of
//! a layer (512 rows, 2 threads, alternating product by product against packing per product):
//! - AMX, Qwen3-1.7B's shapes (Emerald Rapids Xeon): 0.96-1.12x in nine rounds, median 1.04x;
//!   the most there was to gain, measured by skipping the packing altogether (a wrong result,
//!   for timing), was 1.11x.
//! - `vdpbf16ps` (Zen 4 EPYC): 0.98-1.09x at the 1.7B shapes (ten rounds, median 1.04x),
//!   0.96-1.15x at the 0.6B shapes (eight rounds, median 1.02x).
//!
//! Layout: panel after panel of 32 features (the last padded with zero features), each
//! `pairs` rows of 32 lanes, `pairs` = K/2 rounded up to whole tiles of 16 pairs (an odd K's
//! last high half and the pairs past K/2 zero). Every panel starts on a cache line
//! ([`Lines`]), so each tile row the GEMM loads is one line, and from 2 MiB on the panels are a
//! mapping of their own on 2 MiB pages (`huge_pages::Mapping`: in the allocator's recycled
//! memory most of them stayed on 4 KiB pages, and decoding streamed them ~10% slower). The
//! bytes are K x N x 2 plus that padding: the weight's own size, which is freed once packed.
//! (At K = 2,048 the panels are
//! 128 KiB apart, so the four chunks the AMX GEMM reads side by side fall in the same L2 sets;
//! a 16 KiB gap between panels measured a few percent faster but costs up to 12% more memory,
//! so it is not used.)
//!
//! Up to [`FEW_ROWS`] activation rows (a decoding step, a server's batch of them) read the
//! panels front to back with `vdpbf16ps` ([`Bf16Panels::matmul`]), each thread its own run of
//! panels, one sequential stream, with the same 4 KiB software prefetch as the plain rows'
//! kernel (`matvec_bf16`) where that pays (`isa::stream_prefetch`): without it `llm generate`
//! decoded at 0.8-0.9x on the Xeon. Against the plain weights' kernels over 600 MB of 1.7B
//! weights on the Zen 4 (prefetch on, two or three rounds each): 1 row 1.13-1.15x, 2 rows
//! 1.24-1.43x, 4 rows 1.23-1.43x, 8 rows 1.38-1.41x, 16 rows 1.70-1.79x (the plain weights take
//! the GEMM there, packing per product).
//! As everywhere bf16 weights meet `vdpbf16ps`, the activations are rounded to bf16 first (see
//! [`gemm_bf16`](super::gemm_bf16)).
//!
//! The activations and the weight being packed are read where they lie, not copied: a copy of
//! a prefill's activations per product (4-12 MiB, into fresh pages) made the products 0.87-0.95x
//! of packing per product instead of faster.
//!
//! Panels are made only where a bf16 GEMM runs ([`Bf16Panels::worth_packing`]: AVX512_BF16; the
//! loader leaves the weights as they are with `LLM_CPU_PANELS=0`); where none runs at the time
//! of a product (a test that forces another path), the product runs on [`reference`], the same
//! math in plain Rust.

use half::bf16;
use rayon::prelude::*;

use super::aligned::Lines;
use super::gemm_bf16::{NR, View};
use crate::{DType, Error, Result, Tensor};

/// Pairs per tile row of B: `pairs` is a multiple of it.
const TILE_PAIRS: usize = 16;
/// Panels per task of a decoding step: 4 x 32 features x K (512 KiB of bf16 at K = 2048).
const PANELS_PER_TASK: usize = 4;
/// Activation rows up to which a product streams the panels with `vdpbf16ps` (a decoding step,
/// or the server's batch of them), [`ROWS_PER_PASS`] rows per pass over the weights; from the
/// next row on, a GEMM. At 4 rows (12 layers' worth of weights, from memory) the AMX GEMM
/// ran at 0.61-0.73x of the rows' `vdpbf16ps` kernels on plain weights.
const FEW_ROWS: usize = 16;
/// Activation rows sharing each weight load in a pass over the panels (16 accumulators).
const ROWS_PER_PASS: usize = 8;
/// Below this many weight bytes a decoding step runs on one thread.
const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// A [n, k] bf16 weight (rows = outputs) as the bf16 GEMMs' panels.
pub struct Bf16Panels {
    n: usize,
    k: usize,
    pairs: usize,
    lines: Lines,
}

impl std::fmt::Debug for Bf16Panels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bf16Panels([{}, {}])", self.n, self.k)
    }
}

impl Bf16Panels {
    /// Whether packing pays here: the bf16 products run on a bf16 GEMM (`vdpbf16ps` or AMX,
    /// [`super::isa::bf16_gemm`]), and `LLM_CPU_PANELS` is not off (it is there to compare).
    pub fn worth_packing() -> bool {
        static ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        super::isa::bf16_gemm() && *ENV.get_or_init(|| super::isa::switch_or_warn("LLM_CPU_PANELS").unwrap_or(true))
    }

    /// Packs a [n, k] bf16 tensor (a Linear's weight, on the CPU).
    pub fn pack(w: &Tensor) -> Result<Bf16Panels> {
        let (n, k) = match *w.dims() {
            [n, k] if w.dtype() == DType::BF16 && w.device().is_cpu() => (n, k),
            _ => {
                return Err(Error::unsupported(
                    "Bf16Panels::pack",
                    format!("packs a [n, k] bf16 matrix on the CPU, got {} {:?}", w.dtype(), w.dims()),
                ));
            }
        };
        // Read in place: a copy would add the largest matrix (the output head's, 600 MB at
        // 1.7B parameters) to the peak memory of loading.
        super::with_values("Bf16Panels::pack", w, |values: &[bf16]| Bf16Panels::from_rows(values, n, k))
    }

    /// Packs row-major [n, k] values.
    pub fn from_rows(w: &[bf16], n: usize, k: usize) -> Bf16Panels {
        assert_eq!(w.len(), n * k, "Bf16Panels: {} values are not [{n}, {k}]", w.len());
        let pairs = k.div_ceil(2).div_ceil(TILE_PAIRS) * TILE_PAIRS;
        let panels = n.div_ceil(NR);
        // On 2 MiB pages of their own from the first byte (`Lines::zeroed_huge`, which says why):
        // a decoding step streams them.
        let mut lines = Lines::zeroed_huge(panels * pairs * NR);
        let b = View { data: w, rs: 1, cs: k };
        lines.words_mut()[..panels * pairs * NR].par_chunks_mut(pairs * NR).enumerate().for_each(|(p, panel)| {
            let (j0, cols) = (p * NR, NR.min(n - p * NR));
            pack_panel(b, k, j0, cols, panel);
        });
        Bf16Panels { n, k, pairs, lines }
    }

    /// Output features (the weight's rows).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Input features (the weight's columns).
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Bytes from one panel's start to the next one's.
    pub(super) fn panel_stride(&self) -> usize {
        self.pairs * NR * 4
    }

    /// Pair rows per panel: K/2 rounded up to a multiple of 16.
    pub(super) fn pairs(&self) -> usize {
        self.pairs
    }

    /// The lanes of panel `p` (`pairs` x 32), from pair 0.
    pub(super) fn panel(&self, p: usize) -> &[u32] {
        let at = p * self.pairs * NR;
        &self.lines.words()[at..at + self.pairs * NR]
    }

    /// The weight back as row-major [n, k] values (for tests and inspection).
    pub fn to_rows(&self) -> Vec<bf16> {
        let mut out = vec![bf16::ZERO; self.n * self.k];
        for j in 0..self.n {
            let panel = self.panel(j / NR);
            for kk in 0..self.k {
                let lane = panel[kk / 2 * NR + j % NR];
                out[j * self.k + kk] = bf16::from_bits(if kk % 2 == 0 { lane as u16 } else { (lane >> 16) as u16 });
            }
        }
        out
    }

    /// `x [.., k] f32 -> [.., n] f32`: `x W^T`, as `Linear` computes it, on the CPU.
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() || x.dtype() != DType::F32 || x.dims().last() != Some(&self.k) {
            return Err(Error::unsupported(
                "Bf16Panels::matmul",
                format!(
                    "{self:?} multiplies f32 activations [.., {}] on the CPU, got {} {:?}",
                    self.k,
                    x.dtype(),
                    x.dims()
                ),
            ));
        }
        let m = x.elem_count() / self.k.max(1);
        // Inline dims: a decoding step allocates nothing here.
        let mut dims = crate::Dims::from(x.dims());
        *dims.last_mut().expect("rank >= 1") = self.n;
        // The activations read where they are (a prefill's are several MB: a copy of them was
        // a tenth of the product's time).
        let mut out = super::pool::overwritten(m * self.n);
        super::with_values("Bf16Panels::matmul", x, |xs: &[f32]| self.matmul_into(xs, m, &mut out))?;
        Tensor::from_vec(out, dims, x.device())
    }

    /// `out [m, n] = x [m, k] W^T`: up to [`FEW_ROWS`] rows, the panels read front to back with
    /// `vdpbf16ps`; more, the AMX GEMM or else the `vdpbf16ps` GEMM on the panels; [`reference`]
    /// where none runs now.
    pub fn matmul_into(&self, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(x.len(), m * self.k, "Bf16Panels::matmul_into: x is not [{m}, {}]", self.k);
        assert_eq!(out.len(), m * self.n, "Bf16Panels::matmul_into: out is not [{m}, {}]", self.n);
        if m == 0 || self.n == 0 {
            return;
        }
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if super::isa::bf16_gemm() && self.k > 0 {
            let a = View { data: x, rs: self.k, cs: 1 };
            let b = super::gemm_bf16::Weights::Panels(self);
            if m <= FEW_ROWS {
                // SAFETY: isa::bf16_gemm implies AVX512_BF16 (and F/BW/VL/DQ); x is [m, k], out [m, n].
                unsafe { x86::matvec(self, x, m, out) };
            } else if super::isa::amx() {
                // SAFETY: isa::amx checked `gemm_bf16_amx::available`; a is [m, k], out [m, n].
                unsafe { super::gemm_bf16_amx::gemm(m, self.n, self.k, a, b, out, self.n, true) };
            } else {
                // SAFETY: as above for AVX512_BF16; a is [m, k], out [m, n].
                unsafe { super::gemm_bf16::gemm_weights(m, self.n, self.k, a, b, out, self.n, true) };
            }
            return;
        }
        reference(self, x, m, out);
    }
}

/// Packs features `j0..j0 + cols` of `b` (a [n, k] weight seen as k x n) into `panel`
/// (`pairs` x 32 lanes, zero past K/2 and past `cols`, as it was allocated).
fn pack_panel(b: View<bf16>, k: usize, j0: usize, cols: usize, panel: &mut [u32]) {
    let kp = k.div_ceil(2);
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if super::gemm_bf16::available() {
        for p in (0..kp).step_by(super::gemm_bf16::KC) {
            let kc = super::gemm_bf16::KC.min(kp - p);
            super::gemm_bf16::pack_b(b, k, j0, cols, p, kc, &mut panel[p * NR..]);
        }
        return;
    }
    for c in 0..cols {
        let row = &b.data[(j0 + c) * k..(j0 + c + 1) * k];
        for p in 0..kp {
            let hi = row.get(2 * p + 1).map_or(0, |v| v.to_bits());
            panel[p * NR + c] = row[2 * p].to_bits() as u32 | (hi as u32) << 16;
        }
    }
}

/// The products' math in plain Rust: activations rounded to bf16, each pair added as
/// `vdpbf16ps` does (high half, then low half, into an f32 sum), pairs in order.
pub fn reference(w: &Bf16Panels, x: &[f32], m: usize, out: &mut [f32]) {
    let round = |v: f32| bf16::from_f32(v).to_f32();
    for i in 0..m {
        let row = &x[i * w.k..(i + 1) * w.k];
        for j in 0..w.n {
            let panel = w.panel(j / NR);
            let mut acc = 0.0f32;
            for p in 0..w.k.div_ceil(2) {
                let lane = panel[p * NR + j % NR];
                let (lo, hi) = (bf16::from_bits(lane as u16).to_f32(), bf16::from_bits((lane >> 16) as u16).to_f32());
                let x_hi = row.get(2 * p + 1).map_or(0.0, |&v| round(v));
                acc += x_hi * hi;
                acc += round(row[2 * p]) * lo;
            }
            out[i * w.n + j] = acc;
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod x86 {
    use std::arch::x86_64::*;

    use rayon::prelude::*;

    use super::super::gemm_bf16::{Dst, NR, pack_pairs};
    use super::{Bf16Panels, PANELS_PER_TASK, PARALLEL_MIN_BYTES, ROWS_PER_PASS};

    /// `m` activation rows times the panels: `out[i][j] = sum_p x_pair[i][p] . panel[p][j]`.
    /// [`ROWS_PER_PASS`] rows at a time on [`panel_dot_rows`].
    ///
    /// # Safety
    /// The CPU has AVX512_BF16 (and AVX-512 F/BW/VL/DQ); x is [m, k], out [m, n].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
    pub(super) unsafe fn matvec(w: &Bf16Panels, x: &[f32], m: usize, out: &mut [f32]) {
        // The rounded activations in a buffer kept per thread (a decoding step allocates
        // nothing); pairs past K/2 stay zero, as the panels' are.
        let (pairs, kp) = (w.pairs(), w.k.div_ceil(2));
        let mut xp = PAIRS.take();
        xp.clear();
        xp.resize(m * pairs, 0);
        for (row, packed) in x.chunks_exact(w.k).zip(xp.chunks_exact_mut(pairs)) {
            pack_pairs(row, &mut packed[..kp]);
        }
        let xp_rows = &xp[..];
        let prefetch = super::super::isa::stream_prefetch();
        let n = w.n;
        let dst = Dst(out.as_mut_ptr());
        let panels = n.div_ceil(NR);
        let task = |t: usize| {
            for p in t * PANELS_PER_TASK..((t + 1) * PANELS_PER_TASK).min(panels) {
                let (j0, cols) = (p * NR, NR.min(n - p * NR));
                for r0 in (0..m).step_by(ROWS_PER_PASS) {
                    let rows = ROWS_PER_PASS.min(m - r0);
                    let row = |i: usize| &xp_rows[(r0 + i) * pairs..][..pairs];
                    let mut sums = [[0f32; NR]; ROWS_PER_PASS];
                    let panel = w.panel(p);
                    // SAFETY: AVX512_BF16 is enabled in this function (the caller's contract);
                    // each call reads rows r0..r0 + rows < m.
                    unsafe {
                        match rows {
                            1 => panel_dot_rows::<1, 2>(std::array::from_fn(row), panel, prefetch, &mut sums),
                            2 => panel_dot_rows::<2, 2>(std::array::from_fn(row), panel, prefetch, &mut sums),
                            3 => panel_dot_rows::<3, 2>(std::array::from_fn(row), panel, prefetch, &mut sums),
                            4 => panel_dot_rows::<4, 2>(std::array::from_fn(row), panel, prefetch, &mut sums),
                            5 => panel_dot_rows::<5, 1>(std::array::from_fn(row), panel, prefetch, &mut sums),
                            6 => panel_dot_rows::<6, 1>(std::array::from_fn(row), panel, prefetch, &mut sums),
                            7 => panel_dot_rows::<7, 1>(std::array::from_fn(row), panel, prefetch, &mut sums),
                            _ => panel_dot_rows::<8, 1>(std::array::from_fn(row), panel, prefetch, &mut sums),
                        }
                    }
                    for (i, s) in sums.iter().enumerate().take(rows) {
                        // SAFETY: row r0 + i < m and columns j0..j0 + cols < n lie in out, and
                        // only this task writes panel p's columns.
                        unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), dst.at((r0 + i) * n + j0), cols) };
                    }
                }
            }
        };
        let tasks = panels.div_ceil(PANELS_PER_TASK);
        if w.n * w.k * 2 >= PARALLEL_MIN_BYTES {
            // One task per piece of work a thread can take (rayon would otherwise leave pieces of
            // an eighth of the product or more, and the thread done first waits for the other).
            (0..tasks).into_par_iter().with_max_len(1).for_each(task);
        } else {
            (0..tasks).for_each(task);
        }
        PAIRS.set(xp);
    }

    thread_local! {
        /// The activation rows rounded to bf16 pairs, kept from step to step on the calling
        /// thread.
        static PAIRS: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
    }

    /// Words (4 KiB) ahead of the current position that [`panel_dot_rows`] prefetches into L2
    /// where `isa::stream_prefetch` says so: as for the rows' kernel (`matvec_bf16`), the
    /// hardware prefetchers alone do not keep a thread's stream in flight on every CPU. Past the
    /// panel's end that is the next panel of the task (panels lie one after another); a
    /// prefetch never faults.
    const AHEAD: usize = 1024;

    /// `R` rows' sums of one panel into `sums[..R]`, each weight line loaded once for all of
    /// them, two pairs a step. With `S = 2` the even and odd pairs add into separate sets of
    /// accumulators (summed at the end), so that few rows still have enough independent
    /// `vdpbf16ps` chains in flight to hide the instruction's latency (1 and 2 rows have 2 and
    /// 4 chains with one set); from 5 rows on one set (2R chains) fills the registers.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
    unsafe fn panel_dot_rows<const R: usize, const S: usize>(
        xp: [&[u32]; R],
        panel: &[u32],
        prefetch: bool,
        sums: &mut [[f32; NR]; ROWS_PER_PASS],
    ) {
        let pairs = xp[0].len();
        debug_assert!(panel.len() == pairs * NR && pairs.is_multiple_of(2) && xp.iter().all(|x| x.len() == pairs));
        let mut acc = [[[_mm512_setzero_ps(); 2]; R]; S];
        let p = panel.as_ptr();
        for q in (0..pairs).step_by(2) {
            if prefetch {
                // The four lines of the two pairs, 4 KiB on.
                for line in 0..4 {
                    _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(q * NR + line * 16 + AHEAD) as *const i8);
                }
            }
            for u in 0..2 {
                let acc = &mut acc[u % S];
                // SAFETY: pair q + u < pairs is inside every row of xp, and its 32 lanes inside
                // the panel.
                unsafe {
                    let at = (q + u) * NR;
                    let w0: __m512bh = std::mem::transmute(_mm512_load_si512(p.add(at) as *const _));
                    let w1: __m512bh = std::mem::transmute(_mm512_load_si512(p.add(at + 16) as *const _));
                    for (acc, x) in acc.iter_mut().zip(&xp) {
                        let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*x.get_unchecked(q + u) as i32));
                        acc[0] = _mm512_dpbf16_ps(acc[0], x, w0);
                        acc[1] = _mm512_dpbf16_ps(acc[1], x, w1);
                    }
                }
            }
        }
        for (r, s) in sums.iter_mut().enumerate().take(R) {
            let (mut lo, mut hi) = (acc[0][r][0], acc[0][r][1]);
            for set in &acc[1..] {
                lo = _mm512_add_ps(lo, set[r][0]);
                hi = _mm512_add_ps(hi, set[r][1]);
            }
            // SAFETY: 2 x 16 lanes into a 32-lane array.
            unsafe {
                _mm512_storeu_ps(s.as_mut_ptr(), lo);
                _mm512_storeu_ps(s.as_mut_ptr().add(16), hi);
            }
        }
    }
}
