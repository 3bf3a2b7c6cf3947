//! Shapes, axes and NumPy broadcasting.

use crate::{Dims, Error, Result};

/// The extent of each dimension of a tensor, outermost first.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Dims);

impl Shape {
    pub fn new(dims: Vec<usize>) -> Shape {
        Shape(dims.into())
    }

    /// The shape of a scalar (no dimensions, one element).
    pub fn scalar() -> Shape {
        Shape(Dims::new())
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn elem_count(&self) -> usize {
        self.0.iter().product()
    }

    /// Strides of the row-major (C-contiguous) layout of this shape.
    pub fn contiguous_strides(&self) -> Dims {
        let mut strides = Dims::zeros(self.rank());
        let mut acc = 1;
        for (stride, &dim) in strides.iter_mut().zip(&self.0).rev() {
            *stride = acc;
            acc *= dim;
        }
        strides
    }

    /// The element count, or an error when it overflows `usize` (hostile files declare such shapes).
    pub fn checked_elem_count(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// The `(start, len)` of each consecutive piece `split` cuts along `axis`, one per size; the
    /// sizes must add up to the axis's extent. Shared by `Tensor::split` and `Var::split`.
    pub fn split_ranges(&self, sizes: &[usize], axis: usize) -> Result<Vec<(usize, usize)>> {
        let total: usize = sizes.iter().sum();
        if total != self.0[axis] {
            return Err(Error::shape(
                "split",
                format!("sizes {sizes:?} add up to {total}, but axis {axis} of {self:?} has {}", self.0[axis]),
            ));
        }
        let mut start = 0;
        Ok(sizes
            .iter()
            .map(|&len| {
                start += len;
                (start - len, len)
            })
            .collect())
    }

    /// The sizes of `n` equal pieces along `axis` (its extent must divide by `n`), for `chunk`.
    pub fn chunk_sizes(&self, n: usize, axis: usize) -> Result<Vec<usize>> {
        let dim = self.0[axis];
        if n == 0 || !dim.is_multiple_of(n) {
            return Err(Error::shape("chunk", format!("axis {axis} of {self:?} does not split into {n} equal parts")));
        }
        Ok(vec![dim / n; n])
    }

    /// The NumPy broadcast of two shapes: dims aligned from the right, each pair equal or one of them 1.
    pub fn broadcast(op: &str, lhs: &Shape, rhs: &Shape) -> Result<Shape> {
        let rank = lhs.rank().max(rhs.rank());
        let mut dims = Dims::zeros(rank);
        for (i, dim) in dims.iter_mut().enumerate() {
            let l = dim_from_right(lhs, rank - 1 - i);
            let r = dim_from_right(rhs, rank - 1 - i);
            *dim = match (l, r) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => {
                    return Err(Error::shape(op, format!("shapes {lhs:?} and {rhs:?} do not broadcast")));
                }
            };
        }
        Ok(Shape(dims))
    }
}

fn dim_from_right(shape: &Shape, i: usize) -> usize {
    if i < shape.rank() { shape.0[shape.rank() - 1 - i] } else { 1 }
}

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<Dims> for Shape {
    fn from(dims: Dims) -> Shape {
        Shape(dims)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(dims: Vec<usize>) -> Shape {
        Shape(dims.into())
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Shape {
        Shape(dims.into())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(dims: [usize; N]) -> Shape {
        Shape(dims.into())
    }
}

impl From<&Shape> for Shape {
    fn from(shape: &Shape) -> Shape {
        shape.clone()
    }
}

impl From<usize> for Shape {
    fn from(dim: usize) -> Shape {
        Shape(Dims::from([dim]))
    }
}

impl From<()> for Shape {
    fn from(_: ()) -> Shape {
        Shape::scalar()
    }
}

/// An axis argument: a `usize` counts from the front, a negative `i32`/`isize` from the back
/// (`-1` is the last axis), as in NumPy and PyTorch.
pub trait Axis: Copy {
    fn resolve(self, rank: usize, op: &str) -> Result<usize>;
}

impl Axis for usize {
    fn resolve(self, rank: usize, op: &str) -> Result<usize> {
        if self < rank {
            Ok(self)
        } else {
            Err(Error::shape(op, format!("axis {self} is out of range for a tensor of rank {rank}")))
        }
    }
}

impl Axis for isize {
    fn resolve(self, rank: usize, op: &str) -> Result<usize> {
        let r = rank as isize;
        let axis = if self < 0 { self + r } else { self };
        if (0..r).contains(&axis) {
            Ok(axis as usize)
        } else {
            Err(Error::shape(op, format!("axis {self} is out of range for a tensor of rank {rank}")))
        }
    }
}

impl Axis for i32 {
    fn resolve(self, rank: usize, op: &str) -> Result<usize> {
        (self as isize).resolve(rank, op)
    }
}
