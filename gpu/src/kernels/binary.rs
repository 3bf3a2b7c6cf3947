//! Launcher of the binary ops, and the two-operand kernel they share with comparisons
//! (`compare.rs`) and the fused gated unit (`glu.rs`): the op is a generated WGSL function `op(x, y)` over element type `T`
//! giving `R`. Each `match` covers every variant of its table. Tolerance against the CPU: exact
//! for + - * and comparisons, ~1 ulp for division, ~1e-6 relative for pow and the activations.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::ops::{BinaryOp, CmpOp};
use tensor::{BufferRef, DType, Error, GluActivation, Result, Src};

use super::{Elem, LayoutUniform, grid_1d, source};
use crate::backend::GpuBackend;
use crate::pipelines::{Access, KernelKey};

const BODY: &str = include_str!("binary.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    pad: [u32; 3],
    a: LayoutUniform,
    b: LayoutUniform,
}

fn float_expression(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "x + y",
        BinaryOp::Sub => "x - y",
        BinaryOp::Mul => "x * y",
        BinaryOp::Div => "x / y",
        BinaryOp::Pow => "powf(x, y)",
        BinaryOp::Maximum => "select(x, y, y > x)",
        BinaryOp::Minimum => "select(x, y, y < x)",
    }
}

fn int_expression(op: BinaryOp) -> Option<&'static str> {
    Some(match op {
        BinaryOp::Add => "x + y",
        BinaryOp::Sub => "x - y",
        BinaryOp::Mul => "x * y",
        // Division by zero gives 0, as on the CPU.
        BinaryOp::Div => "select(x / max(y, 1u), 0u, y == 0u)",
        BinaryOp::Maximum => "max(x, y)",
        BinaryOp::Minimum => "min(x, y)",
        BinaryOp::Pow => return None,
    })
}

/// What a two-operand kernel computes, as `op(x: T, y: T) -> R`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TwoOperand {
    Binary(BinaryOp),
    /// `R` is u32: 1 where the comparison holds.
    Compare(CmpOp),
    /// `act(x) * y` (f32 only).
    Glu(GluActivation),
}

/// One two-operand kernel: the op and the operands' element type. Built only through
/// [`TwoOperandKernel::new`], which refuses the pairs no kernel exists for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TwoOperandKernel {
    op: TwoOperand,
    elem: Elem,
}

impl TwoOperandKernel {
    pub(crate) fn new(op: TwoOperand, dtype: DType) -> Result<TwoOperandKernel> {
        let name = op.name();
        let elem = Elem::of(name, dtype)?;
        let defined = match (op, elem) {
            (TwoOperand::Binary(op), Elem::U32) => int_expression(op).is_some(),
            (TwoOperand::Glu(_), Elem::U32) => false,
            _ => true,
        };
        if !defined {
            return Err(Error::dtype(name, format!("not defined for {dtype}")));
        }
        Ok(TwoOperandKernel { op, elem })
    }
}

impl TwoOperand {
    fn name(self) -> &'static str {
        match self {
            TwoOperand::Binary(op) => op.name(),
            TwoOperand::Compare(op) => op.name(),
            TwoOperand::Glu(_) => "glu",
        }
    }
}

impl KernelKey for TwoOperandKernel {
    fn name(&self) -> String {
        let t = self.elem.wgsl();
        match self.op {
            TwoOperand::Binary(op) => format!("binary/{}/{t}", op.name()),
            TwoOperand::Compare(op) => format!("compare/{}/{t}", op.name()),
            TwoOperand::Glu(act) => format!("glu/{}", super::glu::name(act)),
        }
    }

    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::Read, Access::ReadWrite]
    }

    fn source(&self) -> String {
        let t = self.elem.wgsl();
        let (r, expr) = match self.op {
            TwoOperand::Binary(op) => match self.elem {
                Elem::F32 => (t, float_expression(op).to_string()),
                Elem::U32 => {
                    (t, int_expression(op).expect("TwoOperandKernel::new admits defined ops only").to_string())
                }
            },
            TwoOperand::Compare(op) => ("u32", format!("select(0u, 1u, {})", super::compare::condition(op))),
            TwoOperand::Glu(act) => (t, super::glu::expression(act).to_string()),
        };
        let math = super::unary::MATH;
        source(&format!("{math}\nalias T = {t};\nalias R = {r};\nfn op(x: T, y: T) -> R {{ return {expr}; }}"), BODY)
    }
}

/// Runs the two-operand kernel of `op` on `lhs` and `rhs` (same shape), giving `out_dtype`.
pub(crate) fn launch(b: &GpuBackend, op: TwoOperand, lhs: Src, rhs: Src, out_dtype: DType) -> Result<BufferRef> {
    let key = TwoOperandKernel::new(op, lhs.dtype)?;
    let name = op.name();
    let n = lhs.layout.elem_count();
    let out = b.alloc(name, n, out_dtype)?;
    if n > 0 {
        let kernel = b.kernel(&key)?;
        let layouts = LayoutUniform::merged(name, [lhs.layout, rhs.layout])?;
        let params = Params { n: n as u32, pad: [0; 3], a: layouts[0], b: layouts[1] };
        b.dispatch(
            name,
            kernel,
            &params,
            &[&b.buffer(name, &lhs)?.buffer, &b.buffer(name, &rhs)?.buffer, &out.buffer],
            grid_1d(n),
        )?;
    }
    Ok(Arc::new(out))
}

pub fn binary(b: &GpuBackend, op: BinaryOp, lhs: Src, rhs: Src) -> Result<BufferRef> {
    launch(b, TwoOperand::Binary(op), lhs, rhs, lhs.dtype)
}
