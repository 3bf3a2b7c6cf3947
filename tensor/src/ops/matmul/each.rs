//! The products of one input with a few weights, `x @ W_i^T` for each W_i, as one op: an
//! attention's q, k and v projections (MLA's two first products). Its definition is one `matmul`
//! per weight (`matmul_each_composite`), which is also what runs where a backend has no fused
//! kernel (the CPU: no copy, no concatenation, the cost of the separate products) or does not
//! take the shape (a GPU's prefill rows). It exists for decoding on a GPU: a layer's projections
//! of a token there cost one dispatch instead of three. The backend writes the products side by
//! side into one buffer and each result is a view of its columns, so nothing is copied apart;
//! for one row each view is contiguous (at an offset), which the kernels after it read in place.

use crate::{DType, Error, Result, Tensor, try_array};

/// The most weights one call takes: the fused kernel binds x, each weight and the output, five
/// storage buffers, which leaves it within what the GPU kernels ask of an adapter
/// (`gpu::requirements`).
const MAX_WEIGHTS: usize = 3;

impl Tensor {
    /// `[self @ w^T for w in weights]`: `self` [.., M, K], each weight [N_i, K] as Linear
    /// weights are stored, giving [.., M, N_i] each. 1 to 3 weights of
    /// one dtype, as `matmul` takes them (f32 activations may meet bf16/f16 weights). An array
    /// in and out, so a decoding step's projections allocate no list.
    pub fn matmul_each<const N: usize>(&self, weights: [&Tensor; N]) -> Result<[Tensor; N]> {
        const OP: &str = "matmul_each";
        if N == 0 || N > MAX_WEIGHTS {
            return Err(Error::shape(OP, format!("takes 1 to {MAX_WEIGHTS} weights, got {N}")));
        }
        let k = self.check_linear_weights(OP, "weights", &weights)?;
        // The backend takes f32 rows in place; anything else is the separate products' business.
        if self.dtype() != DType::F32 || !self.is_contiguous() || k == 0 {
            return self.matmul_each_composite(weights);
        }
        let x = self.reshape([self.elem_count() / k, k])?;
        let srcs = weights.map(|w| w.src());
        match self.device().backend().matmul_each(x.src(), &srcs) {
            Ok(buffer) => {
                let widths = weights.map(|w| w.dims()[0]);
                let mut dims = crate::Dims::from(&self.dims()[..self.rank() - 1]);
                dims.push(widths.iter().sum());
                let parts = self.new_like(buffer, dims, DType::F32).split(&widths, -1)?;
                let mut parts = parts.into_iter();
                try_array(|_| parts.next().ok_or_else(|| Error::shape(OP, "a view per weight")))
            }
            Err(e) if e.is_unsupported() => self.matmul_each_composite(weights),
            Err(e) => Err(e),
        }
    }

    /// The definition of [`Tensor::matmul_each`]: one product per weight.
    pub fn matmul_each_composite<const N: usize>(&self, weights: [&Tensor; N]) -> Result<[Tensor; N]> {
        try_array(|i| self.matmul(&weights[i].t()?))
    }
}
