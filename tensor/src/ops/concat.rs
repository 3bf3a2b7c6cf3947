//! Joining tensors: `cat` along an existing axis, `stack` along a new one. (`split` and `chunk`
//! are views, in `view.rs`.)

use crate::{Axis, Error, Result, Tensor};

impl Tensor {
    /// Joins tensors along `axis`; they must agree on every other dim, dtype and device.
    pub fn cat(tensors: &[&Tensor], axis: impl Axis) -> Result<Tensor> {
        let first = tensors.first().ok_or_else(|| Error::shape("cat", "needs at least one tensor"))?;
        let axis = axis.resolve(first.rank(), "cat")?;
        for t in &tensors[1..] {
            first.check_same_device("cat", t)?;
            first.check_same_dtype("cat", t)?;
            let same_rest = t.rank() == first.rank()
                && t.dims().iter().zip(first.dims()).enumerate().all(|(i, (a, b))| i == axis || a == b);
            if !same_rest {
                return Err(Error::shape(
                    "cat",
                    format!("{:?} and {:?} differ outside axis {axis}", first.shape(), t.shape()),
                ));
            }
        }
        if tensors.len() == 1 {
            return Ok((*first).clone());
        }
        let mut dims = first.dims().to_vec();
        dims[axis] = tensors.iter().map(|t| t.dims()[axis]).sum();
        let dtype = first.dtype();
        let srcs: Vec<_> = tensors.iter().map(|t| t.src()).collect();
        let buffer = first.device().backend().concat(&srcs, axis)?;
        Ok(first.new_like(buffer, dims, dtype))
    }

    /// Joins same-shape tensors along a new axis inserted at `axis`.
    pub fn stack(tensors: &[&Tensor], axis: impl Axis) -> Result<Tensor> {
        let first = tensors.first().ok_or_else(|| Error::shape("stack", "needs at least one tensor"))?;
        let axis = axis.resolve(first.rank() + 1, "stack")?;
        let expanded = tensors
            .iter()
            .map(|t| {
                if t.shape() != first.shape() {
                    return Err(Error::shape("stack", format!("{:?} and {:?} differ", first.shape(), t.shape())));
                }
                t.unsqueeze(axis)
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&expanded.iter().collect::<Vec<_>>(), axis)
    }
}
