//! Elementwise ops of one operand. Each row of the table is the whole definition: the scalar
//! function here is the CPU kernel's body and the reference the GPU's WGSL expression is
//! tested against; the backward rule lives under the same name in autograd's `rules/unary.rs`.

use num_traits::Float;

use crate::{FloatElement, Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    /// `1 / sqrt(x)`.
    Rsqrt,
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `x * sigmoid(x)` (SiLU / swish), the gate of SwiGLU.
    Silu,
    /// Exact GELU, `0.5 x (1 + erf(x / sqrt 2))`.
    GeluErf,
    /// GELU's tanh approximation, `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`: Gemma's
    /// `gelu_pytorch_tanh`.
    GeluTanh,
    /// The error function (the exact GELU's derivative needs it).
    Erf,
    Abs,
    /// -1, 0 or 1.
    Sign,
    Sin,
    Cos,
    /// `x^2`.
    Sqr,
    /// `1 / x`.
    Recip,
    /// `x^p` for a constant exponent.
    Powf(f64),
    /// `min(max(x, min), max)`.
    Clamp {
        min: f64,
        max: f64,
    },
    /// `x * mul + add`: scaling and shifting by constants.
    Affine {
        mul: f64,
        add: f64,
    },
}

impl UnaryOp {
    /// Every variant, with sample constants for the parametric ones, for tests that must cover
    /// the whole table.
    pub const ALL: [UnaryOp; 20] = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Silu,
        UnaryOp::GeluErf,
        UnaryOp::GeluTanh,
        UnaryOp::Erf,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Sqr,
        UnaryOp::Recip,
        UnaryOp::Powf(1.5),
        UnaryOp::Clamp { min: -0.5, max: 0.75 },
        UnaryOp::Affine { mul: 1.5, add: -0.25 },
    ];

    pub fn name(&self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Silu => "silu",
            UnaryOp::GeluErf => "gelu",
            UnaryOp::GeluTanh => "gelu_tanh",
            UnaryOp::Erf => "erf",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Sqr => "sqr",
            UnaryOp::Recip => "recip",
            UnaryOp::Powf(_) => "powf",
            UnaryOp::Clamp { .. } => "clamp",
            UnaryOp::Affine { .. } => "affine",
        }
    }

    /// Whether the op is defined for every real input (tests draw positive inputs otherwise).
    pub fn needs_positive_input(&self) -> bool {
        matches!(self, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Powf(_))
    }

    /// The op on one element.
    #[inline(always)]
    pub fn apply<T: FloatElement>(&self, x: T) -> T {
        let c = |v: f64| T::from_f64(v).unwrap_or_else(T::nan);
        match *self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Rsqrt => x.sqrt().recip(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Silu => x * sigmoid(x),
            UnaryOp::GeluErf => c(0.5) * x * (T::one() + (x * c(std::f64::consts::FRAC_1_SQRT_2)).erf()),
            UnaryOp::GeluTanh => {
                let inner = c(0.797_884_560_802_865_4) * (x + c(0.044715) * x * x * x);
                c(0.5) * x * (T::one() + inner.tanh())
            }
            UnaryOp::Erf => x.erf(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sign => {
                if x > T::zero() {
                    T::one()
                } else if x < T::zero() {
                    -T::one()
                } else {
                    T::zero()
                }
            }
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Sqr => x * x,
            UnaryOp::Recip => x.recip(),
            UnaryOp::Powf(p) => x.powf(c(p)),
            UnaryOp::Clamp { min, max } => x.max(c(min)).min(c(max)),
            UnaryOp::Affine { mul, add } => x * c(mul) + c(add),
        }
    }
}

/// A sigmoid that never overflows: `e^-x` is only taken for `x >= 0`.
#[inline(always)]
fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

impl Tensor {
    /// Applies a unary op elementwise.
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        self.float_op(op.name(), |x| {
            let buffer = x.device().backend().unary(op, x.src())?;
            Ok(x.new_like(buffer, x.shape().clone(), x.dtype()))
        })
    }

    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn rsqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Rsqrt)
    }
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn silu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Silu)
    }
    /// Exact GELU (erf form).
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::GeluErf)
    }
    /// GELU's tanh approximation (`gelu_pytorch_tanh`).
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::GeluTanh)
    }
    pub fn erf(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Erf)
    }
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    pub fn sign(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sign)
    }
    pub fn sin(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sin)
    }
    pub fn cos(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Cos)
    }
    pub fn sqr(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqr)
    }
    pub fn recip(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Recip)
    }
    /// `x^p` for a constant `p`.
    pub fn powf(&self, p: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Powf(p))
    }
    pub fn clamp(&self, min: f64, max: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Clamp { min, max })
    }
    pub fn relu(&self) -> Result<Tensor> {
        self.clamp(0.0, f64::INFINITY)
    }
    /// `x * mul + add`.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Affine { mul, add })
    }
    pub fn mul_scalar(&self, s: f64) -> Result<Tensor> {
        self.affine(s, 0.0)
    }
    pub fn add_scalar(&self, s: f64) -> Result<Tensor> {
        self.affine(1.0, s)
    }
}
