//! Vectorised f32 math for the memory-bound kernels: exp, sigmoid, SiLU and GELU(tanh) over
//! slices (with the gated product of a GLU), and the row pieces of softmax and RMSNorm (max,
//! sum of squares, scaling). AVX-512 and AVX2 paths, chosen by [`Isa`]; the scalar path uses the
//! standard library's exp, so it is the libm reference itself.
//!
//! exp on the SIMD paths (Cody and Waite's reduction, as in Cephes' `expf`): n = round(x log2 e),
//! r = x - n ln 2 with ln 2 split in two so r is exact to a few ulp, e^r by a degree-7 polynomial
//! on |r| <= ln2/2, and 2^n applied as two halves so inputs near the overflow and underflow
//! bounds need no special case: the product overflows to +inf, or underflows through the
//! subnormals to 0, as libm's does; NaN stays NaN. Relative error against the correctly rounded
//! value is within 4 ulp (5e-7) for results above f32's smallest normal; the tests check it.
//!
//! SiLU and GELU(tanh) share one form: x * sigmoid(z) with z = x for SiLU and
//! z = 2 sqrt(2/pi) (x + 0.044715 x^3) for GELU, since 0.5 (1 + tanh(u)) = sigmoid(2u).

use std::borrow::Cow;

use rayon::prelude::*;

use super::isa::{self, Isa, dispatch};
use super::strided;
use crate::Layout;
use crate::backend::{GluActivation, RmsNormSpec};

/// An elementwise function of the vectorised kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Exp,
    Sigmoid,
    Silu,
    GeluTanh,
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_CUBIC: f32 = 0.044715;

impl Act {
    /// The scalar path (libm's exp).
    #[inline]
    pub fn scalar(self, x: f32) -> f32 {
        match self {
            Act::Exp => x.exp(),
            Act::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Act::Silu => x / (1.0 + (-x).exp()),
            // x sigmoid(2u) rather than 0.5 x (1 + tanh u): no cancellation for negative x.
            Act::GeluTanh => x / (1.0 + (-2.0 * SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)).exp()),
        }
    }
}

/// `out[i] = act(x[i])`, times `up[i]` when given (the gated product of a GLU). Equal lengths.
pub fn apply(isa: Isa, act: Act, x: &[f32], up: Option<&[f32]>, out: &mut [f32]) {
    assert_eq!(x.len(), out.len());
    if let Some(u) = up {
        assert_eq!(u.len(), out.len());
    }
    let scalar = |x: &[f32], up: Option<&[f32]>, out: &mut [f32]| match up {
        Some(u) => out.iter_mut().zip(x).zip(u).for_each(|((o, &v), &u)| *o = act.scalar(v) * u),
        None => out.iter_mut().zip(x).for_each(|(o, &v)| *o = act.scalar(v)),
    };
    dispatch!(isa, scalar(x, up, out), x86::apply_avx2(act, x, up, out), x86::apply_avx512(act, x, up, out))
}

/// The largest element (-inf for an empty slice; NaN elements are skipped as `>` skips them).
pub fn max(isa: Isa, x: &[f32]) -> f32 {
    let scalar = |x: &[f32]| x.iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    dispatch!(isa, scalar(x), x86::max_avx2(x), x86::max_avx512(x))
}

/// In place `x[i] = exp(x[i] - shift)`, returning the sum of the results.
pub fn exp_shifted_sum(isa: Isa, x: &mut [f32], shift: f32) -> f32 {
    let scalar = |x: &mut [f32]| {
        let mut sum = 0.0;
        for v in x.iter_mut() {
            *v = (*v - shift).exp();
            sum += *v;
        }
        sum
    };
    dispatch!(isa, scalar(x), x86::exp_sum_avx2(x, shift), x86::exp_sum_avx512(x, shift))
}

/// `sum_i exp(x[i] - shift)`, leaving x alone (log-softmax).
pub fn exp_shifted_total(isa: Isa, x: &[f32], shift: f32) -> f32 {
    let mut chunk = [0.0f32; 256];
    x.chunks(256)
        .map(|c| {
            let buf = &mut chunk[..c.len()];
            buf.copy_from_slice(c);
            exp_shifted_sum(isa, buf, shift)
        })
        .sum()
}

/// `sum_i x[i]^2`.
pub fn sum_squares(isa: Isa, x: &[f32]) -> f32 {
    let scalar = |x: &[f32]| {
        let mut acc = [0.0f32; 8];
        let c = x.chunks_exact(8);
        let tail: f32 = c.remainder().iter().map(|v| v * v).sum();
        for v in c {
            for i in 0..8 {
                acc[i] += v[i] * v[i];
            }
        }
        acc.iter().sum::<f32>() + tail
    };
    dispatch!(isa, scalar(x), x86::sum_squares_avx2(x), x86::sum_squares_avx512(x))
}

/// In place `x[i] = x[i] * s * g[i]` (`g` absent: `x[i] * s`), g of x's length.
pub fn scale(isa: Isa, x: &mut [f32], s: f32, g: Option<&[f32]>) {
    if let Some(g) = g {
        assert_eq!(g.len(), x.len());
    }
    let scalar = |x: &mut [f32]| match g {
        Some(g) => x.iter_mut().zip(g).for_each(|(v, &g)| *v = *v * s * g),
        None => x.iter_mut().for_each(|v| *v *= s),
    };
    dispatch!(isa, scalar(x), x86::scale_avx2(x, s, g), x86::scale_avx512(x, s, g))
}

/// RMSNorm over the last axis of an f32 view: `x / sqrt(mean(x^2) + eps) * g`, with g = w or
/// 1 + w (`add_unit_offset`), each row on the vectorised path.
pub fn rms_norm(x: &[f32], lx: &Layout, w: Option<Cow<[f32]>>, spec: RmsNormSpec) -> Vec<f32> {
    let isa = isa::active();
    let d = lx.dims().last().copied().unwrap_or(1);
    let mut out = strided::gather(x, lx);
    let eps = spec.eps as f32;
    let g: Option<Cow<[f32]>> = w.map(|w| if spec.add_unit_offset { w.iter().map(|&v| v + 1.0).collect() } else { w });
    let row = |row: &mut [f32]| {
        let inv = (sum_squares(isa, row) / d as f32 + eps).sqrt().recip();
        scale(isa, row, inv, g.as_deref());
    };
    if d > 0 {
        if out.len() >= strided::PARALLEL_MIN {
            out.par_chunks_mut(d).for_each(row);
        } else {
            out.chunks_mut(d).for_each(row);
        }
    }
    out
}

/// `act(gate) * up` for f32 views of one shape (a GLU's gated product).
pub fn glu(gate: &[f32], lg: &Layout, up: &[f32], lu: &Layout, act: GluActivation) -> Vec<f32> {
    let isa = isa::active();
    let act = match act {
        GluActivation::Silu => Act::Silu,
        GluActivation::GeluTanh => Act::GeluTanh,
    };
    let (g, u): (Cow<[f32]>, Cow<[f32]>) = match (lg.contiguous_range(), lu.contiguous_range()) {
        (Some(rg), Some(ru)) => (Cow::Borrowed(&gate[rg]), Cow::Borrowed(&up[ru])),
        _ => (Cow::Owned(strided::gather(gate, lg)), Cow::Owned(strided::gather(up, lu))),
    };
    let mut out = super::pool::overwritten(g.len());
    strided::for_each_chunk(&mut out, |start, chunk| {
        let end = start + chunk.len();
        apply(isa, act, &g[start..end], Some(&u[start..end]), chunk)
    });
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Act, GELU_CUBIC, SQRT_2_OVER_PI};

    const LOG2E: f32 = std::f32::consts::LOG2_E;
    /// ln 2 = LN2_HI + LN2_LO, LN2_HI with few enough bits that n * LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    /// Inputs are clamped here: beyond, exp is +inf or 0 in f32 anyway, and n stays in [-150, 129]
    /// so each half of 2^n is a normal number.
    const X_MAX: f32 = 89.0;
    const X_MIN: f32 = -104.0;
    /// Taylor-like coefficients of e^r on |r| <= ln2/2 (1/k! adjusted as in Cephes' expf).
    const P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];

    macro_rules! exp_body {
        ($x:expr, $set1:ident, $min:ident, $max:ident, $mul:ident, $fmadd:ident, $fnmadd:ident, $add:ident,
         $round:expr, $cvt_i:ident, $srai:ident, $sub_i:ident, $add_i:ident, $slli:ident, $cast:ident) => {{
            // max(lo, x) then min(hi, .) keep a NaN x (the second operand is returned on NaN).
            let x = $min($set1(X_MAX), $max($set1(X_MIN), $x));
            let nf = $round($mul(x, $set1(LOG2E)));
            let r = $fnmadd(nf, $set1(LN2_HI), x);
            let r = $fnmadd(nf, $set1(LN2_LO), r);
            let mut p = $set1(P[0]);
            for &c in &P[1..] {
                p = $fmadd(p, r, $set1(c));
            }
            let r2 = $mul(r, r);
            let p = $add($fmadd(p, r2, r), $set1(1.0));
            let n = $cvt_i(nf);
            let n1 = $srai::<1>(n);
            let n2 = $sub_i(n, n1);
            let bias = $cvt_i($set1(127.0));
            let s1 = $cast($slli::<23>($add_i(n1, bias)));
            let s2 = $cast($slli::<23>($add_i(n2, bias)));
            $mul($mul(p, s1), s2)
        }};
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn round512(v: __m512) -> __m512 {
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v)
    }

    #[inline]
    #[target_feature(enable = "avx")]
    fn round256(v: __m256) -> __m256 {
        _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
    unsafe fn exp512(x: __m512) -> __m512 {
        exp_body!(
            x,
            _mm512_set1_ps,
            _mm512_min_ps,
            _mm512_max_ps,
            _mm512_mul_ps,
            _mm512_fmadd_ps,
            _mm512_fnmadd_ps,
            _mm512_add_ps,
            round512,
            _mm512_cvtps_epi32,
            _mm512_srai_epi32,
            _mm512_sub_epi32,
            _mm512_add_epi32,
            _mm512_slli_epi32,
            _mm512_castsi512_ps
        )
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp256(x: __m256) -> __m256 {
        exp_body!(
            x,
            _mm256_set1_ps,
            _mm256_min_ps,
            _mm256_max_ps,
            _mm256_mul_ps,
            _mm256_fmadd_ps,
            _mm256_fnmadd_ps,
            _mm256_add_ps,
            round256,
            _mm256_cvtps_epi32,
            _mm256_srai_epi32,
            _mm256_sub_epi32,
            _mm256_add_epi32,
            _mm256_slli_epi32,
            _mm256_castsi256_ps
        )
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
    unsafe fn act512(act: Act, x: __m512) -> __m512 {
        unsafe {
            let one = _mm512_set1_ps(1.0);
            match act {
                Act::Exp => exp512(x),
                Act::Sigmoid => _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x)))),
                Act::Silu => _mm512_div_ps(x, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x)))),
                Act::GeluTanh => {
                    let x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
                    let u = _mm512_fmadd_ps(_mm512_set1_ps(GELU_CUBIC), x3, x);
                    let z = _mm512_mul_ps(_mm512_set1_ps(-2.0 * SQRT_2_OVER_PI), u);
                    _mm512_div_ps(x, _mm512_add_ps(one, exp512(z)))
                }
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn act256(act: Act, x: __m256) -> __m256 {
        unsafe {
            let one = _mm256_set1_ps(1.0);
            match act {
                Act::Exp => exp256(x),
                Act::Sigmoid => _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x)))),
                Act::Silu => _mm256_div_ps(x, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x)))),
                Act::GeluTanh => {
                    let x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
                    let u = _mm256_fmadd_ps(_mm256_set1_ps(GELU_CUBIC), x3, x);
                    let z = _mm256_mul_ps(_mm256_set1_ps(-2.0 * SQRT_2_OVER_PI), u);
                    _mm256_div_ps(x, _mm256_add_ps(one, exp256(z)))
                }
            }
        }
    }

    /// The tail of a slice shorter than one vector, through a zero-padded stack buffer so every
    /// element takes the same SIMD path as the body.
    #[inline(always)]
    fn padded<const L: usize>(src: &[f32], fill: f32) -> [f32; L] {
        let mut buf = [fill; L];
        buf[..src.len()].copy_from_slice(src);
        buf
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
    pub unsafe fn apply_avx512(act: Act, x: &[f32], up: Option<&[f32]>, out: &mut [f32]) {
        let n = x.len();
        let mut i = 0;
        unsafe {
            while i < n {
                let len = 16.min(n - i);
                let (xv, uv) = if len == 16 {
                    (_mm512_loadu_ps(x.as_ptr().add(i)), up.map(|u| _mm512_loadu_ps(u.as_ptr().add(i))))
                } else {
                    let xb = padded::<16>(&x[i..], 0.0);
                    (_mm512_loadu_ps(xb.as_ptr()), up.map(|u| _mm512_loadu_ps(padded::<16>(&u[i..], 0.0).as_ptr())))
                };
                let mut y = act512(act, xv);
                if let Some(u) = uv {
                    y = _mm512_mul_ps(y, u);
                }
                if len == 16 {
                    _mm512_storeu_ps(out.as_mut_ptr().add(i), y);
                } else {
                    let mut buf = [0.0f32; 16];
                    _mm512_storeu_ps(buf.as_mut_ptr(), y);
                    out[i..].copy_from_slice(&buf[..len]);
                }
                i += 16;
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn apply_avx2(act: Act, x: &[f32], up: Option<&[f32]>, out: &mut [f32]) {
        let n = x.len();
        let mut i = 0;
        unsafe {
            while i < n {
                let len = 8.min(n - i);
                let (xv, uv) = if len == 8 {
                    (_mm256_loadu_ps(x.as_ptr().add(i)), up.map(|u| _mm256_loadu_ps(u.as_ptr().add(i))))
                } else {
                    let xb = padded::<8>(&x[i..], 0.0);
                    (_mm256_loadu_ps(xb.as_ptr()), up.map(|u| _mm256_loadu_ps(padded::<8>(&u[i..], 0.0).as_ptr())))
                };
                let mut y = act256(act, xv);
                if let Some(u) = uv {
                    y = _mm256_mul_ps(y, u);
                }
                if len == 8 {
                    _mm256_storeu_ps(out.as_mut_ptr().add(i), y);
                } else {
                    let mut buf = [0.0f32; 8];
                    _mm256_storeu_ps(buf.as_mut_ptr(), y);
                    out[i..].copy_from_slice(&buf[..len]);
                }
                i += 8;
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
    pub unsafe fn max_avx512(x: &[f32]) -> f32 {
        let mut i = 0;
        let mut m = f32::NEG_INFINITY;
        unsafe {
            let mut acc = _mm512_set1_ps(f32::NEG_INFINITY);
            while i + 16 <= x.len() {
                // max(v, acc) returns acc when v is NaN, skipping it as the scalar `>` does.
                acc = _mm512_max_ps(_mm512_loadu_ps(x.as_ptr().add(i)), acc);
                i += 16;
            }
            let mut lanes = [0.0f32; 16];
            _mm512_storeu_ps(lanes.as_mut_ptr(), acc);
            for v in lanes.into_iter().chain(x[i..].iter().copied()) {
                if v > m {
                    m = v;
                }
            }
        }
        m
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn max_avx2(x: &[f32]) -> f32 {
        let mut i = 0;
        let mut m = f32::NEG_INFINITY;
        unsafe {
            let mut acc = _mm256_set1_ps(f32::NEG_INFINITY);
            while i + 8 <= x.len() {
                acc = _mm256_max_ps(_mm256_loadu_ps(x.as_ptr().add(i)), acc);
                i += 8;
            }
            let mut lanes = [0.0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
            for v in lanes.into_iter().chain(x[i..].iter().copied()) {
                if v > m {
                    m = v;
                }
            }
        }
        m
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
    pub unsafe fn exp_sum_avx512(x: &mut [f32], shift: f32) -> f32 {
        let n = x.len();
        let mut i = 0;
        unsafe {
            let s = _mm512_set1_ps(shift);
            let mut acc = _mm512_setzero_ps();
            while i + 16 <= n {
                let p = x.as_mut_ptr().add(i);
                let e = exp512(_mm512_sub_ps(_mm512_loadu_ps(p), s));
                _mm512_storeu_ps(p, e);
                acc = _mm512_add_ps(acc, e);
                i += 16;
            }
            let mut total = _mm512_reduce_add_ps(acc);
            if i < n {
                let len = n - i;
                let e = exp512(_mm512_sub_ps(_mm512_loadu_ps(padded::<16>(&x[i..], 0.0).as_ptr()), s));
                let mut buf = [0.0f32; 16];
                _mm512_storeu_ps(buf.as_mut_ptr(), e);
                x[i..].copy_from_slice(&buf[..len]);
                total += buf[..len].iter().sum::<f32>();
            }
            total
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_sum_avx2(x: &mut [f32], shift: f32) -> f32 {
        let n = x.len();
        let mut i = 0;
        unsafe {
            let s = _mm256_set1_ps(shift);
            let mut acc = _mm256_setzero_ps();
            while i + 8 <= n {
                let p = x.as_mut_ptr().add(i);
                let e = exp256(_mm256_sub_ps(_mm256_loadu_ps(p), s));
                _mm256_storeu_ps(p, e);
                acc = _mm256_add_ps(acc, e);
                i += 8;
            }
            let mut total = crate::cpu::matvec::x86::hsum256(acc);
            if i < n {
                let len = n - i;
                let e = exp256(_mm256_sub_ps(_mm256_loadu_ps(padded::<8>(&x[i..], 0.0).as_ptr()), s));
                let mut buf = [0.0f32; 8];
                _mm256_storeu_ps(buf.as_mut_ptr(), e);
                x[i..].copy_from_slice(&buf[..len]);
                total += buf[..len].iter().sum::<f32>();
            }
            total
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
    pub unsafe fn sum_squares_avx512(x: &[f32]) -> f32 {
        let mut i = 0;
        unsafe {
            let mut acc = [_mm512_setzero_ps(); 2];
            while i + 32 <= x.len() {
                let (a, b) = (_mm512_loadu_ps(x.as_ptr().add(i)), _mm512_loadu_ps(x.as_ptr().add(i + 16)));
                acc[0] = _mm512_fmadd_ps(a, a, acc[0]);
                acc[1] = _mm512_fmadd_ps(b, b, acc[1]);
                i += 32;
            }
            _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1])) + x[i..].iter().map(|v| v * v).sum::<f32>()
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sum_squares_avx2(x: &[f32]) -> f32 {
        let mut i = 0;
        unsafe {
            let mut acc = [_mm256_setzero_ps(); 2];
            while i + 16 <= x.len() {
                let (a, b) = (_mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(x.as_ptr().add(i + 8)));
                acc[0] = _mm256_fmadd_ps(a, a, acc[0]);
                acc[1] = _mm256_fmadd_ps(b, b, acc[1]);
                i += 16;
            }
            crate::cpu::matvec::x86::hsum256(_mm256_add_ps(acc[0], acc[1])) + x[i..].iter().map(|v| v * v).sum::<f32>()
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
    pub unsafe fn scale_avx512(x: &mut [f32], s: f32, g: Option<&[f32]>) {
        let mut i = 0;
        unsafe {
            let sv = _mm512_set1_ps(s);
            while i + 16 <= x.len() {
                let p = x.as_mut_ptr().add(i);
                let mut v = _mm512_mul_ps(_mm512_loadu_ps(p), sv);
                if let Some(g) = g {
                    v = _mm512_mul_ps(v, _mm512_loadu_ps(g.as_ptr().add(i)));
                }
                _mm512_storeu_ps(p, v);
                i += 16;
            }
        }
        for j in i..x.len() {
            x[j] = x[j] * s * g.map_or(1.0, |g| g[j]);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scale_avx2(x: &mut [f32], s: f32, g: Option<&[f32]>) {
        let mut i = 0;
        unsafe {
            let sv = _mm256_set1_ps(s);
            while i + 8 <= x.len() {
                let p = x.as_mut_ptr().add(i);
                let mut v = _mm256_mul_ps(_mm256_loadu_ps(p), sv);
                if let Some(g) = g {
                    v = _mm256_mul_ps(v, _mm256_loadu_ps(g.as_ptr().add(i)));
                }
                _mm256_storeu_ps(p, v);
                i += 8;
            }
        }
        for j in i..x.len() {
            x[j] = x[j] * s * g.map_or(1.0, |g| g[j]);
        }
    }
}
