//! CPU kernel of RMSNorm: the f32 path is `vmath`'s vectorised one, f64 a plain loop per row.

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

/// The norm's weight as a slice: borrowed where it is contiguous (a loaded weight always is),
/// so a decoding step does not copy every norm's weight.
fn weight_view<'a, T: Copy + Sync + Send + Default + 'static>(w: &'a [T], lw: &Layout) -> Cow<'a, [T]> {
    match lw.contiguous_range() {
        Some(range) => Cow::Borrowed(&w[range]),
        None => Cow::Owned(strided::gather(w, lw)),
    }
}
