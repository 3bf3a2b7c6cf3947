//! Strided loops shared by the CPU kernels: mapping a view, zipping views of one shape, and
//! splitting work across threads once a tensor is large enough to pay for it.

use rayon::prelude::*;

use crate::layout::{StridedOffsets, coalesce};
use crate::{Dims, Layout};

use super::pool;

/// Below this many elements a kernel runs on one thread: spawning costs more than it saves.
pub const PARALLEL_MIN: usize = 1 << 15;
/// Elements per parallel task.
const TASK: usize = 1 << 14;

/// `f` applied to every element of a view, in row-major order, into a vector from the pool of
/// output buffers.
pub fn map<T: Copy + Sync, U: Copy + Send + Default + 'static>(
    src: &[T],
    layout: &Layout,
    f: impl Fn(T) -> U + Sync,
) -> Vec<U> {
    let n = layout.elem_count();
    if let Some(range) = layout.contiguous_range() {
        let s = &src[range];
        if n >= PARALLEL_MIN {
            let mut out = pool::take(n);
            s.par_iter().map(|&x| f(x)).collect_into_vec(&mut out);
            return out;
        }
        return pool::collect(n, s.iter().map(|&x| f(x)));
    }
    if let Some(rows) = Rows::of(layout) {
        // Runs of contiguous elements (a transposed pair of outer dims, a narrowed cache):
        // one offset per row, and a plain loop over the run.
        return filled(
            n,
            |first, chunk| {
                for (r, row) in chunk.chunks_mut(rows.len).enumerate() {
                    let s = rows.start(first / rows.len + r);
                    for (o, &x) in row.iter_mut().zip(&src[s..s + rows.len]) {
                        o.write(f(x));
                    }
                }
            },
            rows.len,
        );
    }
    let mut out = pool::overwritten(n);
    for_each_chunk(&mut out, |start, chunk| {
        for (o, i) in chunk.iter_mut().zip(StridedOffsets::new(layout, start)) {
            *o = f(src[i]);
        }
    });
    out
}

/// A view whose innermost (coalesced) dim is contiguous, seen as rows: the storage offset of
/// each row's first element, so loops move runs rather than single elements.
pub struct Rows {
    /// Elements per row.
    pub len: usize,
    outer_dims: Dims,
    outer_strides: Dims,
    offset: usize,
}

impl Rows {
    /// Rows of at least 4 contiguous elements, or `None` (a column, a broadcast dim innermost).
    pub fn of(layout: &Layout) -> Option<Rows> {
        let (dims, strides) = coalesce([layout]);
        let r = dims.len();
        if r == 0 || strides[0][r - 1] != 1 || dims[r - 1] < 4 {
            return None;
        }
        Some(Rows {
            len: dims[r - 1],
            outer_dims: dims[..r - 1].into(),
            outer_strides: strides[0][..r - 1].into(),
            offset: layout.offset(),
        })
    }

    /// The storage offset of row `row`'s first element.
    pub fn start(&self, row: usize) -> usize {
        let (mut rest, mut at) = (row, self.offset);
        for d in (0..self.outer_dims.len()).rev() {
            at += (rest % self.outer_dims[d]) * self.outer_strides[d];
            rest /= self.outer_dims[d];
        }
        at
    }
}

/// A vector of `n` elements every one of which `fill(start, chunk)` writes, over chunks of whole
/// `row`-element rows (in parallel when large). The memory is not zeroed first: a large
/// allocation from the heap would be cleared by `memset`, a pass as costly as the copy itself.
fn filled<U: Copy + Send + 'static>(
    n: usize,
    fill: impl Fn(usize, &mut [std::mem::MaybeUninit<U>]) + Sync,
    row: usize,
) -> Vec<U> {
    let mut taken = std::mem::ManuallyDrop::new(pool::take::<U>(n));
    // SAFETY: the allocation of an empty Vec<U> with room for n, seen as n MaybeUninit<U>
    // (same layout), which need no initialisation.
    let mut out: Vec<std::mem::MaybeUninit<U>> =
        unsafe { Vec::from_raw_parts(taken.as_mut_ptr().cast(), n, taken.capacity()) };
    let per_task = (TASK / row.max(1)).max(1) * row.max(1);
    if n >= PARALLEL_MIN {
        out.par_chunks_mut(per_task).enumerate().for_each(|(t, chunk)| fill(t * per_task, chunk));
    } else {
        fill(0, &mut out);
    }
    let mut out = std::mem::ManuallyDrop::new(out);
    // SAFETY: `fill` wrote every element (each chunk is whole rows covering all n), and
    // MaybeUninit<U> has U's layout, so the buffer is a valid Vec<U> of the same length and
    // capacity.
    unsafe { Vec::from_raw_parts(out.as_mut_ptr().cast::<U>(), out.len(), out.capacity()) }
}

/// A contiguous copy of a view.
pub fn gather<T: Copy + Sync + Send + Default + 'static>(src: &[T], layout: &Layout) -> Vec<T> {
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
pub fn zip_map<A: Copy + Sync, B: Copy + Sync, U: Copy + Send + Default + 'static>(
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
            return pool::collect(n, a.iter().zip(b).map(|(&x, &y)| f(x, y)));
        }
        // Task-sized chunks with a plain inner loop the compiler vectorises.
        let mut out = pool::overwritten(n);
        out.par_chunks_mut(TASK).zip(a.par_chunks(TASK)).zip(b.par_chunks(TASK)).for_each(|((o, a), b)| {
            for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        });
        return out;
    }
    let mut out = pool::overwritten(n);
    if n == 0 {
        return out;
    }
    let (dims, strides) = coalesce([la, lb]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::StridedOffsets;

    /// Views whose innermost dim is contiguous (transposes of outer dims, narrowed rows, offsets)
    /// and views that are not, large enough to run in parallel: the row path gives exactly the
    /// elements the element-by-element walk gives, and writing through it lands them back.
    #[test]
    fn rows_of_a_view_are_its_elements_in_order() {
        let src: Vec<u32> = (0..200_000).collect();
        let base = Layout::contiguous([5, 40, 8, 100]);
        let views = [
            base.permute(&[0, 2, 1, 3]).unwrap(),
            base.permute(&[1, 0, 2, 3]).unwrap().narrow(3, 3, 90).unwrap(),
            base.narrow(1, 7, 20).unwrap().permute(&[2, 0, 1, 3]).unwrap(),
            base.permute(&[0, 1, 3, 2]).unwrap(),
            Layout::contiguous([3, 7]).permute(&[1, 0]).unwrap(),
        ];
        for (i, view) in views.iter().enumerate() {
            let want: Vec<u32> = StridedOffsets::new(view, 0).map(|o| src[o]).collect();
            assert_eq!(map(&src, view, |x| x), want, "view {i}");
            let mut dst = crate::HostData::U32(vec![0; src.len()]);
            super::super::copy::write_strided(&mut dst, view, &crate::HostData::U32(want.clone())).unwrap();
            let crate::HostData::U32(dst) = dst else { unreachable!() };
            for o in StridedOffsets::new(view, 0) {
                assert_eq!(dst[o], src[o], "view {i}: element at {o} written back");
            }
        }
    }
}
