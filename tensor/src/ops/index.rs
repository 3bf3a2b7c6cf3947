//! Indexing by tensors of ids: `index_select` (embedding lookup, gathering a MoE expert's tokens)
//! and its adjoint `index_add` (scattering expert outputs back), `gather` (picking each row's
//! label logit, an expert's weight) and its adjoint `scatter_add`. Ids are u32 or i64; one out
//! of range is an error naming it.

use crate::{Axis, DType, Error, Result, Tensor};

impl Tensor {
    fn check_ids(&self, op: &str, ids: &Tensor) -> Result<()> {
        self.check_same_device(op, ids)?;
        if !ids.dtype().is_int() {
            return Err(Error::dtype(op, format!("ids must be u32 or i64, got {}", ids.dtype())));
        }
        Ok(())
    }

    /// `out[.., i, ..] = self[.., ids[i], ..]` along `axis`, for 1-D `ids`.
    pub fn index_select(&self, ids: &Tensor, axis: impl Axis) -> Result<Tensor> {
        const OP: &str = "index_select";
        let axis = axis.resolve(self.rank(), OP)?;
        self.check_ids(OP, ids)?;
        if ids.rank() != 1 {
            return Err(Error::shape(OP, format!("ids must be 1-D, got {:?}", ids.shape())));
        }
        let mut dims = crate::Dims::from(self.dims());
        dims[axis] = ids.elem_count();
        let buffer = self.device().backend().index_select(self.src(), axis, ids.src())?;
        Ok(self.new_like(buffer, dims, self.dtype()))
    }

    /// Rows of a 2-D table picked by ids of any shape: the result has shape `ids.shape + [D]`.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        if self.rank() != 2 {
            return Err(Error::shape("embedding", format!("the table must be 2-D, got {:?}", self.shape())));
        }
        let mut dims = crate::Dims::from(ids.dims());
        dims.push(self.dims()[1]);
        self.index_select(&ids.flatten_all()?, 0usize)?.reshape(dims)
    }

    /// A copy of `self` with `src[.., i, ..]` added into `self[.., ids[i], ..]`; repeated ids
    /// accumulate.
    pub fn index_add(&self, ids: &Tensor, src: &Tensor, axis: impl Axis) -> Result<Tensor> {
        const OP: &str = "index_add";
        let axis = axis.resolve(self.rank(), OP)?;
        self.check_ids(OP, ids)?;
        self.check_same_device(OP, src)?;
        self.check_same_dtype(OP, src)?;
        let mut expected = self.dims().to_vec();
        expected[axis] = ids.elem_count();
        if ids.rank() != 1 || src.dims() != expected.as_slice() {
            return Err(Error::shape(
                OP,
                format!(
                    "for destination {:?} and ids {:?}, source must be {expected:?}, got {:?}",
                    self.shape(),
                    ids.shape(),
                    src.shape()
                ),
            ));
        }
        self.float_op(OP, |dst| {
            let src = src.to_dtype(dst.dtype())?;
            let buffer = dst.device().backend().index_add(dst.src(), axis, ids.src(), src.src())?;
            Ok(dst.new_like(buffer, dst.shape().clone(), dst.dtype()))
        })
    }

    /// `out[i][j][k] = self[i][index[i][j][k]][k]` (for `axis = 1`); `index` has the rank of
    /// `self` and gives the output's shape, no larger than `self` off `axis`.
    pub fn gather(&self, index: &Tensor, axis: impl Axis) -> Result<Tensor> {
        const OP: &str = "gather";
        let axis = axis.resolve(self.rank(), OP)?;
        self.check_ids(OP, index)?;
        let fits = index.rank() == self.rank()
            && index.dims().iter().zip(self.dims()).enumerate().all(|(d, (i, s))| d == axis || i <= s);
        if !fits {
            return Err(Error::shape(
                OP,
                format!("index {:?} does not fit source {:?} off axis {axis}", index.shape(), self.shape()),
            ));
        }
        let buffer = self.device().backend().gather(self.src(), axis, index.src())?;
        Ok(self.new_like(buffer, index.shape().clone(), self.dtype()))
    }

    /// A copy of `self` with `out[i][index[i][j][k]][k] += src[i][j][k]` (for `axis = 1`):
    /// the adjoint of `gather`. `index` and `src` share a shape.
    pub fn scatter_add(&self, index: &Tensor, src: &Tensor, axis: impl Axis) -> Result<Tensor> {
        const OP: &str = "scatter_add";
        let axis = axis.resolve(self.rank(), OP)?;
        self.check_ids(OP, index)?;
        self.check_same_device(OP, src)?;
        self.check_same_dtype(OP, src)?;
        let fits = index.shape() == src.shape()
            && index.rank() == self.rank()
            && index.dims().iter().zip(self.dims()).enumerate().all(|(d, (i, s))| d == axis || i <= s);
        if !fits {
            return Err(Error::shape(
                OP,
                format!(
                    "index {:?} and source {:?} do not fit destination {:?} off axis {axis}",
                    index.shape(),
                    src.shape(),
                    self.shape()
                ),
            ));
        }
        self.float_op(OP, |dst| {
            let src = src.to_dtype(dst.dtype())?;
            let buffer = dst.device().backend().scatter_add(dst.src(), axis, index.src(), src.src())?;
            Ok(dst.new_like(buffer, dst.shape().clone(), dst.dtype()))
        })
    }

    /// Ids as u32 (the index type every backend accepts).
    pub fn to_ids(&self) -> Result<Tensor> {
        self.to_dtype(DType::U32)
    }
}
