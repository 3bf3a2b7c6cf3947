//! Parameter initialisation from a seeded generator, so a model built twice from one seed is the
//! same model.

use autograd::Var;
use tensor::{DType, Device, Result, Rng, Shape, Tensor};

/// Where new parameters come from: a generator, the device and dtype to create them on, and the
/// standard deviation of normal weights (Hugging Face's `initializer_range`, 0.02 by default).
pub struct Init {
    pub rng: Rng,
    pub device: Device,
    pub dtype: DType,
    pub std: f64,
    /// Placeholders instead of values: each parameter is one zero broadcast to its shape (no
    /// memory), for a model whose weights a checkpoint is about to replace.
    pub placeholders: bool,
}

impl Init {
    pub fn new(seed: u64, device: &Device) -> Init {
        Init { rng: Rng::new(seed), device: device.clone(), dtype: DType::F32, std: 0.02, placeholders: false }
    }

    /// Parameters with the right shapes and no storage, to be filled from a checkpoint.
    pub fn placeholders(device: &Device) -> Init {
        Init { placeholders: true, ..Init::new(0, device) }
    }

    fn placeholder(&self, shape: Shape) -> Result<Var> {
        Ok(Var::parameter(Tensor::zeros((), self.dtype, &self.device)?.broadcast_to(shape)?))
    }

    /// Normal(0, std) weights.
    pub fn normal(&mut self, shape: impl Into<Shape>) -> Result<Var> {
        let std = self.std;
        self.normal_with(shape, std)
    }

    pub fn normal_with(&mut self, shape: impl Into<Shape>, std: f64) -> Result<Var> {
        if self.placeholders {
            return self.placeholder(shape.into());
        }
        Ok(Var::parameter(Tensor::randn(0.0, std, shape, self.dtype, &mut self.rng, &self.device)?))
    }

    pub fn zeros(&mut self, shape: impl Into<Shape>) -> Result<Var> {
        if self.placeholders {
            return self.placeholder(shape.into());
        }
        Ok(Var::parameter(Tensor::zeros(shape, self.dtype, &self.device)?))
    }

    pub fn ones(&mut self, shape: impl Into<Shape>) -> Result<Var> {
        if self.placeholders {
            return self.placeholder(shape.into());
        }
        Ok(Var::parameter(Tensor::ones(shape, self.dtype, &self.device)?))
    }
}
