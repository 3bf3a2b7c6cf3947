//! View ops and their derivatives: each moves the gradient back through the inverse view
//! (reshape back, inverse permutation, pad a narrowed range with zeros, sum a broadcast).

use tensor::{Axis, Result, Shape, Tensor};

use crate::Var;
use crate::rules::rule;

impl Var {
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Var> {
        let x = self.value();
        let from = x.shape().clone();
        let y = x.reshape(shape)?;
        Ok(Var::from_op(y, &[self], rule("reshape", move |g: &Tensor| Ok(vec![Some(g.reshape(&from)?)]))))
    }

    pub fn flatten_all(&self) -> Result<Var> {
        self.reshape(self.elem_count())
    }

    /// Merges dims `from..=to` into one.
    pub fn flatten(&self, from: impl Axis, to: impl Axis) -> Result<Var> {
        let x = self.value();
        let target = x.flatten(from, to)?.shape().clone();
        self.reshape(target)
    }

    pub fn permute(&self, perm: &[usize]) -> Result<Var> {
        let y = self.value().permute(perm)?;
        let mut inverse = tensor::Dims::zeros(perm.len());
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        Ok(Var::from_op(y, &[self], rule("permute", move |g: &Tensor| Ok(vec![Some(g.permute(&inverse)?)]))))
    }

    pub fn transpose(&self, a: impl Axis, b: impl Axis) -> Result<Var> {
        let r = self.rank();
        let (a, b) = (a.resolve(r, "transpose")?, b.resolve(r, "transpose")?);
        let mut perm: tensor::Dims = (0..r).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Swaps the last two dims.
    pub fn t(&self) -> Result<Var> {
        let r = self.rank();
        if r < 2 {
            return Err(tensor::Error::shape("t", format!("needs at least 2 dims, got {:?}", self.shape())));
        }
        self.transpose(r - 2, r - 1)
    }

    /// Keeps `len` entries of `axis` from `start`; the gradient is zero outside them.
    pub fn narrow(&self, axis: impl Axis, start: usize, len: usize) -> Result<Var> {
        let x = self.value();
        let axis = axis.resolve(x.rank(), "narrow")?;
        let full = x.dims()[axis];
        let shape = x.shape().clone();
        let y = x.narrow(axis, start, len)?;
        Ok(Var::from_op(
            y,
            &[self],
            rule("narrow", move |g: &Tensor| {
                let pad = |n: usize| {
                    let mut dims = shape.dims().to_vec();
                    dims[axis] = n;
                    Tensor::zeros(dims, g.dtype(), g.device())
                };
                let (before, after) = (pad(start)?, pad(full - start - len)?);
                Ok(vec![Some(Tensor::cat(&[&before, g, &after], axis)?)])
            }),
        ))
    }

    /// Entry `index` of `axis`, removing the axis.
    pub fn select(&self, axis: impl Axis, index: usize) -> Result<Var> {
        let axis = axis.resolve(self.rank(), "select")?;
        self.narrow(axis, index, 1)?.squeeze(axis)
    }

    /// Views of consecutive pieces of `axis`.
    pub fn split(&self, sizes: &[usize], axis: impl Axis) -> Result<Vec<Var>> {
        let axis = axis.resolve(self.rank(), "split")?;
        self.shape().split_ranges(sizes, axis)?.into_iter().map(|(start, len)| self.narrow(axis, start, len)).collect()
    }

    /// `n` equal pieces along `axis`.
    pub fn chunk(&self, n: usize, axis: impl Axis) -> Result<Vec<Var>> {
        let axis = axis.resolve(self.rank(), "chunk")?;
        self.split(&self.shape().chunk_sizes(n, axis)?, axis)
    }

    /// Repeats along new or size-1 dims; the gradient is summed back.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Var> {
        let x = self.value();
        let from = x.shape().clone();
        let y = x.broadcast_to(shape)?;
        Ok(Var::from_op(y, &[self], rule("broadcast_to", move |g: &Tensor| Ok(vec![Some(g.sum_to_shape(&from)?)]))))
    }

    pub fn squeeze(&self, axis: impl Axis) -> Result<Var> {
        let x = self.value();
        let axis = axis.resolve(x.rank(), "squeeze")?;
        let y = x.squeeze(axis)?;
        Ok(Var::from_op(y, &[self], rule("squeeze", move |g: &Tensor| Ok(vec![Some(g.unsqueeze(axis)?)]))))
    }

    pub fn unsqueeze(&self, axis: impl Axis) -> Result<Var> {
        let x = self.value();
        let axis = axis.resolve(x.rank() + 1, "unsqueeze")?;
        let y = x.unsqueeze(axis)?;
        Ok(Var::from_op(y, &[self], rule("unsqueeze", move |g: &Tensor| Ok(vec![Some(g.squeeze(axis)?)]))))
    }

    /// A contiguous copy; the gradient passes through.
    pub fn contiguous(&self) -> Result<Var> {
        let y = self.value().contiguous()?;
        Ok(Var::from_op(y, &[self], rule("contiguous", |g: &Tensor| Ok(vec![Some(g.clone())]))))
    }
}
