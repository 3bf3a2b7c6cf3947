//! Where a tensor's elements sit in its storage: shape, strides (in elements) and an offset.
//! Every view op (reshape, permute, narrow, broadcast, squeeze) is a new `Layout` over the same
//! storage; nothing here copies data.

use crate::{Dims, Error, Result, Shape};

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Layout {
    shape: Shape,
    strides: Dims,
    offset: usize,
}

impl Layout {
    /// The row-major layout of `shape` starting at element 0.
    pub fn contiguous(shape: impl Into<Shape>) -> Layout {
        let shape = shape.into();
        let strides = shape.contiguous_strides();
        Layout { shape, strides, offset: 0 }
    }

    /// A layout from raw parts. Backends use it to describe views they build themselves.
    pub fn new(shape: Shape, strides: impl Into<Dims>, offset: usize) -> Layout {
        let strides = strides.into();
        debug_assert_eq!(shape.rank(), strides.len());
        Layout { shape, strides, offset }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }
    pub fn elem_count(&self) -> usize {
        self.shape.elem_count()
    }

    /// True when the elements are row-major and adjacent, so the view is one slice
    /// `storage[offset .. offset + elem_count]`. Dims of extent 1 may have any stride.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&dim, &stride) in self.dims().iter().zip(&self.strides).rev() {
            if dim != 1 && stride != expected {
                return false;
            }
            expected *= dim;
        }
        true
    }

    /// The storage range of a contiguous layout.
    pub fn contiguous_range(&self) -> Option<std::ops::Range<usize>> {
        self.is_contiguous().then(|| self.offset..self.offset + self.elem_count())
    }

    /// One past the largest storage index this layout touches (0 for an empty view): the
    /// storage must be at least this long.
    pub fn storage_extent(&self) -> usize {
        if self.elem_count() == 0 {
            return 0;
        }
        self.offset + self.dims().iter().zip(&self.strides).map(|(&d, &s)| (d - 1) * s).sum::<usize>() + 1
    }

    /// A view with the same elements in a new shape. Only contiguous layouts can be reshaped
    /// without a copy; `None` asks the caller to make the tensor contiguous first.
    pub fn reshape(&self, shape: &Shape) -> Option<Layout> {
        if shape.elem_count() != self.elem_count() || !self.is_contiguous() {
            return None;
        }
        Some(Layout { shape: shape.clone(), strides: shape.contiguous_strides(), offset: self.offset })
    }

    /// Reorders the dims: dim `i` of the result is dim `perm[i]` of `self`.
    pub fn permute(&self, perm: &[usize]) -> Result<Layout> {
        let rank = self.rank();
        // A bit per dim seen: a rank past 64 is refused as not a permutation.
        let mut seen = 0u64;
        let fresh = |p: usize, seen: &mut u64| p < 64 && std::mem::replace(seen, *seen | 1 << p) & 1 << p == 0;
        if perm.len() != rank || perm.iter().any(|&p| p >= rank || !fresh(p, &mut seen)) {
            return Err(Error::shape(
                "permute",
                format!("{perm:?} is not a permutation of the {rank} dims of {:?}", self.shape),
            ));
        }
        Ok(Layout {
            shape: Shape::from(perm.iter().map(|&p| self.dims()[p]).collect::<Dims>()),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    /// Keeps `len` entries of `axis` starting at `start`.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Layout> {
        let dim = self.dims()[axis];
        if start.checked_add(len).is_none_or(|end| end > dim) {
            return Err(Error::index(
                "narrow",
                format!(
                    "range {start}..{} is out of bounds for axis {axis} of {:?}",
                    start.saturating_add(len),
                    self.shape
                ),
            ));
        }
        let mut dims = Dims::from(self.dims());
        dims[axis] = len;
        Ok(Layout {
            shape: Shape::from(dims),
            strides: self.strides.clone(),
            offset: self.offset + if len == 0 { 0 } else { start * self.strides[axis] },
        })
    }

    /// A view of `shape` that repeats this one along new or size-1 dims (stride 0).
    pub fn broadcast_to(&self, shape: &Shape) -> Result<Layout> {
        let rank = shape.rank();
        if rank < self.rank() {
            return Err(Error::shape(
                "broadcast_to",
                format!("cannot broadcast {:?} to the lower-rank {shape:?}", self.shape),
            ));
        }
        let extra = rank - self.rank();
        let mut strides = Dims::zeros(rank);
        for i in 0..self.rank() {
            let (from, to) = (self.dims()[i], shape.dims()[extra + i]);
            strides[extra + i] = if from == to {
                self.strides[i]
            } else if from == 1 {
                0
            } else {
                return Err(Error::shape("broadcast_to", format!("cannot broadcast {:?} to {shape:?}", self.shape)));
            };
        }
        Ok(Layout { shape: shape.clone(), strides, offset: self.offset })
    }

    /// Removes `axis`, which must have extent 1.
    pub fn squeeze(&self, axis: usize) -> Result<Layout> {
        if self.dims()[axis] != 1 {
            return Err(Error::shape(
                "squeeze",
                format!("axis {axis} of {:?} has extent {}, not 1", self.shape, self.dims()[axis]),
            ));
        }
        let mut dims = Dims::from(self.dims());
        let mut strides = self.strides.clone();
        dims.remove(axis);
        strides.remove(axis);
        Ok(Layout { shape: Shape::from(dims), strides, offset: self.offset })
    }

    /// Inserts an axis of extent 1 before position `axis` (`axis == rank` appends).
    pub fn unsqueeze(&self, axis: usize) -> Result<Layout> {
        if axis > self.rank() {
            return Err(Error::shape("unsqueeze", format!("axis {axis} is out of range for {:?}", self.shape)));
        }
        let mut dims = Dims::from(self.dims());
        let mut strides = self.strides.clone();
        let stride = if axis < self.rank() { self.strides[axis] * self.dims()[axis] } else { 1 };
        dims.insert(axis, 1);
        strides.insert(axis, stride);
        Ok(Layout { shape: Shape::from(dims), strides, offset: self.offset })
    }

    /// The storage index of the element at `index` (one entry per dim).
    pub fn index_of(&self, index: &[usize]) -> usize {
        self.offset + index.iter().zip(&self.strides).map(|(i, s)| i * s).sum::<usize>()
    }

    /// Storage indices of every element in row-major order.
    pub fn offsets(&self) -> StridedOffsets {
        StridedOffsets::new(self, 0)
    }
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Layout{{shape: {:?}, strides: {:?}, offset: {}}}", self.shape, self.strides, self.offset)
    }
}

/// Iterates the storage indices of a layout in row-major order, starting at any linear
/// position (so parallel kernels can each start at their own chunk).
#[derive(Clone)]
pub struct StridedOffsets {
    dims: Dims,
    strides: Dims,
    index: Dims,
    next: usize,
    remaining: usize,
}

impl StridedOffsets {
    /// Starts at linear position `start` of the layout's row-major order.
    pub fn new(layout: &Layout, start: usize) -> StridedOffsets {
        let dims = Dims::from(layout.dims());
        let strides = layout.strides.clone();
        let total = layout.elem_count();
        let start = start.min(total);
        let mut index = Dims::zeros(dims.len());
        let mut rest = start;
        let mut next = layout.offset();
        for d in (0..dims.len()).rev() {
            if dims[d] > 0 {
                index[d] = rest % dims[d];
                rest /= dims[d];
                next += index[d] * strides[d];
            }
        }
        StridedOffsets { dims, strides, index, next, remaining: total - start }
    }
}

impl Iterator for StridedOffsets {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let current = self.next;
        // Advance the multi-index like an odometer, updating the storage index incrementally.
        for d in (0..self.dims.len()).rev() {
            self.index[d] += 1;
            self.next += self.strides[d];
            if self.index[d] < self.dims[d] {
                break;
            }
            self.next -= self.strides[d] * self.dims[d];
            self.index[d] = 0;
        }
        Some(current)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for StridedOffsets {}

/// Merges adjacent dims that are contiguous with each other in every one of `layouts` (which
/// share one shape), so strided kernels run long inner loops. Returns the merged dims and each
/// layout's merged strides; dims of extent 1 are dropped. Kept inline ([`Dims`]): the strided
/// kernels call this for every op, and a decoded token runs hundreds of them.
pub fn coalesce<const N: usize>(layouts: [&Layout; N]) -> (Dims, [Dims; N]) {
    let dims = layouts[0].dims();
    let mut out_dims = Dims::new();
    let mut out_strides: [Dims; N] = std::array::from_fn(|_| Dims::new());
    for (d, &dim) in dims.iter().enumerate() {
        if dim == 1 {
            continue;
        }
        let mergeable = !out_dims.is_empty()
            && layouts.iter().enumerate().all(|(i, l)| {
                let last = *out_strides[i].last().unwrap_or(&0);
                last == l.strides()[d] * dim
            });
        if mergeable {
            *out_dims.last_mut().unwrap_or(&mut 0) *= dim;
            for (i, l) in layouts.iter().enumerate() {
                if let Some(s) = out_strides[i].last_mut() {
                    *s = l.strides()[d];
                }
            }
        } else {
            out_dims.push(dim);
            for (i, l) in layouts.iter().enumerate() {
                out_strides[i].push(l.strides()[d]);
            }
        }
    }
    (out_dims, out_strides)
}
