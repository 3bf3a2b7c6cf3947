//! Reductions over one axis (sum, max, min, argmax, argmin) and the ones composed from them
//! (mean, several axes, sum back to a broadcast source shape).

use crate::{Axis, DType, Error, Result, Shape, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
    /// Index of the largest entry (the first on ties), as u32.
    ArgMax,
    /// Index of the smallest entry (the first on ties), as u32.
    ArgMin,
}

impl ReduceOp {
    pub const ALL: [ReduceOp; 5] = [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min, ReduceOp::ArgMax, ReduceOp::ArgMin];

    pub fn name(&self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::ArgMax => "argmax",
            ReduceOp::ArgMin => "argmin",
        }
    }

    pub fn is_arg(&self) -> bool {
        matches!(self, ReduceOp::ArgMax | ReduceOp::ArgMin)
    }
}

impl Tensor {
    /// Reduces `axis`; the result keeps it with extent 1 when `keepdim`.
    pub fn reduce(&self, op: ReduceOp, axis: impl Axis, keepdim: bool) -> Result<Tensor> {
        let axis = axis.resolve(self.rank(), op.name())?;
        if self.dims()[axis] == 0 && op != ReduceOp::Sum {
            return Err(Error::shape(op.name(), format!("axis {axis} of {:?} is empty", self.shape())));
        }
        let x = if self.dtype().is_half() { self.to_dtype(DType::F32)? } else { self.clone() };
        let buffer = x.device().backend().reduce(op, x.src(), axis)?;
        let mut dims = x.dims().to_vec();
        dims[axis] = 1;
        let dtype = if op.is_arg() { DType::U32 } else { x.dtype() };
        let out = x.new_like(buffer, dims, dtype);
        let out = if keepdim { out } else { out.squeeze(axis)? };
        if !op.is_arg() && self.dtype().is_half() { out.to_dtype(self.dtype()) } else { Ok(out) }
    }

    pub fn sum(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, axis, keepdim)
    }
    pub fn max(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, axis, keepdim)
    }
    pub fn min(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, axis, keepdim)
    }
    pub fn argmax(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::ArgMax, axis, keepdim)
    }
    pub fn argmin(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::ArgMin, axis, keepdim)
    }

    /// The mean over `axis`.
    pub fn mean(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor> {
        let axis = axis.resolve(self.rank(), "mean")?;
        let n = self.dims()[axis];
        self.float_op("mean", |x| x.sum(axis, keepdim)?.mul_scalar(1.0 / n as f64))
    }

    /// The sum of every element, as a 0-d tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.flatten_all()?.sum(0usize, false)
    }

    /// The mean of every element, as a 0-d tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        let n = self.elem_count();
        self.float_op("mean_all", |x| x.sum_all()?.mul_scalar(1.0 / n as f64))
    }

    /// The largest element, as a 0-d tensor.
    pub fn max_all(&self) -> Result<Tensor> {
        self.flatten_all()?.max(0usize, false)
    }

    /// The smallest element, as a 0-d tensor.
    pub fn min_all(&self) -> Result<Tensor> {
        self.flatten_all()?.min(0usize, false)
    }

    /// Sums several axes, keeping them with extent 1.
    pub fn sum_keepdims(&self, axes: &[usize]) -> Result<Tensor> {
        axes.iter().try_fold(self.clone(), |acc, &axis| acc.sum(axis, true))
    }

    /// Sums this tensor down to `shape`, which broadcasts to it: the adjoint of `broadcast_to`,
    /// used to give a broadcast operand its gradient.
    pub fn sum_to_shape(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let extra = self
            .rank()
            .checked_sub(shape.rank())
            .ok_or_else(|| Error::shape("sum_to_shape", format!("{:?} has lower rank than {shape:?}", self.shape())))?;
        let mut axes: Vec<usize> = (0..extra).collect();
        for (i, &d) in shape.dims().iter().enumerate() {
            match self.dims()[extra + i] {
                x if x == d => {}
                _ if d == 1 => axes.push(extra + i),
                _ => {
                    return Err(Error::shape(
                        "sum_to_shape",
                        format!("{:?} does not broadcast from {shape:?}", self.shape()),
                    ));
                }
            }
        }
        self.sum_keepdims(&axes)?.reshape(shape)
    }
}
