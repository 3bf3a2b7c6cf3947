//! Strided loops shared by the CPU kernels: mapping a view, zipping views of one shape, and
//! splitting work across threads once a tensor is large enough to pay for it.

use rayon::prelude::*;

use crate::Layout;
use crate::layout::{StridedOffsets, coalesce};

/// Below this many elements a kernel runs on one thread: spawning costs more than it saves.
pub const PARALLEL_MIN: usize = 1 << 15;
/// Elements per parallel task.
const TASK: usize = 1 << 14;

/// `f` applied to every element of a view, in row-major order.
pub fn map<T: Copy + Sync, U: Copy + Send + Default>(src: &[T], layout: &Layout, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let n = layout.elem_count();
    if let Some(range) = layout.contiguous_range() {
        let s = &src[range];
        return if n >= PARALLEL_MIN {
            s.par_iter().map(|&x| f(x)).collect()
        } else {
            s.iter().map(|&x| f(x)).collect()
        };
    }
    let mut out = vec![U::default(); n];
    for_each_chunk(&mut out, |start, chunk| {
        for (o, i) in chunk.iter_mut().zip(StridedOffsets::new(layout, start)) {
            *o = f(src[i]);
        }
    });
    out
}

/// A contiguous copy of a view.
pub fn gather<T: Copy + Sync + Send + Default>(src: &[T], layout: &Layout) -> Vec<T> {
    map(src, layout, |x| x)
}

/// Runs `f(start, chunk)` over consecutive chunks of `out`, in parallel when `out` is large.
pub fn for_each_chunk<U: Send>(out: &mut [U], f: impl Fn(usize, &mut [U]) + Sync) {
    if out.len() >= PARALLEL_MIN {
        out.par_chunks_mut(TASK).enumerate().for_each(|(i, chunk)| f(i * TASK, chunk));
    } else {
        f(0, out);
    }
}

/// `f(a, b)` over two views of one shape (already broadcast), in row-major order. Dims that are
/// contiguous in both are merged so the inner loop is long, and the common inner strides
/// (both 1, or one of them 0 for a broadcast operand) get loops the compiler vectorises.
pub fn zip_map<A: Copy + Sync, B: Copy + Sync, U: Copy + Send + Default>(
    a: &[A],
    la: &Layout,
    b: &[B],
    lb: &Layout,
    f: impl Fn(A, B) -> U + Sync,
) -> Vec<U> {
    let n = la.elem_count();
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        let (a, b) = (&a[ra], &b[rb]);
        if n < PARALLEL_MIN {
            return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
        }
        // Task-sized chunks with a plain inner loop the compiler vectorises; a zero-filled
        // vector comes from the allocator's zeroed pages, so the fill costs no extra pass.
        let mut out = vec![U::default(); n];
        out.par_chunks_mut(TASK).zip(a.par_chunks(TASK)).zip(b.par_chunks(TASK)).for_each(|((o, a), b)| {
            for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        });
        return out;
    }
    let mut out = vec![U::default(); n];
    if n == 0 {
        return out;
    }
    let (dims, strides) = coalesce(&[la, lb]);
    if dims.is_empty() {
        out[0] = f(a[la.offset()], b[lb.offset()]);
        return out;
    }
    let inner = dims[dims.len() - 1];
    let (sa, sb) = (strides[0][dims.len() - 1], strides[1][dims.len() - 1]);
    let outer_dims = &dims[..dims.len() - 1];
    let (outer_sa, outer_sb) = (&strides[0][..dims.len() - 1], &strides[1][..dims.len() - 1]);
    let rows_per_task = (TASK / inner).max(1);
    let run_rows = |first_row: usize, chunk: &mut [U]| {
        for (r, row) in chunk.chunks_mut(inner).enumerate() {
            // Storage offsets of this row's first element in each operand.
            let mut rest = first_row + r;
            let (mut oa, mut ob) = (la.offset(), lb.offset());
            for d in (0..outer_dims.len()).rev() {
                let i = rest % outer_dims[d];
                rest /= outer_dims[d];
                oa += i * outer_sa[d];
                ob += i * outer_sb[d];
            }
            match (sa, sb) {
                (1, 1) => {
                    for ((o, &x), &y) in row.iter_mut().zip(&a[oa..oa + inner]).zip(&b[ob..ob + inner]) {
                        *o = f(x, y);
                    }
                }
                (1, 0) => {
                    let y = b[ob];
                    for (o, &x) in row.iter_mut().zip(&a[oa..oa + inner]) {
                        *o = f(x, y);
                    }
                }
                (0, 1) => {
                    let x = a[oa];
                    for (o, &y) in row.iter_mut().zip(&b[ob..ob + inner]) {
                        *o = f(x, y);
                    }
                }
                _ => {
                    for (j, o) in row.iter_mut().enumerate() {
                        *o = f(a[oa + j * sa], b[ob + j * sb]);
                    }
                }
            }
        }
    };
    if n >= PARALLEL_MIN {
        out.par_chunks_mut(rows_per_task * inner).enumerate().for_each(|(t, chunk)| run_rows(t * rows_per_task, chunk));
    } else {
        run_rows(0, &mut out);
    }
    out
}

/// Splits a contiguous shape around `axis` into (outer, axis extent, inner) element counts.
pub fn split_at_axis(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = dims[..axis].iter().product();
    let inner = dims[axis + 1..].iter().product();
    (outer, dims[axis], inner)
}

/// Runs `f(row_index, row)` on each length-`d` row of `x`, in parallel when `x` is large.
pub fn rows_mut<T: Send>(x: &mut [T], d: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if d == 0 {
        return;
    }
    if x.len() >= PARALLEL_MIN {
        x.par_chunks_mut(d).enumerate().for_each(|(r, row)| f(r, row));
    } else {
        x.chunks_mut(d).enumerate().for_each(|(r, row)| f(r, row));
    }
}
