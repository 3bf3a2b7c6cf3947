//! Elementwise ops of two operands with NumPy broadcasting. The tensor layer broadcasts both
//! layouts to the common shape (stride 0 where an operand repeats), so backends only see
//! same-shape views; the gradient of a broadcast operand is summed back in autograd.

use num_traits::Float;

use crate::{DType, Error, Result, Shape, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// `lhs ^ rhs` elementwise.
    Pow,
    /// The larger of the two (the first on ties).
    Maximum,
    /// The smaller of the two (the first on ties).
    Minimum,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 7] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
        }
    }

    /// The op on one pair of floats.
    #[inline(always)]
    pub fn apply<T: Float>(&self, a: T, b: T) -> T {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Maximum => {
                if b > a {
                    b
                } else {
                    a
                }
            }
            BinaryOp::Minimum => {
                if b < a {
                    b
                } else {
                    a
                }
            }
        }
    }

    /// The op on one pair of integers (wrapping; division by zero gives 0; no `Pow`).
    #[inline(always)]
    pub fn apply_int<
        T: num_traits::PrimInt + num_traits::WrappingAdd + num_traits::WrappingSub + num_traits::WrappingMul,
    >(
        &self,
        a: T,
        b: T,
    ) -> Option<T> {
        Some(match self {
            BinaryOp::Add => a.wrapping_add(&b),
            BinaryOp::Sub => a.wrapping_sub(&b),
            BinaryOp::Mul => a.wrapping_mul(&b),
            BinaryOp::Div => {
                if b == T::zero() {
                    T::zero()
                } else {
                    a / b
                }
            }
            BinaryOp::Maximum => a.max(b),
            BinaryOp::Minimum => a.min(b),
            BinaryOp::Pow => return None,
        })
    }
}

impl Tensor {
    /// Both operands broadcast to their common shape, after the usual device and dtype checks.
    pub(crate) fn broadcast_pair(&self, op: &str, rhs: &Tensor) -> Result<(Tensor, Tensor)> {
        self.check_same_device(op, rhs)?;
        self.check_same_dtype(op, rhs)?;
        let shape = Shape::broadcast(op, self.shape(), rhs.shape())?;
        Ok((self.broadcast_to(&shape)?, rhs.broadcast_to(&shape)?))
    }

    /// Applies a binary op with broadcasting.
    pub fn binary(&self, op: BinaryOp, rhs: &Tensor) -> Result<Tensor> {
        let (lhs, rhs) = self.broadcast_pair(op.name(), rhs)?;
        let run = |l: &Tensor, r: &Tensor| -> Result<Tensor> {
            let buffer = l.device().backend().binary(op, l.src(), r.src())?;
            Ok(l.new_like(buffer, l.shape().clone(), l.dtype()))
        };
        match lhs.dtype() {
            DType::BF16 | DType::F16 => {
                run(&lhs.to_dtype(DType::F32)?, &rhs.to_dtype(DType::F32)?)?.to_dtype(lhs.dtype())
            }
            DType::U32 | DType::I64 if op == BinaryOp::Pow => {
                Err(Error::dtype(op.name(), format!("needs float tensors, got {}", lhs.dtype())))
            }
            _ => run(&lhs, &rhs),
        }
    }

    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Add, rhs)
    }
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Sub, rhs)
    }
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Mul, rhs)
    }
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Div, rhs)
    }
    pub fn pow(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Pow, rhs)
    }
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Maximum, rhs)
    }
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Minimum, rhs)
    }
}
