//! CPU kernels of the indexing ops. Sources are made contiguous and seen as
//! [outer, A, inner] around the indexed axis, so each picked entry is a run of `inner` elements.

use rayon::prelude::*;

use crate::layout::StridedOffsets;
use crate::ops::compare::index_value;
use crate::{Element, Error, HostData, Layout, Result, with_host_data};

use super::strided::{self, PARALLEL_MIN, split_at_axis};

/// The elements of a view as one row-major slice: borrowed when the view is contiguous, a copy
/// otherwise.
fn contiguous_view<'a, T: Element + Default>(v: &'a [T], layout: &Layout) -> std::borrow::Cow<'a, [T]> {
    match layout.contiguous_range() {
        Some(range) => std::borrow::Cow::Borrowed(&v[range]),
        None => std::borrow::Cow::Owned(strided::gather(v, layout)),
    }
}

/// Ids of a view as `usize`, each checked against `bound`.
fn ids(op: &str, data: &HostData, layout: &Layout, bound: usize) -> Result<Vec<usize>> {
    let mut out = vec![0; layout.elem_count()];
    fill_ids(op, data, layout, bound, &mut out)?;
    Ok(out)
}

/// [`ids`] into `out` (one slot per id).
fn fill_ids(op: &str, data: &HostData, layout: &Layout, bound: usize, out: &mut [usize]) -> Result<()> {
    fn fill<T: Copy + num_traits::ToPrimitive>(
        op: &str,
        v: &[T],
        layout: &Layout,
        bound: usize,
        out: &mut [usize],
    ) -> Result<()> {
        for (o, i) in out.iter_mut().zip(StridedOffsets::new(layout, 0)) {
            *o = index_value(op, v[i], bound)?;
        }
        Ok(())
    }
    match data {
        HostData::U32(v) => fill(op, v, layout, bound, out),
        HostData::I64(v) => fill(op, v, layout, bound, out),
        other => Err(Error::dtype(op, format!("ids must be u32 or i64, got {}", other.dtype()))),
    }
}

/// Ids up to which [`index_select`] keeps them on the stack: a decoding step looks up one token
/// per sequence, and the lookup should not allocate a list for it.
const STACK_IDS: usize = 16;

pub fn index_select(
    src: &HostData,
    layout: &Layout,
    axis: usize,
    id_data: &HostData,
    id_layout: &Layout,
) -> Result<HostData> {
    let (outer, a, inner) = split_at_axis(layout.dims(), axis);
    let (mut stack, heap);
    let picks: &[usize] = match id_layout.elem_count() {
        n if n <= STACK_IDS => {
            stack = [0; STACK_IDS];
            fill_ids("index_select", id_data, id_layout, a, &mut stack[..n])?;
            &stack[..n]
        }
        _ => {
            heap = ids("index_select", id_data, id_layout, a)?;
            &heap
        }
    };
    fn run<T: Element + Default>(
        v: &[T],
        layout: &Layout,
        outer: usize,
        a: usize,
        inner: usize,
        picks: &[usize],
    ) -> Vec<T> {
        // An embedding table is large and read a few rows at a time: never copy it whole.
        let x = contiguous_view(v, layout);
        let n = picks.len();
        let mut out = super::pool::overwritten(outer * n * inner);
        if inner == 0 {
            return out;
        }
        let fill = |row: usize, dst: &mut [T]| {
            let (o, i) = (row / n, row % n);
            let start = (o * a + picks[i]) * inner;
            dst.copy_from_slice(&x[start..start + inner]);
        };
        if out.len() >= PARALLEL_MIN {
            out.par_chunks_mut(inner).enumerate().for_each(|(r, d)| fill(r, d));
        } else {
            out.chunks_mut(inner).enumerate().for_each(|(r, d)| fill(r, d));
        }
        out
    }
    Ok(with_host_data!(src, v => HostData::from_vec(run(v, layout, outer, a, inner, picks))))
}

pub fn index_add(
    dst: &HostData,
    dst_layout: &Layout,
    axis: usize,
    id_data: &HostData,
    id_layout: &Layout,
    src: &HostData,
    src_layout: &Layout,
) -> Result<HostData> {
    let (outer, a, inner) = split_at_axis(dst_layout.dims(), axis);
    let picks = ids("index_add", id_data, id_layout, a)?;
    fn run<T: Element + Default + std::ops::Add<Output = T>>(
        d: &[T],
        dl: &Layout,
        s: &[T],
        sl: &Layout,
        (outer, a, inner): (usize, usize, usize),
        picks: &[usize],
    ) -> Vec<T> {
        let mut out = strided::gather(d, dl);
        let s = strided::gather(s, sl);
        let n = picks.len();
        for o in 0..outer {
            for (i, &p) in picks.iter().enumerate() {
                let from = &s[(o * n + i) * inner..(o * n + i + 1) * inner];
                let to = &mut out[(o * a + p) * inner..(o * a + p + 1) * inner];
                for (t, &f) in to.iter_mut().zip(from) {
                    *t = *t + f;
                }
            }
        }
        out
    }
    Ok(match (dst, src) {
        (HostData::F32(d), HostData::F32(s)) => {
            HostData::F32(run(d, dst_layout, s, src_layout, (outer, a, inner), &picks))
        }
        (HostData::F64(d), HostData::F64(s)) => {
            HostData::F64(run(d, dst_layout, s, src_layout, (outer, a, inner), &picks))
        }
        (d, s) => return Err(Error::dtype("index_add", format!("unsupported dtypes {} and {}", d.dtype(), s.dtype()))),
    })
}

/// For each position of `index` (row-major), the storage index in a contiguous array of
/// `src_dims` of the element it addresses along `axis`.
fn addressed(op: &str, src_dims: &[usize], axis: usize, index: &HostData, il: &Layout) -> Result<Vec<usize>> {
    let picks = ids(op, index, il, src_dims[axis])?;
    let strides = crate::Shape::new(src_dims.to_vec()).contiguous_strides();
    let idims = il.dims();
    let mut coord = vec![0usize; idims.len()];
    let mut out = Vec::with_capacity(picks.len());
    for &p in &picks {
        let at: usize =
            coord.iter().zip(&strides).enumerate().map(|(d, (&c, &s))| if d == axis { p * s } else { c * s }).sum();
        out.push(at);
        for d in (0..idims.len()).rev() {
            coord[d] += 1;
            if coord[d] < idims[d] {
                break;
            }
            coord[d] = 0;
        }
    }
    Ok(out)
}

pub fn gather(src: &HostData, layout: &Layout, axis: usize, index: &HostData, il: &Layout) -> Result<HostData> {
    let at = addressed("gather", layout.dims(), axis, index, il)?;
    Ok(with_host_data!(src, v => {
        let x = contiguous_view(v, layout);
        HostData::from_vec(at.iter().map(|&i| x[i]).collect::<Vec<_>>())
    }))
}

pub fn scatter_add(
    dst: &HostData,
    dst_layout: &Layout,
    axis: usize,
    index: &HostData,
    il: &Layout,
    src: &HostData,
    src_layout: &Layout,
) -> Result<HostData> {
    let at = addressed("scatter_add", dst_layout.dims(), axis, index, il)?;
    fn run<T: Element + Default + std::ops::Add<Output = T>>(
        d: &[T],
        dl: &Layout,
        s: &[T],
        sl: &Layout,
        at: &[usize],
    ) -> Vec<T> {
        let mut out = strided::gather(d, dl);
        for (&i, &v) in at.iter().zip(&strided::gather(s, sl)) {
            out[i] = out[i] + v;
        }
        out
    }
    Ok(match (dst, src) {
        (HostData::F32(d), HostData::F32(s)) => HostData::F32(run(d, dst_layout, s, src_layout, &at)),
        (HostData::F64(d), HostData::F64(s)) => HostData::F64(run(d, dst_layout, s, src_layout, &at)),
        (d, s) => {
            return Err(Error::dtype("scatter_add", format!("unsupported dtypes {} and {}", d.dtype(), s.dtype())));
        }
    })
}
