//! Matrix-vector products with f32 activations and f32, bf16 or f16 weights: the whole cost of
//! batch-1 decoding, bound by the speed weights stream from memory. Each product reads every
//! weight once; the threads split the weight into contiguous blocks so each streams its own
//! memory. Half-precision weights are widened in registers (bf16 by a 16-bit shift, f16 with
//! F16C's `vcvtph2ps`) and multiplied-added in f32, so results match an f32 product of the
//! widened weights up to summation order.
//!
//! Two weight orders (see `matmul::matvec`): rows contiguous in the product's K (the Linear
//! layout, `x @ W^T` with W [N, K]: one dot product per output, [`dot`]) and rows contiguous in
//! N (`x @ W` with W [K, N]: scaled rows accumulated, [`axpy4`]). Attention over a KV cache
//! for a decoding step uses the same two orders on rows at a stride (`cpu::cache_rows`).

use half::{bf16, f16};

use super::isa::{Isa, dispatch};

/// A weight element the kernels read: f32 as is, bf16/f16 widened in registers.
pub trait Weight: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    /// `sum_i x[i] * w[i]` (equal lengths) on the given path.
    fn dot(isa: Isa, x: &[f32], w: &[Self]) -> f32;
    /// `R` dot products of one weight row with `R` activation rows, reading the weight row once:
    /// the kernel of a batched decoding step (several sequences' rows against one weight), which
    /// then streams the weights once for the whole batch instead of once per row.
    fn dot_rows<const R: usize>(isa: Isa, xs: [&[f32]; R], w: &[Self]) -> [f32; R] {
        assert!(xs.iter().all(|x| x.len() == w.len()));
        dispatch!(isa, xs.map(|x| dot_scalar(x, w)), x86::dot_rows_avx2(xs, w), x86::dot_rows_avx512(xs, w))
    }
    /// `y[j] += a[0] w0[j] + a[1] w1[j] + a[2] w2[j] + a[3] w3[j]` (equal lengths).
    fn axpy4(isa: Isa, y: &mut [f32], a: [f32; 4], w: [&[Self]; 4]);
}

/// The scalar dot product: 8 independent sums so the loop pipelines.
pub(super) fn dot_scalar<W: Weight>(x: &[f32], w: &[W]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (xc, wc) = (x.chunks_exact(8), w.chunks_exact(8));
    let (xt, wt) = (xc.remainder(), wc.remainder());
    for (xs, ws) in xc.zip(wc) {
        for i in 0..8 {
            acc[i] += xs[i] * ws[i].to_f32();
        }
    }
    let mut total = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (&a, &b) in xt.iter().zip(wt) {
        total += a * b.to_f32();
    }
    total
}

fn axpy4_scalar<W: Weight>(y: &mut [f32], a: [f32; 4], w: [&[W]; 4]) {
    for (j, v) in y.iter_mut().enumerate() {
        *v += a[0] * w[0][j].to_f32() + a[1] * w[1][j].to_f32() + a[2] * w[2][j].to_f32() + a[3] * w[3][j].to_f32();
    }
}

impl Weight for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    fn dot(isa: Isa, x: &[f32], w: &[f32]) -> f32 {
        assert_eq!(x.len(), w.len());
        dispatch!(isa, dot_scalar(x, w), x86::dot_avx2::<f32>(x, w), x86::dot_avx512::<f32>(x, w))
    }
    fn axpy4(isa: Isa, y: &mut [f32], a: [f32; 4], w: [&[f32]; 4]) {
        assert!(w.iter().all(|r| r.len() == y.len()));
        dispatch!(isa, axpy4_scalar(y, a, w), x86::axpy4_avx2(y, a, w), x86::axpy4_avx512(y, a, w))
    }
}

impl Weight for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        // bf16 is the top half of an f32 (half's to_f32 branches on NaN and does not vectorise).
        f32::from_bits((self.to_bits() as u32) << 16)
    }
    fn dot(isa: Isa, x: &[f32], w: &[bf16]) -> f32 {
        assert_eq!(x.len(), w.len());
        dispatch!(isa, dot_scalar(x, w), x86::dot_avx2::<bf16>(x, w), x86::dot_avx512::<bf16>(x, w))
    }
    fn axpy4(isa: Isa, y: &mut [f32], a: [f32; 4], w: [&[bf16]; 4]) {
        assert!(w.iter().all(|r| r.len() == y.len()));
        dispatch!(isa, axpy4_scalar(y, a, w), x86::axpy4_avx2(y, a, w), x86::axpy4_avx512(y, a, w))
    }
}

impl Weight for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn dot(isa: Isa, x: &[f32], w: &[f16]) -> f32 {
        assert_eq!(x.len(), w.len());
        dispatch!(isa, dot_scalar(x, w), x86::dot_avx2::<f16>(x, w), x86::dot_avx512::<f16>(x, w))
    }
    fn axpy4(isa: Isa, y: &mut [f32], a: [f32; 4], w: [&[f16]; 4]) {
        assert!(w.iter().all(|r| r.len() == y.len()));
        dispatch!(isa, axpy4_scalar(y, a, w), x86::axpy4_avx2(y, a, w), x86::axpy4_avx512(y, a, w))
    }
}

/// `dst[i] = src[i]` widened to f32 (equal lengths): half-precision weights turned into an f32
/// panel for the GEMM of prefill.
pub fn widen<W: Weight>(isa: Isa, src: &[W], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    dispatch!(
        isa,
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s.to_f32()),
        x86::widen_avx2(src, dst),
        x86::widen_avx512(src, dst)
    )
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::any::TypeId;
    use std::arch::x86_64::*;

    use half::{bf16, f16};

    use super::Weight;

    /// 16 weights at `p` as f32, for a weight type of 4 or 2 bytes.
    #[inline(always)]
    pub(crate) unsafe fn load16<W: Weight>(p: *const W) -> __m512 {
        unsafe {
            if TypeId::of::<W>() == TypeId::of::<f32>() {
                _mm512_loadu_ps(p as *const f32)
            } else if TypeId::of::<W>() == TypeId::of::<bf16>() {
                let h = _mm256_loadu_si256(p as *const __m256i);
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
            } else {
                debug_assert!(TypeId::of::<W>() == TypeId::of::<f16>());
                _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
            }
        }
    }

    /// 8 weights at `p` as f32.
    #[inline(always)]
    pub(crate) unsafe fn load8<W: Weight>(p: *const W) -> __m256 {
        unsafe {
            if TypeId::of::<W>() == TypeId::of::<f32>() {
                _mm256_loadu_ps(p as *const f32)
            } else if TypeId::of::<W>() == TypeId::of::<bf16>() {
                let h = _mm_loadu_si128(p as *const __m128i);
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
            } else {
                _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
            }
        }
    }

    /// How far ahead `dot_avx512` prefetches into L2 where `isa::stream_prefetch` says so (Intel
    /// CPUs): the rows of a decoding step's weight are one stream per thread, which Intel's
    /// hardware prefetchers alone left short of the memory's bandwidth.
    const STREAM_AHEAD_BYTES: usize = 4 << 10;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub unsafe fn dot_avx512<W: Weight>(x: &[f32], w: &[W]) -> f32 {
        let n = x.len();
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let mut i = 0;
        let prefetch = super::super::isa::stream_prefetch();
        let (line, ahead) = (64 / std::mem::size_of::<W>(), STREAM_AHEAD_BYTES / std::mem::size_of::<W>());
        // SAFETY: the loads stay below n; a prefetch never faults, so reaching past the row
        // (into the next rows of a Linear's weight, the same stream) is harmless.
        unsafe {
            let mut acc = [_mm512_setzero_ps(); 4];
            while i + 64 <= n {
                if prefetch {
                    for l in (0..64).step_by(line) {
                        _mm_prefetch::<_MM_HINT_T1>(wp.wrapping_add(i + ahead + l) as *const i8);
                    }
                }
                for (u, a) in acc.iter_mut().enumerate() {
                    let o = i + 16 * u;
                    *a = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(o)), load16(wp.add(o)), *a);
                }
                i += 64;
            }
            while i + 16 <= n {
                acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(i)), load16(wp.add(i)), acc[0]);
                i += 16;
            }
            let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
            let mut total = _mm512_reduce_add_ps(sum);
            while i < n {
                total += *xp.add(i) * (*wp.add(i)).to_f32();
                i += 1;
            }
            total
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_avx2<W: Weight>(x: &[f32], w: &[W]) -> f32 {
        let n = x.len();
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let mut i = 0;
        unsafe {
            let mut acc = [_mm256_setzero_ps(); 4];
            while i + 32 <= n {
                for (u, a) in acc.iter_mut().enumerate() {
                    let o = i + 8 * u;
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(o)), load8(wp.add(o)), *a);
                }
                i += 32;
            }
            while i + 8 <= n {
                acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i)), load8(wp.add(i)), acc[0]);
                i += 8;
            }
            let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            let mut total = hsum256(s);
            while i < n {
                total += *xp.add(i) * (*wp.add(i)).to_f32();
                i += 1;
            }
            total
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub unsafe fn dot_rows_avx512<W: Weight, const R: usize>(xs: [&[f32]; R], w: &[W]) -> [f32; R] {
        let n = w.len();
        let wp = w.as_ptr();
        let xp = xs.map(|x| x.as_ptr());
        let mut i = 0;
        unsafe {
            let mut acc = [_mm512_setzero_ps(); R];
            while i + 16 <= n {
                let wv = load16(wp.add(i));
                for r in 0..R {
                    acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(xp[r].add(i)), wv, acc[r]);
                }
                i += 16;
            }
            let mut out = acc.map(|a| _mm512_reduce_add_ps(a));
            for r in 0..R {
                for j in i..n {
                    out[r] += xs[r][j] * w[j].to_f32();
                }
            }
            out
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_rows_avx2<W: Weight, const R: usize>(xs: [&[f32]; R], w: &[W]) -> [f32; R] {
        let n = w.len();
        let wp = w.as_ptr();
        let xp = xs.map(|x| x.as_ptr());
        let mut i = 0;
        unsafe {
            let mut acc = [_mm256_setzero_ps(); R];
            while i + 8 <= n {
                let wv = load8(wp.add(i));
                for r in 0..R {
                    acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(xp[r].add(i)), wv, acc[r]);
                }
                i += 8;
            }
            let mut out = acc.map(|a| hsum256(a));
            for r in 0..R {
                for j in i..n {
                    out[r] += xs[r][j] * w[j].to_f32();
                }
            }
            out
        }
    }

    /// The four horizontal sums of four accumulators at once: pairs interleaved and added, then
    /// quads, then the four 128-bit quarters, a third of the shuffles four separate reductions take
    /// (which, on rows of 1024 values, cost as much as a quarter of the products).
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    pub unsafe fn hsum4(a: [__m512; 4]) -> [f32; 4] {
        // Lane groups of 4 (per 128-bit quarter): s01 = [a0 a1 a0 a1] partial sums, s23 likewise.
        let s01 = _mm512_add_ps(_mm512_unpacklo_ps(a[0], a[1]), _mm512_unpackhi_ps(a[0], a[1]));
        let s23 = _mm512_add_ps(_mm512_unpacklo_ps(a[2], a[3]), _mm512_unpackhi_ps(a[2], a[3]));
        // [a0 a1 a2 a3] per quarter.
        let s =
            _mm512_add_ps(_mm512_shuffle_ps::<0b01_00_01_00>(s01, s23), _mm512_shuffle_ps::<0b11_10_11_10>(s01, s23));
        let h = _mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps::<1>(s));
        let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
        let mut out = [0.0f32; 4];
        // SAFETY: out holds four f32.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), q) };
        out
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub unsafe fn axpy4_avx512<W: Weight>(y: &mut [f32], a: [f32; 4], w: [&[W]; 4]) {
        let n = y.len();
        let yp = y.as_mut_ptr();
        let mut j = 0;
        unsafe {
            let av = a.map(|v| _mm512_set1_ps(v));
            while j + 16 <= n {
                let mut acc = _mm512_loadu_ps(yp.add(j));
                for r in 0..4 {
                    acc = _mm512_fmadd_ps(av[r], load16(w[r].as_ptr().add(j)), acc);
                }
                _mm512_storeu_ps(yp.add(j), acc);
                j += 16;
            }
        }
        super::axpy4_scalar(&mut y[j..], a, w.map(|r| &r[j..]));
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn axpy4_avx2<W: Weight>(y: &mut [f32], a: [f32; 4], w: [&[W]; 4]) {
        let n = y.len();
        let yp = y.as_mut_ptr();
        let mut j = 0;
        unsafe {
            let av = a.map(|v| _mm256_set1_ps(v));
            while j + 8 <= n {
                let mut acc = _mm256_loadu_ps(yp.add(j));
                for r in 0..4 {
                    acc = _mm256_fmadd_ps(av[r], load8(w[r].as_ptr().add(j)), acc);
                }
                _mm256_storeu_ps(yp.add(j), acc);
                j += 8;
            }
        }
        super::axpy4_scalar(&mut y[j..], a, w.map(|r| &r[j..]));
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub unsafe fn widen_avx512<W: Weight>(src: &[W], dst: &mut [f32]) {
        let n = src.len();
        let mut i = 0;
        unsafe {
            while i + 16 <= n {
                _mm512_storeu_ps(dst.as_mut_ptr().add(i), load16(src.as_ptr().add(i)));
                i += 16;
            }
        }
        dst[i..].iter_mut().zip(&src[i..]).for_each(|(d, &s)| *d = s.to_f32());
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn widen_avx2<W: Weight>(src: &[W], dst: &mut [f32]) {
        let n = src.len();
        let mut i = 0;
        unsafe {
            while i + 8 <= n {
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), load8(src.as_ptr().add(i)));
                i += 8;
            }
        }
        dst[i..].iter_mut().zip(&src[i..]).for_each(|(d, &s)| *d = s.to_f32());
    }
}
