//! Cross-entropy from logits: `-log softmax(logits)[label]`, averaged over the rows whose label
//! is not the ignored one. Log-softmax subtracts the row max first, so any logits stay finite.

use autograd::Var;
use tensor::{DType, Error, Result, Tensor};

/// Mean cross-entropy of `logits [N, C]` against `labels [N]` (u32 or i64). Rows labelled
/// `ignore` (e.g. padding) contribute nothing and are not counted in the mean.
pub fn cross_entropy(logits: &Var, labels: &Tensor, ignore: Option<u32>) -> Result<Var> {
    const OP: &str = "cross_entropy";
    let dims = logits.dims();
    if dims.len() != 2 || labels.dims() != [dims[0]] {
        return Err(Error::shape(
            OP,
            format!("needs logits [N, C] and labels [N], got {dims:?} and {:?}", labels.shape()),
        ));
    }
    let n = dims[0];
    let labels = labels.to_dtype(DType::U32)?;
    let (safe, keep) = match ignore {
        Some(ignored) => {
            let keep = labels.compare_scalar(tensor::ops::CmpOp::Ne, ignored as f64)?;
            // Ignored rows point at class 0 so the gather stays in range; their weight is 0.
            (keep.where_cond(&labels, &labels.zeros_like()?)?, Some(keep))
        }
        None => (labels.clone(), None),
    };
    let picked = logits.log_softmax(-1)?.gather(&safe.reshape([n, 1])?, 1)?.reshape([n])?;
    match keep {
        None => picked.mean_all()?.neg(),
        Some(keep) => {
            let weights = keep.to_dtype(logits.dtype())?;
            let count = weights.sum_all()?.to_scalar::<f64>()?.max(1.0);
            picked.mul(&Var::constant(weights))?.sum_all()?.mul_scalar(-1.0 / count)
        }
    }
}
