//! `matmul_each`, `x @ W_i^T` for up to three weights (an attention's q, k and v projections), as
//! one matrix-vector dispatch writing the products side by side (`matvec_each.wgsl`): a decoding
//! step's projections take one dispatch instead of three. Each workgroup reads OUTS rows of one
//! weight, with `matvec.wgsl`'s partial sums, loads, reductions and entry points, so each product
//! is summed in the order the plain matrix-vector kernel sums it: the result is the separate
//! products' to the bit. It takes what the matrix-vector path of `matmul` takes, one activation
//! row against weights bound whole, read along K, of one dtype; and weights whose outputs a
//! workgroup does not straddle (all but the last N_i multiples of 4: heads x head_dim in every
//! model here). Anything else is reported unsupported, and the tensor layer runs the separate
//! products.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Error, Result, Src};

use super::{MATVEC_SUMS, Matvec, Weight, matvec_loads, takes_matvec, u32s, vec_aligned};
use crate::backend::GpuBackend;
use crate::pipelines::{Access, KernelKey};
use crate::recorder::Binding;

const EACH: &str = include_str!("../matvec_each.wgsl");

/// The weights one dispatch binds (b, c and d in `matvec_each.wgsl`).
const MAX_WEIGHTS: usize = 3;

/// The kernel: a matrix-vector variant over the weights bound apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct MatvecEach(Matvec);

impl KernelKey for MatvecEach {
    fn name(&self) -> String {
        self.0.name_in("matvec_each")
    }

    /// x, the first weight, out, the second and third: `matvec.wgsl`'s three, then the others.
    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::Read, Access::ReadWrite, Access::Read, Access::Read]
    }

    fn source(&self) -> String {
        let Matvec { weight, vec, shader_f16, .. } = self.0;
        let others =
            format!("{}\n{}", matvec_loads(weight, vec, shader_f16, "c"), matvec_loads(weight, vec, shader_f16, "d"));
        self.0.source_with(EACH, &others)
    }
}

/// `matvec_each.wgsl`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct EachParams {
    n: u32,
    k: u32,
    a_offset: u32,
    a_col: u32,
    /// Where each weight's outputs start, then all of them: 0, N_0, N_0 + N_1, n.
    bounds: [u32; 4],
    /// Each weight's first element in its buffer.
    starts: [u32; 4],
    /// Elements from one of its rows to the next.
    strides: [u32; 4],
}

const OP: &str = "matmul_each";

/// Why this kernel does not take a call: the tensor layer then runs the separate products.
fn unsupported<T>(why: String) -> Result<T> {
    Err(Error::unsupported(OP, why))
}

/// `x` [M, K] f32 contiguous, `weights` 1 to 3 [N_i, K] views (as a Linear stores them, any
/// offset): [M, sum N_i], or `Unsupported` where the kernel would not take the shapes.
pub fn matmul_each(b: &GpuBackend, x: Src, weights: &[Src]) -> Result<BufferRef> {
    let (m, k) = (x.layout.dims()[0], x.layout.dims()[1]);
    let Some(first) = weights.first().filter(|_| weights.len() <= MAX_WEIGHTS) else {
        return unsupported(format!("{} weights", weights.len()));
    };
    if x.dtype != DType::F32 || weights.iter().any(|w| w.dtype != first.dtype) {
        let dtypes: Vec<_> = weights.iter().map(|w| w.dtype.to_string()).collect();
        return unsupported(format!("{} activations with weights of dtypes {dtypes:?}", x.dtype));
    }
    let weight = Weight::of(first.dtype).or_else(|_| unsupported(format!("{} weights", first.dtype)))?;
    if !takes_matvec(m) {
        return unsupported(format!("{m} rows take the tiled product"));
    }
    let widths: Vec<usize> = weights.iter().map(|w| w.layout.dims()[0]).collect();
    if widths[..widths.len() - 1].iter().any(|n| !n.is_multiple_of(MATVEC_SUMS)) {
        return unsupported(format!("outputs {widths:?}: a workgroup's {MATVEC_SUMS} would straddle two weights"));
    }
    if k > 1 && weights.iter().any(|w| w.layout.strides()[1] != 1) {
        return unsupported("a weight not read along K".into());
    }
    let mut inputs = vec![Binding::whole(&b.buffer(OP, &x)?.buffer)];
    for w in weights {
        let buffer = &b.buffer(OP, w)?.buffer;
        if b.is_split(buffer) {
            return unsupported("a weight over the binding limit is multiplied a window at a time".into());
        }
        inputs.push(Binding::whole(buffer));
    }
    let n: usize = widths.iter().sum();
    let out = b.alloc(OP, m * n, DType::F32)?;
    if m * n == 0 {
        return Ok(Arc::new(out));
    }
    // Weights past those given repeat the last one, with no outputs.
    let nth = |i: usize| weights[i.min(weights.len() - 1)];
    let quad = |value: &dyn Fn(usize) -> usize| -> Result<[u32; 4]> {
        let v = u32s(OP, &[value(0), value(1), value(2), value(3)])?;
        Ok([v[0], v[1], v[2], v[3]])
    };
    let [n32, k32, a_offset, a_col] = quad(&|i| [n, k, x.layout.offset(), x.layout.strides()[1]][i])?;
    let bounds = quad(&|i| widths.iter().take(i).sum())?;
    let (starts, strides) = (quad(&|i| nth(i).layout.offset())?, quad(&|i| nth(i).layout.strides()[0])?);
    let params = EachParams { n: n32, k: k32, a_offset, a_col, bounds, starts, strides };
    let vec = a_col == 1 && vec_aligned(weight, &[a_offset], &[starts, strides].concat(), &inputs);
    let matvec = Matvec::on(b, weight, true, vec);
    let groups = matvec.groups(1, n, 1);
    let last = inputs.len() - 1;
    let bindings = vec![
        inputs[0].clone(),
        inputs[1].clone(),
        Binding::whole(&out.buffer),
        inputs[2.min(last)].clone(),
        inputs[last].clone(),
    ];
    b.dispatch_bound(OP, b.kernel(&MatvecEach(matvec))?, &params, bindings, groups)?;
    Ok(Arc::new(out))
}
