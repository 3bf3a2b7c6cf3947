//! Indexing ops and their derivatives, which come in adjoint pairs: the gradient of
//! `index_select` is an `index_add` into zeros and vice versa; `gather` and `scatter_add` alike.
//! Ids are data, never differentiated.

use tensor::ops::CmpOp;
use tensor::{Axis, Result, Tensor};

use crate::Var;
use crate::rules::rule;

impl Var {
    /// `out[.., i, ..] = self[.., ids[i], ..]`.
    pub fn index_select(&self, ids: &Tensor, axis: impl Axis) -> Result<Var> {
        let x = self.value();
        let axis = axis.resolve(x.rank(), "index_select")?;
        let y = x.index_select(ids, axis)?;
        let ids = ids.clone();
        Ok(Var::from_op(
            y,
            &[self],
            rule("index_select", move |g: &Tensor| {
                Ok(vec![Some(x.zeros_like()?.to_dtype(g.dtype())?.index_add(&ids, g, axis)?)])
            }),
        ))
    }

    /// Rows of a 2-D table picked by ids of any shape (an embedding lookup).
    pub fn embedding(&self, ids: &Tensor) -> Result<Var> {
        let mut dims = tensor::Dims::from(ids.dims());
        dims.push(self.dims()[1]);
        self.index_select(&ids.flatten_all()?, 0usize)?.reshape(dims)
    }

    /// An embedding lookup whose `padding` row gets no gradient, as PyTorch's
    /// `nn.Embedding(padding_idx=..)`: the forward pass is the plain lookup; the backward pass
    /// zeroes the gradient rows of the positions holding `padding` before adding them into the
    /// table.
    pub fn embedding_with_padding(&self, ids: &Tensor, padding: u32) -> Result<Var> {
        let x = self.value();
        let flat = ids.flatten_all()?;
        let hidden = x.dims()[1];
        let mut dims = ids.dims().to_vec();
        dims.push(hidden);
        let y = x.index_select(&flat, 0)?;
        let n = flat.dims()[0];
        Var::from_op(
            y,
            &[self],
            rule("embedding_with_padding", move |g: &Tensor| {
                let keep = flat.compare_scalar(CmpOp::Ne, padding as f64)?.to_dtype(g.dtype())?.reshape([n, 1])?;
                let g = g.mul(&keep)?;
                Ok(vec![Some(x.zeros_like()?.to_dtype(g.dtype())?.index_add(&flat, &g, 0)?)])
            }),
        )
        .reshape(dims)
    }

    /// `self` with `src[.., i, ..]` added into `self[.., ids[i], ..]`.
    pub fn index_add(&self, ids: &Tensor, src: &Var, axis: impl Axis) -> Result<Var> {
        let axis = axis.resolve(self.rank(), "index_add")?;
        let y = self.value().index_add(ids, &src.value(), axis)?;
        let ids = ids.clone();
        Ok(Var::from_op(
            y,
            &[self, src],
            rule("index_add", move |g: &Tensor| Ok(vec![Some(g.clone()), Some(g.index_select(&ids, axis)?)])),
        ))
    }

    /// `out[i][j][k] = self[i][index[i][j][k]][k]` (for axis 1).
    pub fn gather(&self, index: &Tensor, axis: impl Axis) -> Result<Var> {
        let x = self.value();
        let axis = axis.resolve(x.rank(), "gather")?;
        let y = x.gather(index, axis)?;
        let index = index.clone();
        Ok(Var::from_op(
            y,
            &[self],
            rule("gather", move |g: &Tensor| {
                Ok(vec![Some(x.zeros_like()?.to_dtype(g.dtype())?.scatter_add(&index, g, axis)?)])
            }),
        ))
    }

    /// `self` with `out[i][index[i][j][k]][k] += src[i][j][k]` (for axis 1).
    pub fn scatter_add(&self, index: &Tensor, src: &Var, axis: impl Axis) -> Result<Var> {
        let axis = axis.resolve(self.rank(), "scatter_add")?;
        let y = self.value().scatter_add(index, &src.value(), axis)?;
        let index = index.clone();
        Ok(Var::from_op(
            y,
            &[self, src],
            rule("scatter_add", move |g: &Tensor| Ok(vec![Some(g.clone()), Some(g.gather(&index, axis)?)])),
        ))
    }
}
