//! A gated feed-forward's gate and up products and the gated unit after them as one op,
//! `act(x @ gate_w^T) * (x @ up_w^T)`. Its definition is the three ops (`matmul_glu_composite`:
//! two matmuls, then `glu`), which is also what runs where a backend has no fused kernel (the
//! CPU) or does not take the shape (a GPU's prefill rows). It exists for decoding on a GPU
//! (issue: GPU decode built for real GPUs): a token's feed-forward there costs one dispatch
//! instead of three, every layer, and neither product goes through memory.

use crate::backend::GluActivation;
use crate::{DType, Error, Result, Tensor};

impl Tensor {
    /// `act(self @ gate_w^T) * (self @ up_w^T)`: `self` [.., M, K], `gate_w` and `up_w` [I, K]
    /// as Linear weights are stored, giving [.., M, I]. Dtypes as `matmul` takes them, the two
    /// weights alike (f32 activations may meet bf16/f16 weights).
    pub fn matmul_glu(&self, gate_w: &Tensor, up_w: &Tensor, act: GluActivation) -> Result<Tensor> {
        const OP: &str = "matmul_glu";
        let k = self.check_linear_weights(OP, "gate and up weights", &[gate_w, up_w])?;
        if gate_w.dims() != up_w.dims() {
            return Err(Error::shape(
                OP,
                format!("gate {:?} and up {:?} weights differ", gate_w.shape(), up_w.shape()),
            ));
        }
        let (r, x_dtype) = (self.rank(), self.dtype());
        // The backend takes f32 rows in place; anything else is the three ops' business.
        if x_dtype != DType::F32 || !self.is_contiguous() || k == 0 {
            return self.matmul_glu_composite(gate_w, up_w, act);
        }
        let x = self.reshape([self.elem_count() / k, k])?;
        match self.device().backend().matmul_glu(x.src(), gate_w.src(), up_w.src(), act) {
            Ok(buffer) => {
                let mut dims = self.dims()[..r - 1].to_vec();
                dims.push(gate_w.dims()[0]);
                Ok(self.new_like(buffer, dims, x_dtype))
            }
            Err(e) if e.is_unsupported() => self.matmul_glu_composite(gate_w, up_w, act),
            Err(e) => Err(e),
        }
    }

    /// The definition of [`Tensor::matmul_glu`]: both products, then the gated unit.
    pub fn matmul_glu_composite(&self, gate_w: &Tensor, up_w: &Tensor, act: GluActivation) -> Result<Tensor> {
        self.matmul(&gate_w.t()?)?.glu(&self.matmul(&up_w.t()?)?, act)
    }
}
