//! Gradient clipping by global norm (Pascanu et al., "On the difficulty of training recurrent
//! neural networks", 2013), as `torch.nn.utils.clip_grad_norm_` does it: when the L2 norm of all
//! gradients together exceeds `max_norm`, every gradient is scaled by `max_norm / (norm + 1e-6)`.
//! It keeps one bad batch from throwing a small model far off course early in training.

use autograd::{Gradients, Var};
use tensor::{DType, Result};

/// Clips the gradients of `params` in place and returns their global norm before clipping.
/// The norm is summed on the gradients' device and read back once.
pub fn clip_grad_norm(params: &[(String, Var)], grads: &mut Gradients, max_norm: f64) -> Result<f64> {
    let mut total = None;
    for (_, p) in params {
        if let Some(g) = grads.get(p) {
            let sq = g.to_dtype(DType::F32)?.sqr()?.sum_all()?;
            total = Some(match total {
                None => sq,
                Some(t) => sq.add(&t)?,
            });
        }
    }
    let Some(total) = total else { return Ok(0.0) };
    let norm = (total.to_scalar::<f32>()? as f64).sqrt();
    if norm.is_finite() && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for (_, p) in params {
            if let Some(g) = grads.get_mut(p) {
                *g = g.mul_scalar(scale)?;
            }
        }
    }
    Ok(norm)
}
