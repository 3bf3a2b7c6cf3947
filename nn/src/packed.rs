//! `PackedSlot`: where a `Linear` or an `Embedding` keeps its weight block-quantized (a
//! [`QMatrix`] straight from a GGUF file), so that CPU inference multiplies on the blocks instead
//! of on an f32 copy. A loader fills the slot through [`crate::Module::visit_packed`] and leaves
//! the `Var` weight as its storage-free placeholder (right shape, no data).
//!
//! Packed weights are for inference: they have no gradient, and a forward pass that records
//! gradients through one is an error (training loads f32 weights instead).

use std::sync::{Arc, RwLock};

use tensor::Error;
use tensor::quant::QMatrix;

#[derive(Default)]
pub struct PackedSlot(RwLock<Option<Arc<QMatrix>>>);

impl PackedSlot {
    /// The packed weight, if a loader set one.
    pub fn get(&self) -> Option<Arc<QMatrix>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, weight: Option<QMatrix>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = weight.map(Arc::new);
    }

    pub fn is_set(&self) -> bool {
        self.0.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

/// The error for a gradient-recording pass through a packed weight.
pub(crate) fn no_gradient(q: &QMatrix, op: &str) -> Error {
    Error::unsupported(
        op,
        format!(
            "the weight is kept block-quantized ({} [{}, {}]) and has no gradient; load the model with f32 weights to train through it",
            q.ty(),
            q.rows(),
            q.cols()
        ),
    )
}
