//! Batched matrix multiplication with NumPy broadcasting of the batch dims, the
//! mixture-of-experts matmul that multiplies each row by its own expert's weight, (`glu`) a
//! gated feed-forward's two products with the gated unit after them as one op, and (`each`) the
//! products of one input with a few weights (an attention's q, k and v projections) as one op.

mod each;
mod glu;

use crate::{DType, Dims, Error, Layout, Result, Shape, Tensor};

impl Tensor {
    /// `self [.., M, K] @ rhs [.., K, N] -> [.., M, N]`, batch dims broadcast. `rhs` may be
    /// bf16/f16 when `self` is f32: half-precision weights multiplied with f32 accumulation.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        const OP: &str = "matmul";
        self.check_same_device(OP, rhs)?;
        if self.rank() < 2 || rhs.rank() < 2 {
            return Err(Error::shape(
                OP,
                format!("needs operands of rank 2 or more, got {:?} @ {:?}", self.shape(), rhs.shape()),
            ));
        }
        let (m, k) = (self.dims()[self.rank() - 2], self.dims()[self.rank() - 1]);
        let (k2, n) = (rhs.dims()[rhs.rank() - 2], rhs.dims()[rhs.rank() - 1]);
        if k != k2 {
            return Err(Error::shape(OP, format!("inner dimensions differ: {:?} @ {:?}", self.shape(), rhs.shape())));
        }
        // Dtypes: same float type, or f32 activations with half-precision weights.
        let lhs = match (self.dtype(), rhs.dtype()) {
            (a, b) if a == b && (a == DType::F32 || a == DType::F64) => self.clone(),
            (DType::F32, DType::BF16 | DType::F16) => self.clone(),
            (a, b) if a == b && a.is_half() => {
                return self.to_dtype(DType::F32)?.matmul(rhs)?.to_dtype(a);
            }
            (a, b) => {
                return Err(Error::dtype(
                    OP,
                    format!("cannot multiply {a} by {b} ({:?} @ {:?})", self.shape(), rhs.shape()),
                ));
            }
        };

        // One big GEMM rather than a batch of small ones when the weight is shared: fold the
        // batch dims of a contiguous lhs into its rows.
        if rhs.rank() == 2 && lhs.rank() > 2 && lhs.is_contiguous() {
            let rows = lhs.elem_count() / k.max(1);
            let out = lhs.reshape([rows, k])?.matmul(rhs)?;
            let mut dims = Dims::from(&lhs.dims()[..lhs.rank() - 1]);
            dims.push(n);
            return out.reshape(dims);
        }

        let lhs_batch = Shape::from(&lhs.dims()[..lhs.rank() - 2]);
        let rhs_batch = Shape::from(&rhs.dims()[..rhs.rank() - 2]);
        let batch = Shape::broadcast(OP, &lhs_batch, &rhs_batch)?;
        let mut lhs_shape = Dims::from(batch.dims());
        lhs_shape.extend([m, k]);
        let mut rhs_shape = Dims::from(batch.dims());
        rhs_shape.extend([k, n]);
        let lhs3 = as_batched_matrix(&lhs.broadcast_to(lhs_shape)?)?;
        let rhs3 = as_batched_matrix(&rhs.broadcast_to(rhs_shape)?)?;
        let buffer = lhs.device().backend().matmul(lhs3.src(), rhs3.src())?;
        let mut out_dims = Dims::from(batch.dims());
        out_dims.extend([m, n]);
        Ok(lhs.new_like(buffer, out_dims, lhs.dtype()))
    }

    /// `x [R, K]` row by row times its expert's weight: `out[r] = x[r] @ weights[ids[r]]` with
    /// `weights [E, K, N]` (a transposed view of HF's `[E, N, K]` is fine) and u32/i64 `ids [R]`.
    pub fn expert_matmul(&self, weights: &Tensor, ids: &Tensor) -> Result<Tensor> {
        const OP: &str = "expert_matmul";
        self.check_same_device(OP, weights)?;
        self.check_same_device(OP, ids)?;
        if self.rank() != 2 || weights.rank() != 3 || ids.rank() != 1 || !ids.dtype().is_int() {
            return Err(Error::shape(
                OP,
                format!(
                    "needs x [R, K], weights [E, K, N] and integer ids [R], got {:?}, {:?}, {:?} ({})",
                    self.shape(),
                    weights.shape(),
                    ids.shape(),
                    ids.dtype()
                ),
            ));
        }
        let (r, k) = (self.dims()[0], self.dims()[1]);
        let n = weights.dims()[2];
        if weights.dims()[1] != k || ids.dims()[0] != r {
            return Err(Error::shape(
                OP,
                format!("x {:?}, weights {:?} and ids {:?} disagree", self.shape(), weights.shape(), ids.shape()),
            ));
        }
        match (self.dtype(), weights.dtype()) {
            (a, b) if a == b && !a.is_int() && !a.is_half() => {}
            (DType::F32, DType::BF16 | DType::F16) => {}
            (a, b) => return Err(Error::dtype(OP, format!("cannot multiply {a} by {b}"))),
        }
        let x = self.contiguous()?;
        let w = if has_unit_inner_stride(weights.layout()) { weights.clone() } else { weights.contiguous()? };
        let buffer = self.device().backend().expert_matmul(x.src(), w.src(), ids.src())?;
        Ok(self.new_like(buffer, [r, n], self.dtype()))
    }
}

impl Tensor {
    /// Checks `self` [.., M, K] against `weights` [N_i, K] as Linear layers store them, for the
    /// fused ops that multiply one input by several (`matmul_glu`, `matmul_each`): one device,
    /// the weights of one dtype that `matmul` takes with `self`'s (the same, or half precision
    /// under f32). Errors name `op` and call the weights `what`. Gives K.
    fn check_linear_weights(&self, op: &str, what: &str, weights: &[&Tensor]) -> Result<usize> {
        for w in weights {
            self.check_same_device(op, w)?;
        }
        let r = self.rank();
        let k = if r >= 2 { self.dims()[r - 1] } else { 0 };
        if r < 2 || weights.iter().any(|w| w.rank() != 2 || w.dims()[1] != k) {
            let shapes: Vec<_> = weights.iter().map(|w| w.shape()).collect();
            return Err(Error::shape(
                op,
                format!("needs x [.., M, K] and {what} [N, K], got {:?} and {shapes:?}", self.shape()),
            ));
        }
        let (x_dtype, w_dtype) = (self.dtype(), weights.first().map_or(self.dtype(), |w| w.dtype()));
        let pair = (x_dtype == w_dtype && x_dtype.is_float()) || (x_dtype == DType::F32 && w_dtype.is_half());
        if !pair || weights.iter().any(|w| w.dtype() != w_dtype) {
            let dtypes: Vec<_> = weights.iter().map(|w| w.dtype().to_string()).collect();
            return Err(Error::dtype(op, format!("cannot multiply {x_dtype} by {what} of dtypes {dtypes:?}")));
        }
        Ok(k)
    }
}

/// Whether one of the last two dims of a layout has stride 1 (row- or column-major matrices).
fn has_unit_inner_stride(layout: &Layout) -> bool {
    let r = layout.rank();
    let (rows, cols) = (layout.dims()[r - 2], layout.dims()[r - 1]);
    let (rs, cs) = (layout.strides()[r - 2], layout.strides()[r - 1]);
    cs == 1 || rs == 1 || cols <= 1 || rows <= 1
}

/// A [.., M, K] view as a [B, M, K] view, copying only when the batch dims cannot share one
/// stride or neither matrix dim is contiguous.
fn as_batched_matrix(t: &Tensor) -> Result<Tensor> {
    let r = t.rank();
    let (m, k) = (t.dims()[r - 2], t.dims()[r - 1]);
    let layout = t.layout();
    let batch_dims = &layout.dims()[..r - 2];
    let batch_strides = &layout.strides()[..r - 2];
    let b: usize = batch_dims.iter().product();
    // The batch dims collapse into one stride when each is the next's stride times its extent.
    let mut batch_stride: Option<usize> = None;
    let mut next_expected = 0;
    let mut ok = true;
    for (&d, &s) in batch_dims.iter().zip(batch_strides).rev() {
        if d == 1 {
            continue;
        }
        match batch_stride {
            None => batch_stride = Some(s),
            Some(_) if s != next_expected => ok = false,
            Some(_) => {}
        }
        next_expected = s * d;
    }
    if ok && has_unit_inner_stride(layout) {
        let batch_stride = batch_stride.unwrap_or(0);
        let l = Layout::new(
            Shape::from([b, m, k]),
            [batch_stride, layout.strides()[r - 2], layout.strides()[r - 1]],
            layout.offset(),
        );
        return Ok(Tensor::from_parts(t.buffer().clone(), l, t.dtype(), t.device().clone()));
    }
    t.contiguous()?.reshape([b, m, k])
}
