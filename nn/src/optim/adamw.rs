//! AdamW (Loshchilov & Hutter 2019), with exactly `torch.optim.AdamW`'s update, in its order of
//! operations so losses track PyTorch's step for step:
//!
//! ```text
//! p  <- p * (1 - lr * wd)                       decoupled weight decay
//! m  <- m + (1 - b1) (g - m)                    first moment (lerp)
//! v  <- b2 v + (1 - b2) g^2                     second moment
//! p  <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//! ```
//! Parameters without a gradient this step are left alone, as in PyTorch.

use autograd::{Gradients, Var};
use tensor::{Result, Tensor};

use super::{Optimizer, trainable};

pub struct AdamW {
    params: Vec<(String, Var)>,
    /// (m, v, steps taken) per parameter.
    state: Vec<Option<(Tensor, Tensor, u64)>>,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamW {
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    pub fn new(named: Vec<(String, Var)>, lr: f64) -> AdamW {
        AdamW::with(named, lr, (0.9, 0.999), 1e-8, 0.01)
    }

    pub fn with(named: Vec<(String, Var)>, lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64) -> AdamW {
        let params = trainable(named);
        let state = vec![None; params.len()];
        AdamW { params, state, lr, beta1: betas.0, beta2: betas.1, eps, weight_decay }
    }

    /// The parameters this optimizer updates.
    pub fn parameters(&self) -> impl Iterator<Item = &(String, Var)> {
        self.params.iter()
    }

    /// Updates one parameter from its gradient (also used by Muon for its non-matrix parameters).
    pub(crate) fn update(&mut self, index: usize, grad: &Tensor) -> Result<()> {
        let (_, p) = &self.params[index];
        let value = p.value();
        let g = grad.to_dtype(value.dtype())?;
        let (m, v, t) = match self.state[index].take() {
            Some(s) => s,
            None => (value.zeros_like()?, value.zeros_like()?, 0),
        };
        let t = t + 1;
        let decayed =
            if self.weight_decay != 0.0 { value.mul_scalar(1.0 - self.lr * self.weight_decay)? } else { value };
        let m = m.add(&g.sub(&m)?.mul_scalar(1.0 - self.beta1)?)?;
        let v = v.mul_scalar(self.beta2)?.add(&g.sqr()?.mul_scalar(1.0 - self.beta2)?)?;
        let bias_correction1 = 1.0 - self.beta1.powi(t as i32);
        let bias_correction2_sqrt = (1.0 - self.beta2.powi(t as i32)).sqrt();
        let step_size = self.lr / bias_correction1;
        let denom = v.sqrt()?.mul_scalar(1.0 / bias_correction2_sqrt)?.add_scalar(self.eps)?;
        p.set_value(decayed.sub(&m.div(&denom)?.mul_scalar(step_size)?)?)?;
        self.state[index] = Some((m, v, t));
        Ok(())
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, grads: &Gradients) -> Result<()> {
        for i in 0..self.params.len() {
            if let Some(g) = grads.get(&self.params[i].1) {
                let g = g.clone();
                self.update(i, &g)?;
            }
        }
        Ok(())
    }
    fn learning_rate(&self) -> f64 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
}
