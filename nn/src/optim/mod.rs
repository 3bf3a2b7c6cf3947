//! Optimizers: SGD with momentum, AdamW exactly as PyTorch updates, Muon (Newton-Schulz
//! orthogonalised momentum for 2-D weights) and MuonClip (Muon plus Kimi K2's QK-Clip).
//! Each keeps its state as tensors on the parameters' device, so training runs wherever the
//! model lives.

pub mod adamw;
pub mod clip;
pub mod muon;
pub mod sgd;

pub use adamw::AdamW;
pub use clip::clip_grad_norm;
pub use muon::{Muon, MuonClip, MuonScaling, newton_schulz};
pub use sgd::Sgd;

use autograd::{Gradients, Var};
use tensor::Result;

/// One update of the parameters from their gradients.
pub trait Optimizer {
    fn step(&mut self, grads: &Gradients) -> Result<()>;
    fn learning_rate(&self) -> f64;
    /// For schedules (warm-up, cosine decay).
    fn set_learning_rate(&mut self, lr: f64);
    /// Called by the training loop after each step with the model just updated: MuonClip's
    /// QK-Clip acts here. Nothing for the others.
    fn after_step(&mut self, _model: &dyn crate::Module) -> Result<()> {
        Ok(())
    }
    /// Whether attention blocks must record their largest logits (MuonClip).
    fn needs_attention_logits(&self) -> bool {
        false
    }
}

/// The trainable parameters among `named`: those that take gradients, each once even when a
/// module reaches it under two names (tied embeddings).
pub fn trainable(named: Vec<(String, Var)>) -> Vec<(String, Var)> {
    let mut seen = std::collections::HashSet::new();
    named.into_iter().filter(|(_, v)| v.requires_grad() && v.is_leaf() && seen.insert(v.id())).collect()
}
