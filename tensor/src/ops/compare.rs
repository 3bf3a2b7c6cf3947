//! Comparisons (giving u32 masks of 0 and 1) and `where_cond`, which picks between two tensors
//! by such a mask. Both broadcast like the binary ops.

use num_traits::ToPrimitive;

use crate::{DType, Error, Result, Shape, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub const ALL: [CmpOp; 6] = [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge];

    pub fn name(&self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
    }

    #[inline(always)]
    pub fn apply<T: PartialOrd>(&self, a: T, b: T) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
}

impl Tensor {
    /// Elementwise comparison with broadcasting: a u32 tensor of 0 and 1.
    pub fn compare(&self, op: CmpOp, rhs: &Tensor) -> Result<Tensor> {
        let (lhs, rhs) = self.broadcast_pair(op.name(), rhs)?;
        let (lhs, rhs) =
            if lhs.dtype().is_half() { (lhs.to_dtype(DType::F32)?, rhs.to_dtype(DType::F32)?) } else { (lhs, rhs) };
        let buffer = lhs.device().backend().compare(op, lhs.src(), rhs.src())?;
        Ok(lhs.new_like(buffer, lhs.shape().clone(), DType::U32))
    }

    /// Compares with a constant of this tensor's dtype.
    pub fn compare_scalar(&self, op: CmpOp, value: f64) -> Result<Tensor> {
        let rhs = Tensor::full(value, (), self.dtype(), self.device())?;
        self.compare(op, &rhs)
    }

    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(CmpOp::Eq, rhs)
    }
    pub fn ne(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(CmpOp::Ne, rhs)
    }
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(CmpOp::Lt, rhs)
    }
    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(CmpOp::Le, rhs)
    }
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(CmpOp::Gt, rhs)
    }
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(CmpOp::Ge, rhs)
    }

    /// `self != 0 ? on_true : on_false` elementwise, all three broadcast together. `self` is a
    /// mask of any dtype; the two branches share a dtype.
    pub fn where_cond(&self, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        const OP: &str = "where_cond";
        self.check_same_device(OP, on_true)?;
        self.check_same_device(OP, on_false)?;
        on_true.check_same_dtype(OP, on_false)?;
        let shape = Shape::broadcast(OP, &Shape::broadcast(OP, self.shape(), on_true.shape())?, on_false.shape())?;
        let cond = self.broadcast_to(&shape)?;
        let (t, f) = (on_true.broadcast_to(&shape)?, on_false.broadcast_to(&shape)?);
        let dtype = t.dtype();
        let (t, f) = if dtype.is_half() { (t.to_dtype(DType::F32)?, f.to_dtype(DType::F32)?) } else { (t, f) };
        let buffer = t.device().backend().where_cond(cond.src(), t.src(), f.src())?;
        t.new_like(buffer, shape, t.dtype()).to_dtype(dtype)
    }
}

/// Reads an index element as `usize`, for kernels that accept u32 and i64 ids.
pub fn index_value<T: ToPrimitive>(op: &str, v: T, bound: usize) -> Result<usize> {
    match v.to_i64() {
        Some(i) if i >= 0 && (i as u64) < bound as u64 => Ok(i as usize),
        other => Err(Error::index(
            op,
            format!(
                "index {} is out of range for an axis of extent {bound}",
                other.map_or("?".to_string(), |i| i.to_string())
            ),
        )),
    }
}
