//! `matmul_glu`, `act(x @ gate^T) * (x @ up^T)`, as one matrix-vector dispatch: `matvec.wgsl`
//! over two matrices (`matvec_glu.wgsl`), each workgroup reading the gate and up rows of the same
//! outputs and writing their gated unit, so neither product is written out. A decoding step's
//! feed-forward takes one dispatch here instead of three (two products, then `glu`). It takes
//! what the matrix-vector path of `matmul` takes, one activation row against weights bound
//! whole, with the same weight types, loads and reductions; anything else (prefill's rows, a
//! weight over the binding limit, gate and up views of different strides or dtypes) is
//! reported unsupported, and the tensor layer runs the three ops.
//! Each dot product is summed in the order the plain matrix-vector kernel sums it and gated by
//! the `glu` kernel's own expression, so the result is the GPU's three ops' to the bit; against
//! the CPU's, the products' tolerance (f32 sums in another order).

use std::sync::Arc;

use tensor::{BufferRef, DType, Error, GluActivation, Result, Src};

use super::{MATVEC, Matvec, MatvecParams, Weight, matvec_loads, matvec_variant, takes_matvec, u32s};
use crate::backend::GpuBackend;
use crate::kernels::{glu, unary};
use crate::pipelines::{Access, KernelKey};
use crate::recorder::Binding;

const TWO_MATRICES: &str = include_str!("../matvec_glu.wgsl");

/// The fused kernel: a matrix-vector variant and the activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct MatvecGlu {
    matvec: Matvec,
    act: GluActivation,
}

impl KernelKey for MatvecGlu {
    fn name(&self) -> String {
        self.matvec.name_in(&format!("matvec_glu/{}", glu::name(self.act)))
    }

    /// x, the gate weights, out, the up weights: `matvec.wgsl`'s three, then `matvec_glu.wgsl`'s.
    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::Read, Access::ReadWrite, Access::Read]
    }

    fn source(&self) -> String {
        let Matvec { weight, vec, shader_f16, .. } = self.matvec;
        let matrices = format!(
            "{}\n{}\nfn glu(x: f32, y: f32) -> f32 {{ return {}; }}\n{TWO_MATRICES}",
            matvec_loads(weight, vec, shader_f16, "c"),
            unary::MATH,
            glu::expression(self.act)
        );
        self.matvec.source_with(MATVEC, &matrices)
    }
}

const OP: &str = "matmul_glu";

/// Why this kernel does not take a call: the tensor layer then runs the three ops.
fn unsupported<T>(why: String) -> Result<T> {
    Err(Error::unsupported(OP, why))
}

/// `x` [M, K] f32 contiguous, `gate` and `up` [I, K] (as a Linear stores them, any offset):
/// [M, I], or `Unsupported` where the matrix-vector path would not take the shape.
pub fn matmul_glu(b: &GpuBackend, x: Src, gate: Src, up: Src, act: GluActivation) -> Result<BufferRef> {
    let (m, k, n) = (x.layout.dims()[0], x.layout.dims()[1], gate.layout.dims()[0]);
    if x.dtype != DType::F32 || gate.dtype != up.dtype {
        return unsupported(format!("{} activations with {} and {} weights", x.dtype, gate.dtype, up.dtype));
    }
    let weight = Weight::of(gate.dtype).or_else(|_| unsupported(format!("{} weights", gate.dtype)))?;
    if !takes_matvec(m) {
        return unsupported(format!("{m} rows take the tiled product"));
    }
    let (gate_buffer, up_buffer) = (&b.buffer(OP, &gate)?.buffer, &b.buffer(OP, &up)?.buffer);
    if b.is_split(gate_buffer) || b.is_split(up_buffer) {
        return unsupported("a weight over the binding limit is multiplied a window at a time".into());
    }
    let (gs, us) = (gate.layout.strides(), up.layout.strides());
    if gs != us {
        return unsupported(format!("gate strides {gs:?} and up strides {us:?} differ"));
    }
    let out = b.alloc(OP, m * n, DType::F32)?;
    if m * n == 0 {
        return Ok(Arc::new(out));
    }
    // As `product` lays out W^T [K, N]: K stride, then N (row) stride.
    let v =
        u32s(OP, &[x.layout.offset(), x.layout.strides()[1], up.layout.offset(), gate.layout.offset(), gs[1], gs[0]])?;
    let params = MatvecParams {
        n: n as u32,
        k: k as u32,
        batch: 1,
        pad0: 0,
        a_offset: v[0],
        a_batch: 0,
        a_col: v[1],
        c_offset: v[2],
        b: [v[3], 0, v[4], v[5]],
    };
    let (x_binding, gate_binding, up_binding) =
        (Binding::whole(&b.buffer(OP, &x)?.buffer), Binding::whole(gate_buffer), Binding::whole(up_buffer));
    let matvec = matvec_variant(b, weight, &params, &[&x_binding, &gate_binding, &up_binding]);
    let groups = matvec.groups(2, n, 1);
    let bindings = vec![x_binding, gate_binding, Binding::whole(&out.buffer), up_binding];
    b.dispatch_bound(OP, b.kernel(&MatvecGlu { matvec, act })?, &params, bindings, groups)?;
    Ok(Arc::new(out))
}
