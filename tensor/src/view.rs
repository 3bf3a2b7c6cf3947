//! View ops: new layouts over the same buffer, never a copy (except `reshape` of a
//! non-contiguous tensor, which must copy, as in PyTorch).

use crate::{Axis, Error, Result, Shape, Tensor};

impl Tensor {
    /// The same elements in a new shape with the same element count.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.checked_elem_count() != Some(self.elem_count()) {
            return Err(Error::shape(
                "reshape",
                format!("cannot reshape {:?} ({} elements) to {shape:?}", self.shape(), self.elem_count()),
            ));
        }
        match self.layout().reshape(&shape) {
            Some(layout) => Ok(self.with_layout(layout)),
            None => {
                let c = self.contiguous()?;
                let layout = c
                    .layout()
                    .reshape(&shape)
                    .ok_or_else(|| Error::shape("reshape", "contiguous copy is not reshapeable"))?;
                Ok(c.with_layout(layout))
            }
        }
    }

    /// Collapses all dims into one.
    pub fn flatten_all(&self) -> Result<Tensor> {
        self.reshape(self.elem_count())
    }

    /// Merges dims `from..=to` into one.
    pub fn flatten(&self, from: impl Axis, to: impl Axis) -> Result<Tensor> {
        let (from, to) = (from.resolve(self.rank(), "flatten")?, to.resolve(self.rank(), "flatten")?);
        if from > to {
            return Err(Error::shape("flatten", format!("start axis {from} is after end axis {to}")));
        }
        let dims = self.dims();
        let mut new: Vec<usize> = dims[..from].to_vec();
        new.push(dims[from..=to].iter().product());
        new.extend_from_slice(&dims[to + 1..]);
        self.reshape(new)
    }

    /// Reorders dims: dim `i` of the result is dim `perm[i]` of `self`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout().permute(perm)?))
    }

    /// Swaps two dims.
    pub fn transpose(&self, a: impl Axis, b: impl Axis) -> Result<Tensor> {
        let (a, b) = (a.resolve(self.rank(), "transpose")?, b.resolve(self.rank(), "transpose")?);
        let mut perm: crate::Dims = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Swaps the last two dims (the matrix transpose of each batch entry).
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::shape("t", format!("needs at least 2 dims, got {:?}", self.shape())));
        }
        self.transpose(self.rank() - 2, self.rank() - 1)
    }

    /// Keeps `len` entries of `axis` starting at `start`.
    pub fn narrow(&self, axis: impl Axis, start: usize, len: usize) -> Result<Tensor> {
        let axis = axis.resolve(self.rank(), "narrow")?;
        Ok(self.with_layout(self.layout().narrow(axis, start, len)?))
    }

    /// Entry `index` of `axis`, with that axis removed.
    pub fn select(&self, axis: impl Axis, index: usize) -> Result<Tensor> {
        let axis = axis.resolve(self.rank(), "select")?;
        self.narrow(axis, index, 1)?.squeeze(axis)
    }

    /// Views of consecutive pieces of `axis` with the given sizes (they must add up to its extent).
    pub fn split(&self, sizes: &[usize], axis: impl Axis) -> Result<Vec<Tensor>> {
        let axis = axis.resolve(self.rank(), "split")?;
        self.shape().split_ranges(sizes, axis)?.into_iter().map(|(start, len)| self.narrow(axis, start, len)).collect()
    }

    /// `n` equal views along `axis` (its extent must divide by `n`).
    pub fn chunk(&self, n: usize, axis: impl Axis) -> Result<Vec<Tensor>> {
        let axis = axis.resolve(self.rank(), "chunk")?;
        self.split(&self.shape().chunk_sizes(n, axis)?, axis)
    }

    /// A view repeating this tensor along new leading dims or size-1 dims (NumPy rules).
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape == *self.shape() {
            return Ok(self.clone());
        }
        Ok(self.with_layout(self.layout().broadcast_to(&shape)?))
    }

    /// Removes an axis of extent 1.
    pub fn squeeze(&self, axis: impl Axis) -> Result<Tensor> {
        let axis = axis.resolve(self.rank(), "squeeze")?;
        Ok(self.with_layout(self.layout().squeeze(axis)?))
    }

    /// Inserts an axis of extent 1 before `axis` (`rank` appends; negative counts from the end of
    /// the result, so `-1` appends).
    pub fn unsqueeze(&self, axis: impl Axis) -> Result<Tensor> {
        let axis = axis.resolve(self.rank() + 1, "unsqueeze")?;
        Ok(self.with_layout(self.layout().unsqueeze(axis)?))
    }
}
