//! CPU kernels of RMSNorm: the f32 path is `vmath`'s vectorised one, f64 a plain loop per row;
//! and the residual add fused with the norm after it ([`add_rms_norm`]).

use std::borrow::Cow;

use crate::backend::RmsNormSpec;
use crate::{Error, FloatElement, HostData, Layout, Result};

use super::strided::{self, rows_mut};
use super::vmath;

pub fn rms_norm(
    x: &HostData,
    lx: &Layout,
    weight: Option<(&HostData, &Layout)>,
    spec: RmsNormSpec,
) -> Result<HostData> {
    fn run<T: FloatElement>(x: &[T], lx: &Layout, w: Option<Cow<[T]>>, spec: RmsNormSpec) -> Vec<T> {
        let d = lx.dims().last().copied().unwrap_or(1);
        let mut out = strided::gather(x, lx);
        let eps = T::from_f64(spec.eps).unwrap_or_else(T::zero);
        let scale: Option<Cow<[T]>> =
            w.map(|w| if spec.add_unit_offset { w.iter().map(|&v| v + T::one()).collect() } else { w });
        rows_mut(&mut out, d, |_, row| {
            let ms = row.iter().map(|&v| v * v).sum::<T>() / T::from_usize(d).unwrap_or_else(T::one);
            let inv = (ms + eps).sqrt().recip();
            match &scale {
                Some(s) => row.iter_mut().zip(s.iter()).for_each(|(v, &g)| *v = *v * inv * g),
                None => row.iter_mut().for_each(|v| *v = *v * inv),
            }
        });
        out
    }
    Ok(match (x, weight) {
        (HostData::F32(v), None) => HostData::F32(vmath::rms_norm(v, lx, None, spec)),
        (HostData::F32(v), Some((HostData::F32(w), lw))) => {
            HostData::F32(vmath::rms_norm(v, lx, Some(weight_view(w, lw)), spec))
        }
        (HostData::F64(v), None) => HostData::F64(run(v, lx, None, spec)),
        (HostData::F64(v), Some((HostData::F64(w), lw))) => HostData::F64(run(v, lx, Some(weight_view(w, lw)), spec)),
        (v, _) => return Err(Error::unsupported_dtype("rms_norm", v.dtype())),
    })
}

/// `(x + r, rms_norm(x + r))` for contiguous f32 rows of `d` values (a pre-norm layer's
/// residual add and the norm of its next branch), both written in one pass over each row.
///
/// Why: as two ops a decoding step ran the add and then the norm each with its own output
/// from the pool, dispatch and pass, twice a layer, for 1,024 values at the Qwen3-0.6B shape.
/// A decoded token's serial steps run with the caches cold (the weights' stream has just
/// passed through them), so each op's bookkeeping costs microseconds, not nanoseconds: fused
/// (as the GPU's kernel already was), the two norm steps went from 9.3 to 7.2 µs a layer
/// (`LLM_CPU_PROFILE`, docs/BENCHMARKS.md).
pub fn add_rms_norm(x: &[f32], r: &[f32], d: usize, w: Option<&[f32]>, spec: RmsNormSpec) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), r.len(), "add_rms_norm: x and r differ in length");
    let isa = super::isa::active();
    let mut h = super::pool::overwritten::<f32>(x.len());
    let mut n = super::pool::overwritten::<f32>(x.len());
    if d == 0 {
        return (h, n);
    }
    let eps = spec.eps as f32;
    let g = gain(w, spec);
    // Row `i` of both outputs from row `i` of x and r.
    let row = |i: usize, h: &mut [f32], n: &mut [f32]| {
        let (x, r) = (&x[i * d..(i + 1) * d], &r[i * d..(i + 1) * d]);
        h.iter_mut().zip(x.iter().zip(r)).for_each(|(h, (&a, &b))| *h = a + b);
        let inv = (vmath::sum_squares(isa, h) / d as f32 + eps).sqrt().recip();
        n.copy_from_slice(h);
        vmath::scale(isa, n, inv, g.as_deref());
    };
    if x.len() >= strided::PARALLEL_MIN {
        use rayon::prelude::*;
        h.par_chunks_mut(d).zip(n.par_chunks_mut(d)).enumerate().for_each(|(i, (h, n))| row(i, h, n));
    } else {
        h.chunks_mut(d).zip(n.chunks_mut(d)).enumerate().for_each(|(i, (h, n))| row(i, h, n));
    }
    (h, n)
}

/// What a norm multiplies its normalised rows by: the weight `w`, or `1 + w` for Gemma's
/// zero-centred weights (`add_unit_offset`), borrowed where it is `w` itself.
pub(super) fn gain(w: Option<&[f32]>, spec: RmsNormSpec) -> Option<Cow<'_, [f32]>> {
    w.map(|w| if spec.add_unit_offset { Cow::Owned(w.iter().map(|&v| v + 1.0).collect()) } else { Cow::Borrowed(w) })
}

/// The norm's weight as a slice: borrowed where it is contiguous (a loaded weight always is),
/// so a decoding step does not copy every norm's weight.
fn weight_view<'a, T: Copy + Sync + Send + Default + 'static>(w: &'a [T], lw: &Layout) -> Cow<'a, [T]> {
    match lw.contiguous_range() {
        Some(range) => Cow::Borrowed(&w[range]),
        None => Cow::Owned(strided::gather(w, lw)),
    }
}
