//! Launcher of the unary ops: each `UnaryOp` becomes a one-line WGSL function `op`, and the
//! `match` below covers every variant, so an op added to the table without a GPU expression does
//! not compile. Tolerance against the CPU: ~1e-6 relative (f32 transcendentals; erf within 1.5e-7).

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::ops::UnaryOp;
use tensor::{BufferRef, DType, Error, Result, Src};

use super::{LayoutUniform, grid_1d, source};
use crate::backend::GpuBackend;
use crate::pipelines::{Access, KernelKey};

const BODY: &str = include_str!("unary.wgsl");
pub const MATH: &str = include_str!("math.wgsl");

/// The kernel of one unary op. Constants (`Powf`'s exponent, `Clamp`'s bounds) travel as the
/// uniforms `p0` and `p1`, so ops that differ only in them are one kernel: the key compares
/// the variant, by name.
#[derive(Clone, Copy, Debug)]
struct Kernel(UnaryOp);

impl PartialEq for Kernel {
    fn eq(&self, other: &Kernel) -> bool {
        self.0.name() == other.0.name()
    }
}

impl Eq for Kernel {}

impl std::hash::Hash for Kernel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name().hash(state)
    }
}

impl KernelKey for Kernel {
    fn name(&self) -> String {
        format!("unary/{}", self.0.name())
    }

    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::ReadWrite]
    }

    fn source(&self) -> String {
        source(&format!("{MATH}\nfn op(x: f32, p0: f32, p1: f32) -> f32 {{ return {}; }}", expression(self.0)), BODY)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    pad0: u32,
    p0: f32,
    p1: f32,
    src: LayoutUniform,
}

/// The WGSL body of `op(x, p0, p1)`.
fn expression(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "-x",
        UnaryOp::Exp => "exp(x)",
        UnaryOp::Log => "log(x)",
        UnaryOp::Sqrt => "sqrt(x)",
        UnaryOp::Rsqrt => "inverseSqrt(x)",
        UnaryOp::Tanh => "safe_tanh(x)",
        UnaryOp::Sigmoid => "sigmoid(x)",
        UnaryOp::Silu => "x * sigmoid(x)",
        UnaryOp::GeluErf => "0.5 * x * (1.0 + erf(x * 0.7071067811865476))",
        UnaryOp::GeluTanh => "gelu_tanh(x)",
        UnaryOp::Erf => "erf(x)",
        UnaryOp::Abs => "abs(x)",
        UnaryOp::Sign => "sign(x)",
        UnaryOp::Sin => "sin(x)",
        UnaryOp::Cos => "cos(x)",
        UnaryOp::Sqr => "x * x",
        UnaryOp::Recip => "1.0 / x",
        UnaryOp::Powf(_) => "powf(x, p0)",
        UnaryOp::Clamp { .. } => "min(max(x, p0), p1)",
        UnaryOp::Affine { .. } => "x * p0 + p1",
    }
}

fn constants(op: UnaryOp) -> (f32, f32) {
    match op {
        UnaryOp::Powf(p) => (p as f32, 0.0),
        UnaryOp::Clamp { min, max } => (min as f32, max as f32),
        UnaryOp::Affine { mul, add } => (mul as f32, add as f32),
        _ => (0.0, 0.0),
    }
}

pub fn unary(b: &GpuBackend, op: UnaryOp, src: Src) -> Result<BufferRef> {
    if src.dtype != DType::F32 {
        return Err(Error::unsupported_dtype(op.name(), src.dtype));
    }
    let n = src.layout.elem_count();
    let out = b.alloc(op.name(), n, DType::F32)?;
    if n > 0 {
        let kernel = b.kernel(&Kernel(op))?;
        let (p0, p1) = constants(op);
        let params = Params { n: n as u32, pad0: 0, p0, p1, src: LayoutUniform::merged(op.name(), [src.layout])?[0] };
        b.dispatch(op.name(), kernel, &params, &[&b.buffer(op.name(), &src)?.buffer, &out.buffer], grid_1d(n))?;
    }
    Ok(Arc::new(out))
}
