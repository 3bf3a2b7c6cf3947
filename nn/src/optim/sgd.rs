//! Stochastic gradient descent with momentum (Polyak; Nesterov optional) and decoupled weight
//! decay, as `torch.optim.SGD` with `dampening = 0`:
//! `g += wd p; b = mu b + g; step = nesterov ? g + mu b : b; p -= lr step`.

use autograd::{Gradients, Var};
use tensor::{Result, Tensor};

use super::{Optimizer, trainable};

pub struct Sgd {
    params: Vec<(String, Var)>,
    momentum_buffers: Vec<Option<Tensor>>,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
}

impl Sgd {
    pub fn new(named: Vec<(String, Var)>, lr: f64, momentum: f64) -> Sgd {
        let params = trainable(named);
        let momentum_buffers = vec![None; params.len()];
        Sgd { params, momentum_buffers, lr, momentum, nesterov: false, weight_decay: 0.0 }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &Gradients) -> Result<()> {
        for ((_, p), buffer) in self.params.iter().zip(&mut self.momentum_buffers) {
            let Some(g) = grads.get(p) else { continue };
            let value = p.value();
            let mut g = g.to_dtype(value.dtype())?;
            if self.weight_decay != 0.0 {
                g = g.add(&value.mul_scalar(self.weight_decay)?)?;
            }
            let direction = if self.momentum != 0.0 {
                let b = match buffer.take() {
                    None => g.clone(), // PyTorch starts the buffer at the first gradient
                    Some(b) => b.mul_scalar(self.momentum)?.add(&g)?,
                };
                let d = if self.nesterov { g.add(&b.mul_scalar(self.momentum)?)? } else { b.clone() };
                *buffer = Some(b);
                d
            } else {
                g
            };
            p.set_value(value.sub(&direction.mul_scalar(self.lr)?)?)?;
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
