//! Binary ops with broadcasting and their derivatives. A broadcast operand's gradient is summed
//! back to its own shape (`sum_to_shape`), the one place un-broadcasting happens.

use tensor::ops::{BinaryOp, CmpOp};
use tensor::{Result, Tensor};

use crate::Var;
use crate::graph::Backward;

struct BinaryRule {
    op: BinaryOp,
    a: Tensor,
    b: Tensor,
}

impl Backward for BinaryRule {
    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&self.a, &self.b);
        let (ga, gb) = match self.op {
            BinaryOp::Add => (g.clone(), g.clone()),
            BinaryOp::Sub => (g.clone(), g.neg()?),
            BinaryOp::Mul => (g.mul(b)?, g.mul(a)?),
            // d(a/b) = da / b - a db / b^2
            BinaryOp::Div => (g.div(b)?, g.mul(a)?.div(&b.sqr()?)?.neg()?),
            // d(a^b) = b a^(b-1) da + a^b ln(a) db
            BinaryOp::Pow => {
                let y = a.pow(b)?;
                (g.mul(b)?.mul(&a.pow(&b.add_scalar(-1.0)?)?)?, g.mul(&y)?.mul(&a.log()?)?)
            }
            // The gradient goes to the operand the forward picked (the first on ties).
            BinaryOp::Maximum | BinaryOp::Minimum => {
                let cmp = if self.op == BinaryOp::Maximum { CmpOp::Ge } else { CmpOp::Le };
                let picked_a = a.compare(cmp, b)?;
                let zero = g.zeros_like()?;
                (picked_a.where_cond(g, &zero)?, picked_a.where_cond(&zero, g)?)
            }
        };
        Ok(vec![Some(ga.sum_to_shape(a.shape())?), Some(gb.sum_to_shape(b.shape())?)])
    }
}

impl Var {
    /// Applies a binary op with broadcasting, recording its derivative.
    pub fn binary(&self, op: BinaryOp, rhs: &Var) -> Result<Var> {
        let (a, b) = (self.value(), rhs.value());
        let y = a.binary(op, &b)?;
        Ok(Var::from_op(y, &[self, rhs], BinaryRule { op, a, b }))
    }

    pub fn add(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Add, rhs)
    }
    pub fn sub(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Sub, rhs)
    }
    pub fn mul(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Mul, rhs)
    }
    pub fn div(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Div, rhs)
    }
    pub fn pow(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Pow, rhs)
    }
    pub fn maximum(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Maximum, rhs)
    }
    pub fn minimum(&self, rhs: &Var) -> Result<Var> {
        self.binary(BinaryOp::Minimum, rhs)
    }

    /// Multiplies by a constant tensor (a mask, a scale) that needs no gradient.
    pub fn mul_tensor(&self, rhs: &Tensor) -> Result<Var> {
        self.mul(&Var::constant(rhs.clone()))
    }

    /// Adds a constant tensor (a bias mask) that needs no gradient.
    pub fn add_tensor(&self, rhs: &Tensor) -> Result<Var> {
        self.add(&Var::constant(rhs.clone()))
    }
}
