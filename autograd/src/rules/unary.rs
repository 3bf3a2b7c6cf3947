//! Unary ops and their derivatives. The `match` covers every `UnaryOp`, so an op added to the
//! table without a derivative does not compile.

use tensor::ops::UnaryOp;
use tensor::{DType, Result, Tensor};

use crate::Var;
use crate::graph::Backward;

/// `y = op(x)`; the rule keeps `x` and `y`, whichever the derivative is cheaper from.
struct UnaryRule {
    op: UnaryOp,
    x: Tensor,
    y: Tensor,
}

/// `dy/dx` for each unary op, as a tensor of x's shape.
pub(crate) fn derivative(op: UnaryOp, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    use std::f64::consts::{FRAC_1_SQRT_2, PI};
    match op {
        UnaryOp::Neg => x.full_like(-1.0),
        UnaryOp::Exp => Ok(y.clone()),
        UnaryOp::Log => x.recip(),
        UnaryOp::Sqrt => y.recip()?.mul_scalar(0.5),      // 1 / (2 sqrt x)
        UnaryOp::Rsqrt => y.powf(3.0)?.mul_scalar(-0.5),  // -x^-3/2 / 2
        UnaryOp::Tanh => y.sqr()?.neg()?.add_scalar(1.0), // 1 - tanh^2
        UnaryOp::Sigmoid => y.mul(&y.neg()?.add_scalar(1.0)?), // s (1 - s)
        UnaryOp::Silu => {
            // d/dx x s(x) = s + x s (1 - s)
            let s = x.sigmoid()?;
            s.add(&x.mul(&s)?.mul(&s.neg()?.add_scalar(1.0)?)?)
        }
        UnaryOp::GeluErf => {
            // Phi(x) + x phi(x), with Phi the normal CDF and phi its density.
            let cdf = x.mul_scalar(FRAC_1_SQRT_2)?.erf()?.add_scalar(1.0)?.mul_scalar(0.5)?;
            let pdf = x.sqr()?.mul_scalar(-0.5)?.exp()?.mul_scalar(1.0 / (2.0 * PI).sqrt())?;
            cdf.add(&x.mul(&pdf)?)
        }
        UnaryOp::GeluTanh => {
            // u = c (x + a x^3), t = tanh u: d/dx 0.5 x (1 + t) = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2)
            let (c, a) = ((2.0 / PI).sqrt(), 0.044715);
            let t = x.add(&x.powf(3.0)?.mul_scalar(a)?)?.mul_scalar(c)?.tanh()?;
            let du = x.sqr()?.mul_scalar(3.0 * a)?.add_scalar(1.0)?.mul_scalar(c)?;
            let left = t.add_scalar(1.0)?.mul_scalar(0.5)?;
            let right = x.mul_scalar(0.5)?.mul(&t.sqr()?.neg()?.add_scalar(1.0)?)?.mul(&du)?;
            left.add(&right)
        }
        UnaryOp::Erf => x.sqr()?.neg()?.exp()?.mul_scalar(2.0 / PI.sqrt()),
        UnaryOp::Abs => x.sign(),
        UnaryOp::Sign => x.zeros_like(),
        UnaryOp::Sin => x.cos(),
        UnaryOp::Cos => x.sin()?.neg(),
        UnaryOp::Sqr => x.mul_scalar(2.0),
        UnaryOp::Recip => y.sqr()?.neg(),
        UnaryOp::Powf(p) => x.powf(p - 1.0)?.mul_scalar(p),
        UnaryOp::Clamp { min, max } => {
            // 1 inside the interval (ends included, as PyTorch), 0 where clamped.
            let inside =
                x.compare_scalar(tensor::ops::CmpOp::Ge, min)?.mul(&x.compare_scalar(tensor::ops::CmpOp::Le, max)?)?;
            inside.to_dtype(x.dtype())
        }
        UnaryOp::Affine { mul, .. } => x.full_like(mul),
    }
}

impl Backward for UnaryRule {
    fn name(&self) -> &'static str {
        self.op.name()
    }
    fn backward(&self, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let d = derivative(self.op, &self.x, &self.y)?;
        Ok(vec![Some(grad.mul(&d.to_dtype(grad.dtype())?)?)])
    }
}

impl Var {
    /// Applies a unary op, recording its derivative.
    pub fn unary(&self, op: UnaryOp) -> Result<Var> {
        let x = self.value();
        let y = x.unary(op)?;
        Ok(Var::from_op(y.clone(), &[self], UnaryRule { op, x, y }))
    }

    pub fn neg(&self) -> Result<Var> {
        self.unary(UnaryOp::Neg)
    }
    pub fn exp(&self) -> Result<Var> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Var> {
        self.unary(UnaryOp::Log)
    }
    pub fn sqrt(&self) -> Result<Var> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn rsqrt(&self) -> Result<Var> {
        self.unary(UnaryOp::Rsqrt)
    }
    pub fn tanh(&self) -> Result<Var> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sigmoid(&self) -> Result<Var> {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn silu(&self) -> Result<Var> {
        self.unary(UnaryOp::Silu)
    }
    pub fn gelu(&self) -> Result<Var> {
        self.unary(UnaryOp::GeluErf)
    }
    pub fn gelu_tanh(&self) -> Result<Var> {
        self.unary(UnaryOp::GeluTanh)
    }
    pub fn erf(&self) -> Result<Var> {
        self.unary(UnaryOp::Erf)
    }
    pub fn abs(&self) -> Result<Var> {
        self.unary(UnaryOp::Abs)
    }
    pub fn sin(&self) -> Result<Var> {
        self.unary(UnaryOp::Sin)
    }
    pub fn cos(&self) -> Result<Var> {
        self.unary(UnaryOp::Cos)
    }
    pub fn sqr(&self) -> Result<Var> {
        self.unary(UnaryOp::Sqr)
    }
    pub fn recip(&self) -> Result<Var> {
        self.unary(UnaryOp::Recip)
    }
    pub fn powf(&self, p: f64) -> Result<Var> {
        self.unary(UnaryOp::Powf(p))
    }
    pub fn clamp(&self, min: f64, max: f64) -> Result<Var> {
        self.unary(UnaryOp::Clamp { min, max })
    }
    pub fn relu(&self) -> Result<Var> {
        self.clamp(0.0, f64::INFINITY)
    }
    pub fn affine(&self, mul: f64, add: f64) -> Result<Var> {
        self.unary(UnaryOp::Affine { mul, add })
    }
    pub fn mul_scalar(&self, s: f64) -> Result<Var> {
        self.affine(s, 0.0)
    }
    pub fn add_scalar(&self, s: f64) -> Result<Var> {
        self.affine(1.0, s)
    }

    /// Converts the dtype; the gradient is converted back.
    pub fn to_dtype(&self, dtype: DType) -> Result<Var> {
        let from = self.dtype();
        let y = self.value().to_dtype(dtype)?;
        Ok(Var::from_op(
            y,
            &[self],
            crate::rules::rule("to_dtype", move |g: &Tensor| Ok(vec![Some(g.to_dtype(from)?)])),
        ))
    }
}
