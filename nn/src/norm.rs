//! Normalisation: RMSNorm (Zhang & Sennrich 2019) in its two flavours, plain `w * x_hat`
//! (Llama, Qwen, Mistral, DeepSeek, OLMo) and Gemma's `(1 + w) * x_hat` with weights stored
//! zero-centred; the weightless form is Llama 4's L2 QK-norm.

use autograd::Var;
use tensor::{Result, RmsNormSpec};

use crate::{Init, Module, join};

pub struct RmsNorm {
    /// `None` for the weightless norm.
    pub weight: Option<Var>,
    pub spec: RmsNormSpec,
}

impl RmsNorm {
    /// Plain RMSNorm with weights initialised to 1 (`rms_norm_eps` from the config).
    pub fn new(dim: usize, eps: f64, init: &mut Init) -> Result<RmsNorm> {
        Ok(RmsNorm { weight: Some(init.ones([dim])?), spec: RmsNormSpec { eps, add_unit_offset: false } })
    }

    /// Gemma's RMSNorm: `x_hat * (1 + w)`, weights initialised to 0.
    pub fn gemma(dim: usize, eps: f64, init: &mut Init) -> Result<RmsNorm> {
        Ok(RmsNorm { weight: Some(init.zeros([dim])?), spec: RmsNormSpec { eps, add_unit_offset: true } })
    }

    /// No weight at all: Llama 4's `Llama4TextL2Norm`, `x * rsqrt(mean(x^2) + eps)`.
    pub fn weightless(eps: f64) -> RmsNorm {
        RmsNorm { weight: None, spec: RmsNormSpec { eps, add_unit_offset: false } }
    }

    /// Normalises over the last axis.
    pub fn forward(&self, x: &Var) -> Result<Var> {
        x.rms_norm(self.weight.as_ref(), self.spec)
    }

    /// `(x + y, self.forward(x + y))`: a residual add and this norm after it. Where no gradient
    /// flows (inference) the two run as one fused op (`Tensor::add_rms_norm`: on a GPU one
    /// dispatch instead of two); with gradients, as the two ops.
    pub fn add_forward(&self, x: &Var, y: &Var) -> Result<(Var, Var)> {
        let learns = [Some(x), Some(y), self.weight.as_ref()].into_iter().flatten().any(|v| v.requires_grad());
        if autograd::is_grad_enabled() && learns {
            let h = x.add(y)?;
            let n = self.forward(&h)?;
            return Ok((h, n));
        }
        let w = self.weight.as_ref().map(|w| w.value());
        let (h, n) = x.value().add_rms_norm(&y.value(), w.as_ref(), self.spec)?;
        Ok((Var::untracked(h), Var::untracked(n)))
    }
}

impl Module for RmsNorm {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        if let Some(w) = &self.weight {
            f(&join(prefix, "weight"), w);
        }
    }
}
